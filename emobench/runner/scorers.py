"""One scorer per model kind: how a fitted model's group of cells becomes predictions.

The engine (:mod:`emobench.runner.execute`) keeps the plan, parts, skips, resume and the
manifest; for each group (cells that share a fitted model on one fold) it hands a
:class:`GroupJob` to the scorer registered for the model's :attr:`kind`
(:data:`SCORERS`), which yields one predictions part per cell. Adding a model kind is
one scorer module registered here plus its adapters.

Shared by every scorer: :func:`clip_seed` (per-clip sampling seeds, identical across
models and cells), :func:`sampled_indices` (a cell's sampler and frame order applied to a
clip) and :func:`build_part` (the predictions table of one cell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from emobench.labels import INVALID
from emobench.registry import Registry
from emobench.results import validate_predictions
from emobench.runner.plan import Cell
from emobench.runner.prior_hook import correct
from emobench.video.sampling import apply_order, sample


def clip_seed(seed: int, clip_id: str, salt: str = "") -> int:
    """A per-clip seed derived from the cell seed: identical across models and cells."""
    h = hashlib.sha1(f"{seed}|{clip_id}|{salt}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def window(r: dict[str, Any]) -> tuple[int, int] | None:
    """A clip's annotated onset..offset window, when it has one."""
    if r.get("onset") is None or r.get("offset") is None:
        return None
    return (int(r["onset"]), int(r["offset"]))


def sampled_indices(cell: Cell, r: dict[str, Any]) -> np.ndarray:
    """The frames a cell presents for a clip: its sampler, then its frame order."""

    seed = clip_seed(cell.seed, r["clip_id"])
    idx = sample(r["n_frames"], r["fps"], cell.sampler, seed, window(r))
    return apply_order(idx, cell.order, clip_seed(cell.seed, r["clip_id"], "order"))


@dataclass
class GroupJob:
    """What a scorer needs for one group: its cells on one fold, and the fitted model."""

    cells: list[Cell]
    fold: int
    labels: list[str]  # the dataset's label order (columns of the predictions)
    test: pl.DataFrame  # the fold's test clips, sorted by clip_id
    model: Any
    prior: np.ndarray  # training class frequencies, in ``labels`` order
    #: clips of this group that could not be read: id → reason (shared with fitting)
    skips: dict[str, str] = field(default_factory=dict)
    #: held-out labelled clips' scores per cell that needs them: cell_id → (scores, labels)
    calibration: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: what each cell's prior correction estimated (cell_id → note; may hold a warning)
    prior_notes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def correct(self, cell: Cell, scores: np.ndarray) -> np.ndarray:
        """The cell's prior correction of (N, C) scores (:mod:`emobench.runner.prior_hook`)."""

        return correct(self, cell, scores)

    @property
    def columns(self) -> list[int | None]:
        """For each dataset label, its position in the model's output (None: absent)."""
        out = self.model.labels
        return [out.index(lb) if lb in out else None for lb in self.labels]


@dataclass
class Services:
    """What the engine lends its scorers: caches, the media reader, progress, timings."""

    features: Any  # emobench.runner.cache.FeatureCache
    media: Any  # emobench.runner.media.MediaReader
    progress: Any  # emobench.runner.work.WorkProgress
    #: wall seconds per phase (``features``: decode + encode, ``score``: heads + parts)
    timings: dict[str, float]


class Scorer(Protocol):
    """Turns a group of cells into predictions parts, one per cell, each with what the model
    reports about that cell (:meth:`emobench.models.base.ClipModel.describe`; may be empty)."""

    def score_group(self, job: GroupJob) -> Iterator[tuple[Cell, pl.DataFrame, dict[str, Any]]]: ...


#: model kind → scorer class ``(services) -> Scorer``; see :mod:`emobench.models.base`.
#: The built-in scorers' modules are imported on the first lookup.
SCORERS: Registry[Callable[..., Scorer]] = Registry(
    "model kind",
    modules=(
        "emobench.runner.frame_features",
        "emobench.runner.clip_scorer",
        "emobench.runner.imported",
    ),
)


def register_scorer(kind: str) -> Callable[[type], type]:
    """Class decorator: the scorer for models of ``kind``."""
    return SCORERS.register(kind)


def scorer_for(model: Any, services: Any) -> Scorer:
    """The scorer of a model's kind."""
    return SCORERS[getattr(model, "kind", "frame-features")](services)


def to_dataset_order(raw: np.ndarray, columns: list[int | None]) -> np.ndarray:
    """Model-order scores (B, C_model) → dataset-order scores (B, C); absent labels -inf."""
    scores = np.full((raw.shape[0], len(columns)), -np.inf)
    for j, c in enumerate(columns):
        if c is not None and raw.size:
            scores[:, j] = raw[:, c]
    return scores


def argmax_labels(scores: np.ndarray, labels: list[str]) -> list[str]:
    """Each row's highest-scoring label; ``invalid`` for a row without a finite score."""
    best = scores.argmax(axis=1) if len(scores) else []
    return [
        labels[int(i)] if np.isfinite(s).any() else INVALID
        for i, s in zip(best, scores, strict=True)
    ]


def build_part(
    cell: Cell,
    fold: int,
    rows: list[dict[str, Any]],
    labels: list[str],
    scores: np.ndarray,
    *,
    preds: list[str] | None = None,
    texts: list[str | None] | None = None,
    contexts: list[str | None] | None = None,
    n_frames: list[int],
    n_unique: list[int],
    latency: list[float],
) -> pl.DataFrame:
    """The predictions part of one cell on one fold (validated).

    ``scores`` (rows × labels, dataset order; -inf or NaN = no score) give the prediction
    by argmax unless ``preds`` are given; a row without any finite score is ``invalid``.
    """

    n = len(rows)
    if preds is None:
        preds = argmax_labels(scores, labels)
    data: dict[str, Any] = {
        "cell_id": [cell.cell_id] * n,
        **{k: [v] * n for k, v in cell.settings().items()},
        "fold": [fold] * n,
        "clip_id": [r["clip_id"] for r in rows],
        "label": [r["label"] for r in rows],
        "pred": preds,
        "raw_text": texts if texts is not None else [None] * n,
        "context": contexts if contexts is not None else [None] * n,
        "micro": [r.get("micro") for r in rows],
        "scene": [r.get("scene") for r in rows],
        "n_frames": n_frames,
        "n_unique_frames": n_unique,
        "latency_s": latency,
    }
    for j, lb in enumerate(labels):
        v = scores[:, j] if n else np.zeros(0)
        data[f"score:{lb}"] = [float(x) if np.isfinite(x) else None for x in v]
    return validate_predictions(pl.DataFrame(data, strict=False))
