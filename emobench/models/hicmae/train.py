"""Fine-tuning a HiCMAE classifier with the ``hfvideo:`` loop
(:func:`emobench.models.hfvideo.train.finetune`: every re-balancing recipe, validation
split and early stopping, AdamW with warm-up and cosine decay, layer-wise learning-rate
decay, bf16 autocast on CUDA).

That loop numbers layers for the learning-rate decay by transformers' parameter names;
HiCMAE's are the authors' (``encoder.blocks.3.``, ``encoder_fusion.blocks_audio.0.``), so
while it runs :func:`finetune` lets a network that has ``layer_ids()`` give its own
numbering (:meth:`~emobench.models.hicmae.network.HiCMAE.layer_ids`, the authors'
audio-visual assigner); other networks keep the loop's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def own_layer_ids() -> Iterator[None]:
    """Within the block, :func:`emobench.models.hfvideo.train.layer_ids` asks the network
    first (module docstring)."""
    from emobench.models.hfvideo import train as loop

    original = loop.layer_ids

    def layer_ids(net: Any) -> dict[str, int]:
        own = getattr(net, "layer_ids", None)
        return own() if callable(own) else original(net)

    loop.layer_ids = layer_ids
    try:
        yield
    finally:
        loop.layer_ids = original


def finetune(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`emobench.models.hfvideo.train.finetune` with HiCMAE's layer numbering."""
    from emobench.models.hfvideo.train import finetune as run

    with own_layer_ids():
        return run(*args, **kwargs)


__all__ = ["finetune", "own_layer_ids"]
