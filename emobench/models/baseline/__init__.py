"""Vision-only baselines trained by emobench: a per-frame CNN encoder plus temporal heads.

The public names below are loaded lazily (they import torch), so importing this package is
cheap; ``from emobench.models.baseline import train_head`` works as usual.

* ``encoder``: ``FrameEncoder``, ``FrozenVisualEncoder``, ``encode_frames``
* ``heads``: ``HEADS`` (``mean``, ``gru``, ``transformer``), ``build_head``
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
    "HEADS": "heads",
    "build_head": "heads",
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
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
