"""``openclip:<arch>[@<weights>]``: contrastive VLMs (open_clip) as zero-shot video classifiers.

``<arch>`` is any open_clip architecture (``open_clip.list_models()``) or ``emobench-tiny``
(shipped as a JSON model config in ``emobench/models/configs``). ``<weights>`` is

* a pretrained tag (``laion2b_s34b_b79k``), read from the local Hugging Face / open_clip
  cache only: nothing is downloaded, and a missing file is one clear error naming it;
* a local weights file (``.safetensors``, ``.pt``, ``.bin``; any path with a ``/``);
* ``synth-web`` for ``emobench-tiny``: the weights shipped in ``emobench/models/weights``
  (made by ``emobench pretrain synth-web``);
* absent or ``random``: randomly initialised weights (seeded; for tests and throughput).

Per-frame work (cached by the engine) is the L2-normalised image embedding, so every
density, frame order, pooling and prior correction reuses it. :meth:`OpenClipModel.score`
does the text side: a zero-shot classifier from prompt ensembles
(:mod:`emobench.models.openclip.prompts`) and a video pooling:

* ``mean`` (default): cosine similarity of the re-normalised mean frame embedding;
* ``max``: per class, the largest frame similarity;
* ``mean-logit``: per class, the mean of the frame similarities.

Scores are ``logit_scale · similarity`` (+ ``logit_bias`` for SigLIP-style models).

A ``.safetensors`` file may carry ``preprocess`` metadata (``{"frame_size": 112, "crop": 64}``,
written by ``emobench pretrain``): those become the defaults of ``frame_size`` and ``crop``,
so the benchmark's frames are prepared as the model saw its training images.

Options (``[models.options]``): ``pool``, ``probe`` (``none`` or ``linear``: a mean-pooling
linear head trained on the frozen features with the cell's re-balancing strategy, the
"pretrain, then class-balanced fine-tune" arm), ``prompts`` (``templates`` / ``words``),
``frame_size`` (decode side, default: the model's input size), ``crop`` (centre crop side
in decoded pixels before resizing to the input size, default none), ``batch_size`` (frames per
encoder call), ``seed`` (random initialisation), ``cache_dir`` (open_clip download cache),
``train`` (training overrides for the probe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from emobench.data.index import fingerprint
from emobench.errors import EmobenchError
from emobench.models.base import FitContext, FrameFeatureModel
from emobench.models.device import autocast, resolve_device, run_with_oom_backoff
from emobench.models.openclip.prompts import prompt_set
from emobench.models.openclip.weights import (
    CONFIG_DIR,
    SHIPPED,
    WEIGHTS_DIR,
    OpenClipError,
    WeightsNotFoundError,
    file_hash,
    load_openclip,
    parse_argument,
    pixel_normalisation,
    register_configs,
    resolve_weights,
    weights_preprocess,
)
from emobench.models.registry import UnknownModelError, parse_options, register_model
from emobench.models.roles import FamilyRole, always, option_on
from emobench.models.transfer import to_device, to_numpy
from emobench.settings import Int, PositiveInt, Seed, StrictModel, check_train
from emobench.training.checkpoint import load_checkpoint, recipe_hash, save_module
from emobench.video.frames import centre_crop

POOLS = ("mean", "max", "mean-logit")
PROBES = ("none", "linear")


class OpenClipOptions(StrictModel):
    """``[models.options]`` of ``openclip:<arch>[@<weights>]`` (see the module docstring).

    ``frame_size`` and ``crop`` default (None, or 0) to the weights' ``preprocess``
    metadata, else the model's input size and no crop; whether ``crop`` fits the frame size
    is checked when the model is built (the default frame size comes from the weights).
    """

    pool: Literal["mean", "max", "mean-logit"] = "mean"
    probe: Literal["none", "linear"] = "none"
    prompts: dict[str, Any] | None = None
    frame_size: Annotated[Int, Field(ge=0, le=4096)] | None = None
    crop: Annotated[Int, Field(ge=0)] | None = None
    batch_size: PositiveInt = 64
    seed: Seed = 0
    cache_dir: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            prompt_set(None, v)
        except EmobenchError as exc:  # pydantic names the field for ValueErrors
            raise ValueError(str(exc)) from None
        return v

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train(v)


#: The option names (kept for callers that listed them).
OPTIONS = tuple(OpenClipOptions.model_fields)


@register_model(
    "openclip",
    "contrastive VLM (open_clip) zero-shot from prompt ensembles, or a linear probe; "
    "openclip:<arch>[@<tag or weights file>], e.g. openclip:emobench-tiny@synth-web",
    options=OpenClipOptions,
    # zero-shot from prompts, or trained when it gets a linear probe; every pooling of its
    # frame embeddings (mean, max, mean-logit; the probe's mean) ignores their order
    role=FamilyRole("vlm", trained=option_on("probe"), order_invariant=always),
)
def _create(argument: str, options: dict[str, Any]) -> OpenClipModel:
    return OpenClipModel(argument, options)


# --------------------------------------------------------------------------- pooling


def pool_scores(
    clips: list[np.ndarray],
    classifier: np.ndarray,
    scale: float,
    pool: str = "mean",
    bias: float = 0.0,
) -> np.ndarray:
    """Zero-shot scores (B, C) from per-clip normalised frame embeddings [(K_i, E)].

    ``classifier`` holds the (C, E) normalised class embeddings. See the module docstring
    for the three poolings. Vectorised over all frames of all clips at once.
    """
    n_classes = classifier.shape[0]
    if not clips:
        return np.zeros((0, n_classes), dtype=np.float32)
    lengths = np.array([len(c) for c in clips])
    if lengths.min() < 1:
        raise OpenClipError("every clip needs at least one frame feature")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate([np.asarray(c, dtype=np.float32) for c in clips])
    w = np.asarray(classifier, dtype=np.float32)
    if pool == "mean":
        pooled = np.add.reduceat(flat, starts, axis=0) / lengths[:, None]
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        sims = pooled @ w.T
    elif pool == "max":
        sims = np.maximum.reduceat(flat @ w.T, starts, axis=0)
    elif pool == "mean-logit":
        sims = np.add.reduceat(flat @ w.T, starts, axis=0) / lengths[:, None]
    else:
        raise OpenClipError(f"unknown pool {pool!r}; allowed: {', '.join(POOLS)}")
    return (scale * sims + bias).astype(np.float32)


# --------------------------------------------------------------------------- the adapter


class OpenClipModel(FrameFeatureModel):
    """An open_clip model as a :class:`FrameFeatureModel` (module docstring)."""

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.options = dict(options)
        opts: OpenClipOptions = parse_options(f"openclip:{argument}", OpenClipOptions, options)
        self.arch, spec = parse_argument(argument)
        self.pool = opts.pool
        self.probe = opts.probe
        self.seed = opts.seed
        self.batch_size = opts.batch_size
        self.weights_path, self.weights_tag = resolve_weights(self.arch, spec, opts.cache_dir)
        self.labels: list[str] = []
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = "cpu"
        self._mean: Any = None
        self._std: Any = None
        self.image_size = 0
        meta = weights_preprocess(self.weights_path)
        self.frame_size = (
            (opts.frame_size or 0) or int(meta.get("frame_size", 0)) or self._config_image_size()
        )
        crop = opts.crop if opts.crop is not None else meta.get("crop", 0)
        self.crop = int(crop or 0)
        if not 0 <= self.crop <= self.frame_size:
            raise UnknownModelError(
                f"openclip: crop must be in 0..{self.frame_size} (the frame_size), got {crop}"
            )
        self._classifier: np.ndarray | None = None
        self._scale = 1.0
        self._bias = 0.0
        self._head: Any = None
        self._feature_key = ""
        self.history: dict[str, Any] = {}

    def _config_image_size(self) -> int:
        import open_clip

        cfg = open_clip.get_model_config(self.arch) or {}
        size = cfg.get("vision_cfg", {}).get("image_size", 224)
        return int(size if isinstance(size, int) else size[0])

    # ------------------------------------------------------------ loading
    def load(self, device: Any = "cpu") -> None:
        """Build the network on ``device`` (once) and set the feature-cache key."""
        import torch

        dev = resolve_device(device)
        if self._model is None:
            self._model, self._tokenizer = load_openclip(
                self.arch, self.weights_path, device=dev, seed=self.seed
            )
            self.image_size, self._mean, std = pixel_normalisation(self._model, self.frame_size)
            # (x/255 - mean)/std as one affine map of the uint8 values
            self._std = 1.0 / std
            with torch.no_grad():
                self._scale = float(self._model.logit_scale.exp().clamp(max=100.0))
                bias = getattr(self._model, "logit_bias", None)
                self._bias = float(bias) if bias is not None else 0.0
        elif dev != self._device:
            self._model.to(dev)
        self._device = dev
        self._mean, self._std = self._mean.to(dev), self._std.to(dev)
        weights = (
            f"random-s{self.seed}" if self.weights_path is None else file_hash(self.weights_path)
        )
        crop = f"c{self.crop}" if self.crop else ""
        self._feature_key = f"openclip-{self.arch}-{weights}-f{self.frame_size}{crop}"

    def class_embeddings(self, labels: list[str], dataset: str | None = None) -> np.ndarray:
        """(C, E) normalised prompt-ensemble embeddings of ``labels`` (CLIP-paper style)."""
        import torch

        if self._model is None:
            self.load()
        prompts = prompt_set(dataset, self.options.get("prompts")).prompts(labels)
        flat = [p for ps in prompts for p in ps]
        out = []
        with torch.inference_mode(), autocast(self._device):
            for start in range(0, len(flat), 256):
                tokens = self._tokenizer(flat[start : start + 256]).to(self._device)
                out.append(self._model.encode_text(tokens, normalize=True).float().cpu())
        emb = torch.cat(out)
        classes, start = [], 0
        for ps in prompts:
            c = emb[start : start + len(ps)].mean(0)
            classes.append(c / c.norm().clamp_min(1e-12))
            start += len(ps)
        return torch.stack(classes).numpy().astype(np.float32)

    # ------------------------------------------------------------ fitting
    def fit(self, ctx: FitContext) -> None:
        self.labels = list(ctx.labels)
        self.load(ctx.device)
        self._classifier = self.class_embeddings(self.labels, ctx.dataset)
        if self.probe == "linear":
            self._fit_probe(ctx)

    def _fit_probe(self, ctx: FitContext) -> None:
        # lazy: pulls in torch
        from emobench.training.heads import train_probe
        from emobench.training.loop import TrainConfig

        opts = {**ctx.train_options, **self.options.get("train", {})}
        cfg = TrainConfig(**{**opts, "seed": ctx.seed, "device": str(ctx.device)})
        train = ctx.train_index.sort("clip_id")
        recipe = {
            "features": self._feature_key,
            "data": fingerprint(train),
            "labels": self.labels,
            "head": "mean",
            "hidden": 0,
            "rebalancing": ctx.rebalancing,
            "train": cfg.to_dict(),
        }
        path = Path(ctx.checkpoint_dir) / (
            f"openclip-probe-{ctx.rebalancing}-{recipe_hash(recipe)}.safetensors"
        )
        self._head = load_checkpoint(path, ctx.warn)
        if self._head is not None:
            return
        feats, kept = ctx.load_features(self, train)
        y = np.array([self.labels.index(lb) for lb in train["label"].to_list()])[kept]

        def progress(epoch: int, n_epochs: int, metrics: dict[str, Any]) -> None:
            ctx.progress(f"training linear probe ({ctx.rebalancing})", epoch, n_epochs)

        self._head, hist = train_probe(
            feats, y, len(self.labels), ctx.rebalancing, cfg, progress=progress
        )
        save_module(self._head, path, {"recipe": recipe, "history": hist})
        self.history["probe"] = hist

    # ------------------------------------------------------------ inference
    @property
    def feature_key(self) -> str:
        return self._feature_key

    @property
    def feature_dim(self) -> int | None:
        return self.embed_dim or None

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) → L2-normalised image embeddings (N, E) float32.

        The uint8 frames go to the device as they are (on CUDA through pinned memory,
        asynchronously: :mod:`emobench.models.transfer`); conversion to float, the bicubic
        resize to the input size and the normalisation run there, and the embeddings come
        back in one copy at the end, so the host never waits for a batch in between.
        """
        import torch
        import torch.nn.functional as F

        if self._model is None:
            self.load()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise OpenClipError(
                f"encode needs uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        frames = centre_crop(frames, self.crop)
        n = len(frames)
        side = (self.image_size, self.image_size)

        def run(bs: int) -> np.ndarray:
            out = []
            with torch.inference_mode(), autocast(self._device):
                for s in range(0, n, bs):
                    x = to_device(frames[s : s + bs], self._device)
                    x = x.permute(0, 3, 1, 2).float()
                    if x.shape[-2:] != side:
                        x = F.interpolate(
                            x, size=side, mode="bicubic", align_corners=False, antialias=True
                        )
                    x = x.sub_(self._mean).mul_(self._std)  # x is a fresh float copy
                    out.append(self._model.encode_image(x, normalize=True))
            return to_numpy(out, self.embed_dim)

        return run_with_oom_backoff(run, self.batch_size)

    @property
    def embed_dim(self) -> int:
        """Width of the image embedding (0 before :meth:`load`)."""
        return int(getattr(self._model.visual, "output_dim", 0)) if self._model is not None else 0

    def score(self, clips: list[np.ndarray]) -> np.ndarray:
        if self._head is not None:
            # lazy: pulls in torch
            from emobench.training.heads import predict_head

            return predict_head(self._head, clips, device=self._device)
        if self._classifier is None:
            raise OpenClipError("openclip: score() before fit(): no class embeddings")
        return pool_scores(clips, self._classifier, self._scale, self.pool, self._bias)

    def describe(self) -> dict[str, Any]:
        prompts = prompt_set(None, self.options.get("prompts"))
        return {
            "arch": self.arch,
            "weights": self.weights_tag,
            "pool": "mean (probe)" if self.probe == "linear" else self.pool,
            "probe": self.probe,
            "frame_size": self.frame_size,
            "crop": self.crop or None,
            "n_templates": len(prompts.templates),
            "prompts_hash": recipe_hash(prompts.as_dict()),
        }


def __getattr__(name: str) -> Any:
    if name == "train_probe":  # moved to emobench.models.training (imports torch: lazily)
        # lazy: pulls in torch
        from emobench.training.heads import train_probe

        return train_probe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONFIG_DIR",
    "OpenClipError",
    "OpenClipModel",
    "POOLS",
    "SHIPPED",
    "WEIGHTS_DIR",
    "WeightsNotFoundError",
    "load_openclip",
    "parse_argument",
    "pool_scores",
    "register_configs",
    "resolve_weights",
]
