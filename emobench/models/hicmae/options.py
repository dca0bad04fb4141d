"""Options of the ``hicmae:`` family (``[models.options]``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from emobench.settings import Bool, Float, Int, PositiveInt, StrictModel, check_train

#: the authors' base learning rate, scaled by effective batch / 256 as their script does
BASE_LR = 1e-3


class HiCMAEOptions(StrictModel):
    """``[models.options]`` of ``hicmae:<checkpoint>``.

    ``modality``: ``visual`` (the video encoder and its hierarchical layer pooling: the
    study's vision-only specialist) or ``audio-visual`` (audio encoder and cross-modal
    fusion too, on the clip's own audio track). ``finetune``: fine-tune from the checkpoint's
    encoders (the released VoxCeleb2 pre-training) per fold with the cell's re-balancing
    recipe; false evaluates a fine-tuned checkpoint's head as is (``{fold}`` in the path
    picks the fold's file). ``classes``: the head's class names in index order (default: the
    dataset's official order when the head has that many classes).
    ``heads``, ``frame_size``, ``num_frames``, ``audio_frames``, ``mel_bins``: shapes the
    checkpoint does not store (released: D/64 heads, 160 px, 16 frames, 256 × 128 log-mel).
    Fine-tuning as the authors' script: ``lr`` (default ``1e-3 × batch_size × grad_accum /
    256``), ``layer_decay`` 0.75, ``warmup_epochs`` 5, ``drop_path`` 0.1, cosine decay,
    AdamW; ``epochs`` overrides ``[train] epochs``; ``dtype = "auto"`` trains and predicts
    under bf16 autocast on CUDA (fp32 on CPU; bf16 moves probabilities by ~1e-2).
    """

    modality: Literal["visual", "audio-visual"] = "visual"
    finetune: Bool = True
    classes: list[str] | None = None
    heads: PositiveInt | None = None
    frame_size: Annotated[Int, Field(ge=16, le=1024)] = 160
    num_frames: PositiveInt = 16
    audio_frames: Annotated[Int, Field(ge=16)] = 256
    mel_bins: Annotated[Int, Field(ge=16)] = 128
    lr: Annotated[Float, Field(gt=0)] | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt = 4
    grad_accum: PositiveInt = 1
    layer_decay: Annotated[Float, Field(gt=0, le=1)] = 0.75
    warmup_epochs: Annotated[Int, Field(ge=0)] = 5
    drop_path: Annotated[Float, Field(ge=0, lt=1)] = 0.1
    dtype: Literal["auto", "float32"] = "auto"
    reuse_checkpoints: Bool = True
    preload_max_gb: Annotated[Float, Field(ge=0)] = 4.0
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train(v)

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from emobench.labels import canonical

        names = [canonical(c) for c in v]
        if len(set(names)) != len(names):
            raise ValueError("classes must not repeat a name")
        return names

    def finetune_lr(self) -> float:
        return self.lr or BASE_LR * self.batch_size * self.grad_accum / 256


__all__ = ["BASE_LR", "HiCMAEOptions"]
