"""Where the weights of ``openclip:<arch>[@<weights>]`` are, offline, and building the
open_clip model from them (see :mod:`emobench.models.openclip.adapter` for the spec forms).

Nothing is downloaded: a pretrained tag is read from the local Hugging Face / open_clip
cache, a weights file from its path, ``synth-web`` from the files shipped in
``emobench/models/weights``; a missing file is one clear error naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError
from emobench.models.registry import UnknownModelError
from emobench.models.weights_file import (
    WeightsFileError,
    describe_read_error,
    read_errors,
    tensor_names,
)
from emobench.provenance import file_sha256

PACKAGE_MODELS = Path(__file__).resolve().parent.parent
CONFIG_DIR = PACKAGE_MODELS / "configs"
WEIGHTS_DIR = PACKAGE_MODELS / "weights"
#: Weights that ship with emobench: (arch, tag) → file name in :data:`WEIGHTS_DIR`.
SHIPPED: dict[tuple[str, str], str] = {
    ("emobench-tiny", "synth-web"): "emobench-tiny-synth-web.safetensors",
}
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")


class WeightsNotFoundError(EmobenchError):
    """Weights that cannot be found offline (the message says which file and how to get it)."""


class OpenClipError(EmobenchError):
    """An open_clip model that cannot be built or used here (bad arch, tokenizer needs hub)."""


_CONFIGS_ADDED = False


def register_configs() -> None:
    """Make emobench's JSON model configs (``emobench-tiny``) known to open_clip (once)."""
    global _CONFIGS_ADDED
    if not _CONFIGS_ADDED:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _CONFIGS_ADDED = True


def parse_argument(argument: str) -> tuple[str, str | None]:
    """``"ViT-B-32@laion2b_s34b_b79k"`` → ``("ViT-B-32", "laion2b_s34b_b79k")``."""
    arch, sep, weights = argument.partition("@")
    if not arch or (sep and not weights):
        raise UnknownModelError(
            f"openclip:{argument}: expected openclip:<arch>[@<pretrained tag or weights file>]"
        )
    return arch, (weights or None)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.lower().endswith(_WEIGHT_SUFFIXES)


def _cached_tag_file(arch: str, tag: str, cache_dir: str | None) -> tuple[str | None, list[str]]:
    """The local file of a pretrained tag, if cached; plus the places looked at."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    looked: list[str] = []
    if "file" in cfg:
        looked.append(cfg["file"])
        return (cfg["file"] if os.path.isfile(cfg["file"]) else None), looked
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = (hub[:-1], "") if hub.endswith("/") else os.path.split(hub)
        names = [filename] if filename else []
        names = [n.replace(".bin", ".safetensors") for n in names if n.endswith(".bin")] + names
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in dict.fromkeys(names):
            looked.append(f"{repo}/{name} (Hugging Face cache)")
            got = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(got, str) and os.path.isfile(got):
                return got, looked
    url = cfg.get("url", "")
    if url:
        root = cache_dir or os.path.expanduser("~/.cache/clip")
        path = os.path.join(root, os.path.basename(url))
        looked.append(path)
        if os.path.isfile(path):
            return path, looked
    return None, looked


def resolve_weights(
    arch: str, spec: str | None, cache_dir: str | None = None
) -> tuple[str | None, str]:
    """Where the weights of ``openclip:<arch>@<spec>`` are on this machine.

    Returns ``(path or None for random init, tag recorded in the manifest)``; raises
    :class:`WeightsNotFoundError` naming the missing file and how to provide it.
    """
    import open_clip

    register_configs()
    if arch not in open_clip.list_models():
        raise UnknownModelError(
            f"openclip:{arch}: unknown open_clip architecture; see open_clip.list_models() "
            "or add a JSON config with open_clip.add_model_config"
        )
    if spec is None or spec == "random":
        return None, "random"
    if (arch, spec) in SHIPPED:
        path = WEIGHTS_DIR / SHIPPED[(arch, spec)]
        if not path.is_file():
            raise WeightsNotFoundError(
                f"openclip:{arch}@{spec}: shipped weights file {path} is missing; "
                f"regenerate it with `emobench pretrain {spec} --out {WEIGHTS_DIR}`"
            )
        return str(path), spec
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if spec in tags:
        path, looked = _cached_tag_file(arch, spec, cache_dir)
        if path is None:
            raise WeightsNotFoundError(
                f"openclip:{arch}@{spec}: weights are not in the local cache (looked for "
                f"{'; '.join(looked)}) and emobench never downloads; on a machine with network "
                f"run python -c \"import open_clip; open_clip.create_model('{arch}', "
                f"pretrained='{spec}')\" and copy the cache, or give the file: "
                f"openclip:{arch}@/path/to/weights.safetensors"
            )
        return path, spec
    if _looks_like_path(spec) or os.path.exists(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"openclip:{arch}@{spec}: weights file {path} not found; give the path of an "
                "open_clip state dict (.safetensors, .pt or .bin) or a cached pretrained tag"
            )
        return str(path), f"file:{path.name}"
    known = ", ".join(tags) if tags else "none"
    raise UnknownModelError(
        f"openclip:{arch}@{spec}: {spec!r} is neither a pretrained tag of {arch} "
        f"(known: {known}) nor a weights file path"
    )


def weights_preprocess(path: str | None) -> dict[str, int]:
    """``preprocess`` metadata of a safetensors weights file (``{}`` if none or not
    safetensors): how the model's training images were cut from rendered frames."""
    if not path or not str(path).endswith(".safetensors"):
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            raw = (fh.metadata() or {}).get("preprocess")
        value = json.loads(raw) if raw else {}
    except (OSError, ValueError, SafetensorError) as exc:
        raise OpenClipError(f"{path}: unreadable safetensors header: {exc}") from None
    return {k: int(v) for k, v in value.items() if k in ("frame_size", "crop")}


