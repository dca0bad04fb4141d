"""The interface between the engine and a model.

A :class:`FrameFeatureModel` scores a clip from per-frame features. Its expensive part
(decoding and encoding each frame) is done once per (clip, frame, preprocessing, weights)
and cached by the engine, so every sampling density, frame order and prior correction of
a sweep reuses it; only the cheap clip-level head runs per cell.

Generative VLM adapters (whole-clip scoring with raw answer text) get their own protocol in
their issue; the engine dispatches on the adapter type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


@dataclass
class FitContext:
    """What a model may use to get ready for one (dataset, fold, seed, rebalancing).

    ``train_index`` holds only the fold's training rows: a trainer carves its validation
    split from them and never sees test clips.
    """

    dataset: str
    fold: int
    seed: int
    rebalancing: str
    labels: list[str]
    train_index: pl.DataFrame
    checkpoint_dir: Path
    device: Any
    train_options: dict[str, Any]
    #: (model, rows) → per-clip uint8 frames (all frames) at the model's frame size;
    #: clips that fail to decode are skipped, counted and reported by the engine.
    load_frames: Callable[[FrameFeatureModel, pl.DataFrame], tuple[list[np.ndarray], list[int]]]
    #: (model, rows) → per-clip features of all frames (from the cache when present).
    load_features: Callable[[FrameFeatureModel, pl.DataFrame], tuple[list[np.ndarray], list[int]]]
    #: progress(description, completed, total) for long training steps.
    progress: Callable[[str, int, int], None] = lambda *_: None
    #: warn(line): a one-line warning shown to the user and kept in the manifest
    warn: Callable[[str], None] = lambda _: None
    notes: dict[str, Any] = field(default_factory=dict)


class FrameFeatureModel(ABC):
    """A model whose clip score is a function of per-frame features."""

    #: square side, in pixels, that frames are decoded at for this model
    frame_size: int = 112
    #: output label order (set by :meth:`fit`)
    labels: list[str]

    @abstractmethod
    def fit(self, ctx: FitContext) -> None:
        """Train or load weights for this context (reuse checkpoints when present)."""

    @property
    @abstractmethod
    def feature_key(self) -> str:
        """Identifies preprocessing + encoder weights: the per-frame feature cache key."""

    @abstractmethod
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) → float32 features (N, D)."""

    @abstractmethod
    def score(self, clips: list[np.ndarray]) -> np.ndarray:
        """Per-clip feature sequences [(K_i, D)] in presentation order → scores (B, C)."""

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the manifest."""
        return {}
