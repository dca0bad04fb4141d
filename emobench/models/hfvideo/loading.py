"""Finding, describing and loading ``hfvideo:`` models offline, and their checkpoints.

* :func:`inspect_folder` reads ``config.json`` and the processor's JSON (no transformers
  import), so building the adapter — which every run does for all models before any work
  — is cheap and a wrong ``num_frames`` / ``frame_size`` is one error line up front.
* :func:`load_normalisation` takes the mean, std and rescale factor from the model's own
  video (or image) processor, loaded with transformers; the engine already decodes frames
  as squares at the processor's crop size, so resizing and cropping are not repeated.
* :func:`load_classifier` loads ``AutoModelForVideoClassification`` from the folder with a
  head for the dataset's labels (by name in ``id2label``), re-initialised from the seed
  whatever the checkpoint held, wrapped as a :class:`VideoClassifier` that takes uint8
  frames.
* Fine-tuned weights are saved as safetensors (the full state dict) plus a JSON sidecar,
  atomically; :func:`load_finetuned` reuses one or removes a damaged one with a warning.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.io import atomic_write_text
from emobench.models.hf.loading import no_progress_bars
from emobench.models.hfvideo.options import Architecture, HFVideoOptions, architecture
from emobench.models.weights_file import describe_read_error, read_errors, save_safetensors

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: sidecar format of a fine-tuned checkpoint
CHECKPOINT_FORMAT = "emobench-hfvideo/1"
#: ImageNet mean/std: the normalisation when a folder has no processor (recorded as such)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


class HFVideoError(EmobenchError):
    """A model folder, option or checkpoint of the ``hfvideo:`` family that cannot be used."""


@dataclass(frozen=True)
class FolderInfo:
    """What the adapter needs to know about a model folder before loading any weights."""

    model_type: str
    arch: Architecture
    #: frames and side the weights were built for (None when the config does not say)
    config_frames: int | None
    config_size: int | None
    patch_size: int
    tubelet_size: int
    #: the processor's crop (else resize) side, None without a processor file
    processor_size: int | None


def _side(value: Any) -> int | None:
    """A square side from a config/processor size entry (int, list or dict)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], int):
        return int(value[0])
    if isinstance(value, dict):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(value.get(key), int):
                return int(value[key])
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HFVideoError(f"{path}: unreadable JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise HFVideoError(f"{path}: expected a JSON object")
    return data


def processor_config(folder: Path) -> dict[str, Any]:
    """The processor's saved settings (video processor first), or {} when there is none."""
    for name in _PROCESSOR_FILES:
        if (folder / name).is_file():
            return _read_json(folder / name)
    return {}


def inspect_folder(folder: Path, name: str) -> FolderInfo:
    """Read a model folder's architecture, frame count and frame side (module docstring)."""
    cfg = _read_json(folder / "config.json")
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise HFVideoError(f"hfvideo:{name}: {folder}/config.json has no model_type")
    arch = architecture(model_type)
    proc = processor_config(folder)
    frames = cfg.get(arch.frames_field)
    return FolderInfo(
        model_type=model_type,
        arch=arch,
        config_frames=frames if isinstance(frames, int) and frames > 0 else None,
        config_size=_side(cfg.get(arch.size_field)),
        patch_size=_side(cfg.get("patch_size")) or 1,
        tubelet_size=_side(cfg.get("tubelet_size")) or 1,
        processor_size=_side(proc.get("crop_size")) or _side(proc.get("size")),
    )


def input_shape(info: FolderInfo, opts: HFVideoOptions, name: str) -> tuple[int, int]:
    """(frames per clip, frame side) fed to the model: the options' values when the
    architecture allows them, else the ones the weights were built for; one error line
    for a value the model cannot take."""
    where = f"hfvideo:{name}"
    fixed = info.config_frames
    frames = opts.num_frames or fixed
    if frames is None:
        raise HFVideoError(
            f"{where}: the {info.model_type} config has no {info.arch.frames_field}: "
            "set options.num_frames"
        )
    if fixed is not None and frames != fixed and not info.arch.flexible_frames:
        raise HFVideoError(
            f"{where}: options.num_frames = {frames}, but {info.model_type} takes exactly "
            f"{fixed} frames (its position embeddings are built for {fixed})"
        )
    if frames % info.tubelet_size:
        raise HFVideoError(
            f"{where}: num_frames = {frames} is not a multiple of the tubelet size "
            f"{info.tubelet_size}"
        )
    size = opts.frame_size or info.processor_size or info.config_size
    if size is None:
        raise HFVideoError(f"{where}: cannot tell the model's frame size: set options.frame_size")
    built = info.config_size
    if built is not None and size != built and not info.arch.flexible_size:
        raise HFVideoError(
            f"{where}: frame_size = {size}, but {info.model_type} takes {built} px frames "
            f"(its position embeddings are built for {built})"
        )
    if size % info.patch_size:
        raise HFVideoError(
            f"{where}: frame_size = {size} is not a multiple of the patch size {info.patch_size}"
        )
    return int(frames), int(size)


def quiet_transformers() -> contextlib.AbstractContextManager[None]:
    """Silence transformers' load reports and progress bars (the re-initialised head is
    intended, not news) for the duration of a load."""

    return no_progress_bars(errors_only=True)


@dataclass(frozen=True)
class Normalisation:
    """``x = (pixel · rescale − mean) / std`` per channel, as the model's processor does."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float
    source: str

    def describe(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "rescale": self.rescale,
                "source": self.source}  # fmt: skip


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    return default


def load_normalisation(folder: Path, trust_remote_code: bool = False) -> Normalisation:
    """The model processor's normalisation (video processor, else image processor); the
    ImageNet statistics when the folder has neither (``source`` says which)."""
    from transformers import AutoImageProcessor, AutoVideoProcessor

    kw = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    proc = None
    with quiet_transformers():
        for auto in (AutoVideoProcessor, AutoImageProcessor):
            try:
                proc = auto.from_pretrained(folder, **kw)
                break
            except Exception:  # noqa: BLE001 - no (or an unloadable) processor: try the next
                continue
    if proc is None:
        return Normalisation(IMAGENET_MEAN, IMAGENET_STD, 1 / 255, "imagenet (no processor)")
    do_norm = getattr(proc, "do_normalize", True) is not False
    do_rescale = getattr(proc, "do_rescale", True) is not False
    mean = _triple(getattr(proc, "image_mean", None), IMAGENET_MEAN) if do_norm else (0.0,) * 3
    std = _triple(getattr(proc, "image_std", None), IMAGENET_STD) if do_norm else (1.0,) * 3
    rescale = float(getattr(proc, "rescale_factor", 1 / 255)) if do_rescale else 1.0
    return Normalisation(mean, std, rescale, type(proc).__name__)  # type: ignore[arg-type]


def _classifier_module(model: nn.Module, arch: Architecture, where: str) -> nn.Module:
    from torch import nn

    head = getattr(model, arch.classifier, None)
    if not isinstance(head, nn.Linear):
        raise HFVideoError(
            f"{where}: {type(model).__name__} has no linear '{arch.classifier}' head to "
            "re-initialise for the dataset's labels"
        )
    return head


def make_video_classifier() -> type:
    """The :class:`VideoClassifier` class (built on first use: torch is imported here)."""
    global _VIDEO_CLASSIFIER
    if _VIDEO_CLASSIFIER is not None:
        return _VIDEO_CLASSIFIER
    import torch
    from torch import nn

    class VideoClassifier(nn.Module):
        """A transformers video classifier that takes uint8 ``(B, T, H, W, 3)`` frames:
        rescale and normalise as the processor does, lay out as ``(B, T, C, H, W)``, run
        the model; :meth:`features` returns the pooled clip feature the classifier sees
        (captured by a forward pre-hook, so it works for every architecture's pooling)."""

        def __init__(self, hf: nn.Module, arch: Architecture, norm: Normalisation) -> None:
            super().__init__()
            self.hf = hf
            self.arch = arch
            self.norm = norm
            std = torch.tensor(norm.std, dtype=torch.float32).view(1, 1, 3, 1, 1)
            mean = torch.tensor(norm.mean, dtype=torch.float32).view(1, 1, 3, 1, 1)
            # (pixel · rescale − mean) / std = pixel · mul + add
            self.register_buffer("_mul", norm.rescale / std, persistent=False)
            self.register_buffer("_add", -mean / std, persistent=False)

        @property
        def classifier(self) -> nn.Linear:
            return getattr(self.hf, self.arch.classifier)

        def pixels(self, frames: torch.Tensor) -> torch.Tensor:
            """uint8 (B, T, H, W, 3) → normalised float (B, T, 3, H, W)."""
            return frames.permute(0, 1, 4, 2, 3).float() * self._mul + self._add

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            out = self.hf(**{self.arch.input_name: self.pixels(frames)})
            return out.logits

        def features(self, frames: torch.Tensor) -> torch.Tensor:
            """Pooled clip features (B, D): the classifier's input."""
            seen: list[torch.Tensor] = []
            hook = self.classifier.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
            try:
                self.forward(frames)
            finally:
                hook.remove()
            return seen[0]

    _VIDEO_CLASSIFIER = VideoClassifier
    return VideoClassifier


_VIDEO_CLASSIFIER: type | None = None


def load_classifier(
    folder: Path,
    info: FolderInfo,
    labels: list[str],
    norm: Normalisation,
    seed: int,
    where: str,
    trust_remote_code: bool = False,
) -> nn.Module:
    """The pretrained model with a fresh ``len(labels)``-way head (CPU, fp32, eval mode).

    The head is re-initialised from ``seed`` even when the checkpoint's head has the same
    shape (a head fine-tuned on another dataset is not this dataset's). Backbone-only
    checkpoints load too (the head is new either way).
    """
    import torch
    from transformers import AutoModelForVideoClassification

    id2label = dict(enumerate(labels))
    try:
        with quiet_transformers():
            hf = AutoModelForVideoClassification.from_pretrained(
                folder,
                num_labels=len(labels),
                id2label=id2label,
                label2id={lb: i for i, lb in id2label.items()},
                ignore_mismatched_sizes=True,
                local_files_only=True,
                trust_remote_code=trust_remote_code,
                dtype=torch.float32,
            )
    except (OSError, ValueError, KeyError, RuntimeError, *read_errors()) as exc:
        reason = describe_read_error(exc)  # a damaged or unsafe weights file among them
        msg = f"{where}: cannot load a video classifier from {folder}: {reason}"
        raise HFVideoError(msg) from None
    head = _classifier_module(hf, info.arch, where)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head.reset_parameters()
    return make_video_classifier()(hf, info.arch, norm).eval()


# --------------------------------------------------------------------------- checkpoints


def save_finetuned(net: nn.Module, path: Path, sidecar: dict[str, Any]) -> Path:
    """Write ``net``'s full state dict (safetensors) and ``<stem>.json``, atomically: the
    weights first, so a sidecar always names complete weights."""
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors, path, {"format": CHECKPOINT_FORMAT})
    meta = {"format": CHECKPOINT_FORMAT, **sidecar}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str) + "\n")
    return path


def load_finetuned(
    net: nn.Module, path: Path, warn: Callable[[str], None]
) -> dict[str, Any] | None:
    """Load a checkpoint of :func:`save_finetuned` into ``net``; its sidecar, or None when
    there is none. A damaged one (truncated weights, bad sidecar, other shapes) is reported
    through ``warn`` in one line and removed, so the caller trains again."""
    from safetensors.torch import load_file

    side = path.with_suffix(".json")
    if not path.exists() and not side.exists():
        return None
    try:
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not an {CHECKPOINT_FORMAT} sidecar")
        tensors = load_file(str(path))
        net.load_state_dict(tensors, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: train again
        reason = " ".join(str(exc).split())[:200]
        warn(f"damaged checkpoint {path.name} ({reason}): removed, it is trained again")
        for p in (path, side):
            p.unlink(missing_ok=True)
        return None
    return meta


__all__ = [
    "CHECKPOINT_FORMAT",
    "FolderInfo",
    "HFVideoError",
    "Normalisation",
    "input_shape",
    "inspect_folder",
    "load_classifier",
    "load_finetuned",
    "load_normalisation",
    "make_video_classifier",
    "processor_config",
    "quiet_transformers",
    "save_finetuned",
]
