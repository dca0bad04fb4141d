"""Options of the ``hfvideo:`` family and what each supported architecture allows.

:data:`ARCHITECTURES` maps a transformers ``model_type`` to an :class:`Architecture`
record: the name of the forward's video argument, the config fields that hold the frame
count and frame side the weights were built for, and whether the model accepts other
values (TimeSformer interpolates its time and position embeddings, V-JEPA 2 uses rotary
positions; VideoMAE's sinusoid table and ViViT's learned embeddings are fixed in size).
Adding an architecture is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from emobench.registry import Registry
from emobench.settings import Bool, Float, Int, PositiveInt, StrictModel, check_train

#: bump when the meaning of a cached frozen feature changes
FEATURE_VERSION = 1


@dataclass(frozen=True)
class Architecture:
    """How emobench drives one ``AutoModelForVideoClassification`` architecture."""

    model_type: str
    #: keyword of the forward's ``(B, T, C, H, W)`` video tensor
    input_name: str = "pixel_values"
    #: config field holding the frame count the weights were built for
    frames_field: str = "num_frames"
    #: config field holding the square frame side the weights were built for
    size_field: str = "image_size"
    #: whether another frame count works (embeddings interpolated or relative)
    flexible_frames: bool = False
    #: whether another frame side (a multiple of the patch size) works
    flexible_size: bool = False
    #: the module the logits come from (re-initialised per dataset; its input is the
    #: pooled clip feature that frozen probes and classifier re-training use)
    classifier: str = "classifier"


#: Architectures by transformers ``model_type`` (module docstring). Other video
#: classifiers load with the defaults of :class:`Architecture` (fixed frames and size).
ARCHITECTURES: Registry[Architecture] = Registry(
    "video classifier architecture",
    {
        "videomae": Architecture("videomae"),
        "vivit": Architecture("vivit"),
        "timesformer": Architecture("timesformer", flexible_frames=True, flexible_size=True),
        "vjepa2": Architecture(
            "vjepa2",
            input_name="pixel_values_videos",
            frames_field="frames_per_clip",
            size_field="crop_size",
            flexible_frames=True,
            flexible_size=True,
        ),
    },
)


def architecture(model_type: str) -> Architecture:
    """The record of ``model_type`` (defaults for an architecture not listed)."""
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    return Architecture(model_type)


class HFVideoOptions(StrictModel):
    """``[models.options]`` of ``hfvideo:<model>``.

    ``frozen``: train a linear probe on the frozen backbone's pooled clip features instead
    of fine-tuning the whole network. ``lr``: AdamW learning rate of fine-tuning (default
    5e-5) or of the frozen probe (default: the run's ``[train] lr``); decoupled-crt's
    classifier re-training uses ``[train] lr``. ``epochs``: overrides ``[train] epochs``
    for this model.
    ``layer_decay``: layer-wise learning-rate decay of fine-tuning (block ``i`` of ``L``
    gets ``lr · layer_decay^(L − i)``; 1 = off, MAE-DFER uses 0.75). ``warmup_epochs``:
    linear learning-rate warm-up before the cosine decay (0 = none). ``batch_size``:
    clips per forward pass (training and prediction); ``grad_accum``:
    forward passes accumulated per optimizer step (effective batch = the product).
    ``dtype``: ``auto`` trains and predicts under bf16 autocast on CUDA (fp32 master
    weights) and fp32 elsewhere; ``float32`` never autocasts. ``frame_size``: decode side
    (default: the processor's crop size, else the model's). ``num_frames``: frames per
    clip fed to the model (default: the model's own; other values only for architectures
    that allow them). ``reuse_checkpoints``: load a saved fine-tune of the same recipe
    instead of training again. ``preload_max_gb``: training clips are decoded once and
    kept in memory when their frames fit in this many GiB, else decoded batch by batch.
    ``feature_cache``: keep frozen features on disk, content-keyed. ``train``: overrides
    of the run's ``[train]`` table for this model.
    """

    frozen: Bool = False
    lr: Annotated[Float, Field(gt=0)] | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt = 4
    grad_accum: PositiveInt = 1
    layer_decay: Annotated[Float, Field(gt=0, le=1)] = 1.0
    warmup_epochs: Annotated[Int, Field(ge=0)] = 0
    dtype: Literal["auto", "float32"] = "auto"
    frame_size: Annotated[Int, Field(ge=8, le=1024)] | None = None
    num_frames: PositiveInt | None = None
    reuse_checkpoints: Bool = True
    preload_max_gb: Annotated[Float, Field(ge=0)] = 4.0
    feature_cache: Bool = True
    revision: str | None = None
    trust_remote_code: Bool = False
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train(v)


#: The fine-tuning learning rate when ``lr`` is not given (full fine-tuning of a
#: pretrained transformer wants a far smaller rate than a head trained from scratch).
FINETUNE_LR = 5e-5

__all__ = [
    "ARCHITECTURES",
    "FEATURE_VERSION",
    "FINETUNE_LR",
    "Architecture",
    "HFVideoOptions",
    "architecture",
]
