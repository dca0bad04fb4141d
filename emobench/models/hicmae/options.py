"""Options of the ``hicmae:`` family (``[models.options]``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from emobench.errors import EmobenchError
from emobench.models.vit_finetune_options import ViTFinetuneOptions
from emobench.settings import Bool, Int, PositiveInt


class HiCMAEError(EmobenchError):
    """A ``hicmae:`` checkpoint, option or input that cannot be used."""


class HiCMAEOptions(ViTFinetuneOptions):
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
    frame_size: Annotated[Int, Field(ge=16, le=1024)] = 160
    num_frames: PositiveInt = 16
    audio_frames: Annotated[Int, Field(ge=16)] = 256
    mel_bins: Annotated[Int, Field(ge=16)] = 128
    batch_size: PositiveInt = 4


__all__ = ["HiCMAEOptions"]
