"""Options of the ``maedfer:`` family (``[models.options]``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from emobench.models.vit_finetune_options import BASE_LR_PER_256, ViTFinetuneOptions
from emobench.settings import Bool, Float, Int, PositiveInt


class MAEDFEROptions(ViTFinetuneOptions):
    """``[models.options]`` of ``maedfer:<checkpoint file or folder>``.

    ``finetune``: false (default) evaluates the released fine-tuned head as is, one
    checkpoint per fold (``{fold}`` in the path is the fold number); true fine-tunes from
    the checkpoint's encoder (the VoxCeleb2 pre-trained one) on each fold with the cell's
    re-balancing recipe, as ``hfvideo:`` does. ``classes``: the head's class names in head
    order (default: the dataset's official order, mapped to emobench's names).
    ``heads``, ``image_size``, ``frames``, ``region_size`` (t, h, w tokens), ``pooling``
    (``region`` tokens as the released scripts, ``org`` local tokens, ``all``): what the
    tensor shapes cannot tell (default: the checkpoint's saved ``args``, else the
    released configuration: width/64 heads, 160 px, 16 frames, 2 × 5 × 10, region).
    ``test_protocol``: ``resample`` (default) feeds the cell's presented frames resampled to
    ``frames``; ``authors`` applies the released test protocol to the presented frames
    (every ``sampling_rate``-th frame, padded with the last to ``frames``,
    ``test_segments`` windows from the first to the last, softmax averaged), which
    reproduces the published protocol with the ``dense`` sampler. ``sampling_rate``:
    default from the checkpoint's ``args`` (4 DFEW / MAFW, 1 FERV39k), else 4.
    Fine-tuning: ``lr`` (default ``1e-3 · batch_size · grad_accum / 256``), ``epochs``,
    ``batch_size``, ``grad_accum``, ``layer_decay`` (0.75 as released), ``warmup_epochs``
    (5 as released), ``drop_path`` (0.1 as released), ``init_scale`` (the new head's
    weights × 0.001 as released). ``dtype``: ``auto`` runs bf16 autocast on CUDA (moves
    probabilities by ~0.02 against fp32) and fp32 elsewhere; ``float32`` never autocasts.
    """

    finetune: Bool = False
    image_size: Annotated[Int, Field(ge=8, le=1024)] | None = None
    frames: PositiveInt | None = None
    region_size: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] | None = None
    pooling: Literal["region", "org", "all"] | None = None
    test_protocol: Literal["resample", "authors"] = "resample"
    sampling_rate: PositiveInt | None = None
    test_segments: PositiveInt = 2
    init_scale: Annotated[Float, Field(ge=0)] = 1e-3

    def shape_options(self) -> dict[str, Any]:
        """The options :func:`~emobench.models.maedfer.checkpoint.infer_config` reads."""
        return {
            "heads": self.heads,
            "image_size": self.image_size,
            "frames": self.frames,
            "region_size": self.region_size,
            "pooling": self.pooling,
        }


__all__ = ["BASE_LR_PER_256", "MAEDFEROptions"]
