"""The options every fine-tuned video-ViT family shares (``maedfer:``, ``hicmae:``): the
head's class names, the heads the checkpoint does not store, and the released fine-tuning
recipe (AdamW with the ``1e-3 · batch / 256`` learning-rate rule, layer decay 0.75, 5
warm-up epochs, drop path 0.1, cosine decay; bf16 autocast on CUDA with ``dtype = "auto"``).
A family subclasses :class:`ViTFinetuneOptions` and adds its own shapes and protocols.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from emobench.labels import canonical
from emobench.settings import Bool, Float, Int, PositiveInt, StrictModel, check_train

#: the released fine-tuning's base learning rate, per 256 clips of effective batch
#: (``lr = 1e-3 · batch / 256``, the VideoMAE scaling rule the released scripts use)
BASE_LR_PER_256 = 1e-3


class ViTFinetuneOptions(StrictModel):
    """Shared options (module docstring); ``lr`` None: :meth:`finetune_lr`'s rule."""

    classes: list[str] | None = None
    heads: PositiveInt | None = None
    lr: Annotated[Float, Field(gt=0)] | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt = 8
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

        names = [canonical(c) for c in v]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError("classes must name at least 2 distinct emotions")
        return names

    def finetune_lr(self) -> float:
        """``lr``, else ``1e-3 · batch_size · grad_accum / 256``."""
        return self.lr or BASE_LR_PER_256 * self.batch_size * self.grad_accum / 256


__all__ = ["BASE_LR_PER_256", "ViTFinetuneOptions"]
