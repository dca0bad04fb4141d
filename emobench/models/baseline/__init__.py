"""Vision-only baselines trained by emobench: a per-frame CNN encoder plus temporal heads.

The public names below are loaded lazily (they import torch), so importing this package is
cheap; ``from emobench.models.baseline import train_head`` works as usual.

* ``encoder``: ``FrameEncoder``, ``FrozenVisualEncoder``, ``encode_frames``
* ``heads`` (:mod:`emobench.training.temporal_heads`, shared with the linear probes of
  other families): ``HEADS`` (``mean``, ``gru``, ``transformer``), ``build_head``
* ``train``: ``TrainConfig``, ``train_encoder``, ``train_head``, ``predict_head``,
  ``save_module``, ``load_module``
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "FrameEncoder": "encoder",
    "FrozenVisualEncoder": "encoder",
    "encode_frames": "encoder",
    "HEADS": "emobench.training.temporal_heads",
    "build_head": "emobench.training.temporal_heads",
    "TrainConfig": "train",
    "train_encoder": "train",
    "train_head": "train",
    "predict_head": "train",
    "save_module": "train",
    "load_module": "train",
    "stratified_split": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        where = _EXPORTS[name]
        module = importlib.import_module(where if "." in where else f"{__name__}.{where}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
