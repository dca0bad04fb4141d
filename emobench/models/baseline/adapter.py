"""``baseline:<head>``: the vision-only baseline that emobench trains itself.

A small CNN frame encoder trained from scratch (TSN-style segment-random frames, natural
class distribution), frozen, then a temporal head (``mean``, ``gru`` or ``transformer``)
trained on its cached per-frame features with the cell's re-balancing strategy. The
encoder is shared by every head and re-balancing strategy of a (dataset, fold, seed), so a
sweep trains it once; checkpoints (safetensors + JSON) live in the run folder and are
reused on rerun.

Options (``[models.options]``): ``frame_size`` (decode side, default 64), ``crop`` (centre
crop side fed to the encoder, default none: the whole frame), ``encoder`` (keyword
arguments of :class:`~emobench.models.baseline.encoder.FrameEncoder`, e.g. ``widths``,
``readout``, ``input_norm``), ``train`` (overrides of
:class:`~emobench.models.baseline.train.TrainConfig` for this model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from emobench.data.index import fingerprint
from emobench.models.base import FitContext, FrameFeatureModel
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import FamilyRole, always
from emobench.provenance import file_sha256
from emobench.settings import PositiveInt, StrictModel, check_train
from emobench.training.checkpoint import load_checkpoint, recipe_hash, save_module
from emobench.video.frames import centre_crop

HEAD_NAMES = ("mean", "gru", "transformer")
#: Heads that read the frames in order (``mean`` pools them: shuffling changes nothing).
ORDER_AWARE_HEADS = ("gru", "transformer")


class EncoderOptions(StrictModel):
    """``encoder``: keyword arguments of the CNN frame encoder (its ``side`` is the crop, or
    the frame size without one)."""

    widths: Annotated[tuple[PositiveInt, ...], Field(min_length=1)] = (16, 32, 64, 128)
    readout: Literal["spatial", "gap"] = "spatial"
    grid: PositiveInt = 4
    input_norm: Literal["fixed", "frame"] = "frame"


class BaselineOptions(StrictModel):
    """``[models.options]`` of ``baseline:<head>`` (see the module docstring)."""

    frame_size: Annotated[PositiveInt, Field(le=4096)] = 64
    crop: PositiveInt | None = None
    encoder: EncoderOptions = Field(default_factory=EncoderOptions)
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train(v)

    @model_validator(mode="after")
    def _crop_fits(self) -> BaselineOptions:
        if self.crop is not None and self.crop > self.frame_size:
            raise ValueError(
                f"crop must be in 1..{self.frame_size} (the frame_size), got {self.crop}"
            )
        return self


@register_model(
    "baseline",
    "vision-only baseline trained here: small CNN frame encoder + temporal head",
    arguments=HEAD_NAMES,
    options=BaselineOptions,
    role=FamilyRole(
        "vision-only",
        trained=always,
        temporal=lambda arg, opts: arg in ORDER_AWARE_HEADS,
        order_invariant=lambda arg, opts: arg not in ORDER_AWARE_HEADS,
    ),
)
def _create(head: str, options: dict[str, Any]) -> BaselineModel:
    return BaselineModel(head, options)


class BaselineModel(FrameFeatureModel):
    def __init__(self, head: str, options: dict[str, Any]) -> None:
        self.head_name = head
        self.options = dict(options)
        opts: BaselineOptions = parse_options(f"baseline:{head}", BaselineOptions, self.options)
        self.frame_size = opts.frame_size
        self.crop = opts.crop  # centre crop side (pixels) fed to the encoder
        # as written (not the defaults filled in): it is part of the checkpoint recipe
        self.encoder_kwargs = dict(self.options.get("encoder", {}))
        self._encoder: Any = None
        self._head: Any = None
        self._feature_key = ""
        self._device: Any = "cpu"
        self.labels: list[str] = []
        self.history: dict[str, Any] = {}

    # -------------------------------------------------------------- fitting
    def fit(self, ctx: FitContext) -> None:
        # lazy: pulls in torch
        from emobench.models.baseline.encoder import FrameEncoder
        from emobench.models.baseline.train import TrainConfig, train_encoder, train_head
        from emobench.training.temporal_heads import HEAD_VERSION

        self.labels = list(ctx.labels)
        self._device = ctx.device
        opts = {**ctx.train_options, **self.options.get("train", {})}
        cfg = TrainConfig(**{**opts, "seed": ctx.seed, "device": str(ctx.device)})
        train = ctx.train_index.sort("clip_id")
        y_all = np.array([self.labels.index(lb) for lb in train["label"].to_list()])
        n_classes = len(self.labels)
        data_fp = fingerprint(train)
        ckpt = Path(ctx.checkpoint_dir)
        enc_recipe = {
            "data": data_fp,
            "frame_size": self.frame_size,
            "crop": self.crop,
            "encoder": self.encoder_kwargs,
            "train": cfg.to_dict(),
            "labels": self.labels,
        }
        enc_path = ckpt / f"encoder-{recipe_hash(enc_recipe)}.safetensors"
        self._encoder = load_checkpoint(enc_path, ctx.warn)
        if self._encoder is None:
            frames, kept = ctx.load_frames(self, train)
            side = int(self.crop or self.frame_size)
            encoder = FrameEncoder(**{"side": side, **self.encoder_kwargs})
            self._encoder, hist = train_encoder(
                [self._centre(f) for f in frames],
                y_all[kept],
                n_classes,
                cfg,
                progress=_epochs(ctx, "training encoder"),
                encoder=encoder,
            )
            save_module(self._encoder, enc_path, {"recipe": enc_recipe, "history": hist})
            self.history["encoder"] = hist
        crop = f"c{self.crop}" if self.crop else ""
        self._feature_key = f"baseline-cnn{self.frame_size}{crop}-{file_sha256(enc_path)[:16]}"

        head_recipe = {
            "encoder": self._feature_key,
            "head": self.head_name,
            "head_version": HEAD_VERSION,
            "rebalancing": ctx.rebalancing,
            "train": enc_recipe["train"],
        }
        head_path = (
            ckpt / f"head-{self.head_name}-{ctx.rebalancing}-{recipe_hash(head_recipe)}.safetensors"
        )
        self._head = load_checkpoint(head_path, ctx.warn)
        if self._head is None:
            feats, kept = ctx.load_features(self, train)
            self._head, hist = train_head(
                feats,
                y_all[kept],
                n_classes,
                self.head_name,
                ctx.rebalancing,
                cfg,
                progress=_epochs(ctx, f"training {self.head_name} head ({ctx.rebalancing})"),
            )
            save_module(self._head, head_path, {"recipe": head_recipe, "history": hist})
            self.history["head"] = hist

    # -------------------------------------------------------------- inference
    @property
    def feature_key(self) -> str:
        return self._feature_key

    @property
    def feature_dim(self) -> int | None:
        return int(self._encoder.out_dim) if self._encoder is not None else None

    def encode(self, frames: np.ndarray) -> np.ndarray:
        # lazy: pulls in torch
        from emobench.models.baseline.encoder import encode_frames

        return encode_frames(self._encoder, self._centre(frames), device=self._device)

    def _centre(self, frames: np.ndarray) -> np.ndarray:
        """Centre crop (..., H, W, 3) to ``crop`` pixels: the face region of a framed face."""

        return centre_crop(frames, int(self.crop or 0))

    def score(self, clips: list[np.ndarray]) -> np.ndarray:
        # lazy: pulls in torch
        from emobench.training.heads import predict_head

        return predict_head(self._head, clips, device=self._device)

    def describe(self) -> dict[str, Any]:
        return {"head": self.head_name, "frame_size": self.frame_size, **self.encoder_kwargs}


def _epochs(ctx: FitContext, what: str) -> Any:
    def cb(epoch: int, n_epochs: int, metrics: dict[str, Any]) -> None:
        ctx.progress(what, epoch, n_epochs)

    return cb