def file_hash(path: str) -> str:
    """SHA-256 prefix of a weights file (:func:`emobench.provenance.file_sha256`)."""
    return file_sha256(path)[:16]


def check_weights_file(arch: str, path: str) -> None:
    """Refuse, in one line naming the file, weights open_clip cannot load: a damaged,
    truncated or unsafe file (:func:`~emobench.models.weights_file.tensor_names`, no pickled
    code runs) and a Hugging Face transformers checkpoint (``text_model.*`` tensors)."""

    try:
        names = tensor_names(path)
    except WeightsFileError as exc:
        raise OpenClipError(f"openclip:{arch}: weights {exc}") from None
    if any(n.startswith(("text_model.", "vision_model.")) for n in names):
        raise OpenClipError(
            f"openclip:{arch}: weights {path} are a Hugging Face transformers checkpoint "
            "(text_model.* / vision_model.* tensors); give open_clip weights (e.g. the "
            "repository's open_clip_model.safetensors or open_clip_pytorch_model.bin)"
        )


def load_openclip(
    arch: str, path: str | None, device: Any = "cpu", seed: int = 0
) -> tuple[Any, Any]:
    """Build the open_clip model (eval mode) and its tokenizer, offline.

    Random initialisation (``path`` None) is seeded with ``seed`` without touching the
    caller's global torch RNG.
    """
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import open_clip

    register_configs()
    if path is not None and not str(path).endswith((".npz", ".npy")):  # npz: big_vision
        check_weights_file(arch, path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = open_clip.create_model(arch, pretrained=path, device=device)
        except (RuntimeError, OSError, ValueError, KeyError, *read_errors()) as exc:
            src = f" from {path}" if path else ""
            reason = describe_read_error(exc)
            raise OpenClipError(
                f"openclip:{arch}: could not build the model{src}: {reason}"
            ) from None
    try:
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # HF tokenizers need the hub: one clear line
        raise OpenClipError(
            f"openclip:{arch}: its tokenizer cannot be loaded offline ({type(exc).__name__}: "
            f"{exc}); use an architecture with open_clip's built-in tokenizer"
        ) from None
    return model.eval(), tokenizer


def pixel_normalisation(model: Any, default_size: int) -> tuple[int, Any, Any]:
    """An open_clip model's image side and its preprocessing as uint8-scale tensors
    ``(1, 3, 1, 1)``: ``(side, mean × 255, std × 255)`` (CLIP's mean / std where the model
    names none), so ``(x − mean) / std`` of raw pixel values is ``(x/255 − m) / s``."""
    import torch

    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = getattr(model.visual, "image_size", default_size)
    mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
    std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
    return (
        int(size if isinstance(size, int) else size[0]),
        torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0,
        torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0,
    )


__all__ = [
    "CONFIG_DIR",
    "OpenClipError",
    "SHIPPED",
    "WEIGHTS_DIR",
    "WeightsNotFoundError",
    "check_weights_file",
    "file_hash",
    "load_openclip",
    "parse_argument",
    "pixel_normalisation",
    "register_configs",
    "resolve_weights",
    "weights_preprocess",
]
