"""One user turn for a chat model (:class:`Request`) and the pieces of a clip's prompt that
every chat backend shares: the default question and instruction, the seeded option order,
the presented frame rate and the content digest of an array."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emobench.models.base import ClipInput

DEFAULT_QUESTION = "What is the emotional state of the person in this video?"
DEFAULT_INSTRUCTION = "Answer with one word from the options."


@dataclass
class Request:
    """One user turn for the model: content items in order, and the fps of its videos."""

    content: list[dict[str, Any]]
    fps: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def clip_permutation(clip_id: str, n: int, seed: int = 0) -> np.ndarray:
    """The seeded option permutation of a clip (the same on every run and machine)."""
    digest = hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(n)


def effective_fps(clip: ClipInput) -> float:
    """The rate of the presented frames: source fps × frames / source frames spanned."""
    idx = np.asarray(clip.indices)
    if len(idx) < 2:
        return float(clip.fps)
    span = int(idx.max() - idx.min()) + 1
    return float(clip.fps) * len(idx) / max(span, 1)


def array_digest(a: np.ndarray) -> str:
    """SHA-256 over an array's dtype, shape and bytes (the cache key form of frames)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()
