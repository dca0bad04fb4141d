"""The loaded-model cache of the ``hf:`` family: (model, processor, adapters) triples, so
the groups of a sweep load a model once. ``adapters`` is None for the plain model, else
(peft model, label-row delta) of the fine-tuned adapters whose fingerprint ends the key: a
model with adapters is never handed to a zero-shot group, nor one with other adapters."""

from __future__ import annotations

import sys
from typing import Any

#: at most two entries: the oldest is dropped first
_LOADED: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}


def remember(key: tuple[Any, ...], value: tuple[Any, Any, Any]) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entries beyond two."""
    while len(_LOADED) >= 2:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = value


def release_loaded() -> None:
    """Drop the loaded models (e.g. before fine-tuning loads its own copy), so that at
    most the models still referenced elsewhere stay in memory."""
    _LOADED.clear()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
