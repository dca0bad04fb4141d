"""The interface between the engine and a model: two model kinds, one scorer each.

Every model has a :attr:`kind`; the engine runs a group of cells through the scorer
registered for that kind (:mod:`emobench.runner.scorers`):

- ``frame-features`` — :class:`FrameFeatureModel`: scores a clip from per-frame features.
  Its expensive part (decoding and encoding each frame) is done once per (clip, frame,
  preprocessing, weights) and cached by the engine, so every sampling density, frame order
  and prior correction of a sweep reuses it; only the cheap clip-level head runs per cell.
- ``clip`` — :class:`ClipModel`: takes a clip's sampled frames in presentation order (and,
  with context enrichment, a message) and returns class scores and/or its raw answer text
  (:class:`ClipOutput`); generative VLMs and API models are of this kind. The engine
  samples, orders and decodes the frames, parses answers and records the raw text.
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
    #: the run's content-keyed cache folder (features; a model may keep e.g. generations
    #: under its own subfolder), shared by runs that use the same cache
    cache_dir: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: what the fold's training is made from beside the model's own recipe (the training
    #: media's fingerprint, whose pixels the decoder gave, the code version): the engine
    #: keys ``checkpoint_dir`` by it (:mod:`emobench.runner.inputs`)
    inputs: dict[str, str] = field(default_factory=dict)
    #: clip id → a token of that clip's media, decoder and code version: a model that keeps
    #: per-clip artefacts of its own (e.g. frozen features) keys them by it
    media_token: Callable[[str], str] = lambda clip_id: ""
    #: clip id → the clip's media path, for any clip of the dataset ("" when unknown): a
    #: model that reads more than the decoded frames (``hicmae:``'s audio track) opens it
    clip_path: Callable[[str], str] = lambda clip_id: ""


class FrameFeatureModel(ABC):
    """A model whose clip score is a function of per-frame features."""

    #: the model kind: selects the engine's scorer
    kind: str = "frame-features"
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

    @property
    def feature_dim(self) -> int | None:
        """``D``, the features per frame :meth:`encode` returns, once known (after
        :meth:`fit`); a cached entry of another width is recomputed. None: unknown (the
        cache is checked against what ``encode`` returns)."""
        return None

    @abstractmethod
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) → float32 features (N, D)."""

    @abstractmethod
    def score(self, clips: list[np.ndarray]) -> np.ndarray:
        """Per-clip feature sequences [(K_i, D)] in presentation order → scores (B, C)."""

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the manifest."""
        return {}


@dataclass(frozen=True)
class ClipInput:
    """One clip as a :class:`ClipModel` sees it."""

    clip_id: str
    #: uint8 RGB frames ``(T, H, W, 3)`` in presentation order (after the cell's order)
    frames: np.ndarray
    #: the source frame index of each presented frame
    indices: np.ndarray
    #: frames per second of the source video
    fps: float
    #: the cell's enrichment: ``none``, ``msce`` (keyframes + a description of each gap),
    #: ``msce-text`` (descriptions only) or ``msce-dense`` (``frames`` holds the keyframes
    #: and every in-between frame, in order: a plain clip for the model)
    enrichment: str = "none"
    #: msce / msce-text: for each gap between consecutive presented frames, the frames in
    #: between (uint8 ``(G_i, H, W, 3)``, from the earlier keyframe towards the later one)
    between: tuple[np.ndarray, ...] = ()
    #: the source frame indices of ``between``
    between_indices: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class ClipOutput:
    """A :class:`ClipModel`'s answer for one clip.

    ``scores``: one value per label in :attr:`ClipModel.labels` order (higher = more
    likely), or None; ``text``: the raw answer, or None. With scores the prediction is
    their argmax (after the cell's prior correction); with text only, the label the answer
    names (``invalid`` when it names none or several).
    """

    scores: np.ndarray | None = None
    text: str | None = None
    #: the enrichment text the model was given (e.g. MSCE's gap descriptions), stored with
    #: the prediction so a reader sees what the model was told
    context: str | None = None


class ClipModel(ABC):
    """A model that answers for a whole clip from its sampled frames (generative VLMs)."""

    kind: str = "clip"
    #: square side frames are decoded at (None: the video's own size)
    frame_size: int | None = None
    #: clips per :meth:`predict` call
    batch_size: int = 8
    #: in-between frames per gap that MSCE enrichments decode (``G``)
    gap_frames: int = 4
    #: output label order (set by :meth:`fit`)
    labels: list[str]

    @abstractmethod
    def fit(self, ctx: FitContext) -> None:
        """Get ready for this context (load weights, fine-tune; reuse checkpoints)."""

    @abstractmethod
    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        """One :class:`ClipOutput` per clip, in order."""

    def describe(self) -> dict[str, Any]:
        """What the last :meth:`predict` calls used (prompt, options, frames, pixels per
        frame, visual tokens, model and describer calls, ...): the engine records it per
        cell in the manifest's ``cell_info`` and resets it with :meth:`reset_stats`."""
        return {}

    def reset_stats(self) -> None:  # noqa: B027  (optional hook: nothing to reset by default)
        """Start counting a new cell (see :meth:`describe`)."""
