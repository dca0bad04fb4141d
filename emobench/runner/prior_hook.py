"""The engine's prior-correction hook: held-out clips, the correction, its estimate.

Every scorer turns a cell's test scores into corrected scores with :func:`correct` (via
:meth:`emobench.runner.scorers.GroupJob.correct`). It applies the cell's prior correction
(:mod:`emobench.longtail.prior`), passing held-out labelled clips to a correction that
needs them, and records what a correction that estimates a label prior estimated, with a
warning when the estimate puts most of its mass (> :data:`COLLAPSE_SHARE`) on one class
and at least twice that class's training share: the corrected predictions then collapse
into that class. (A class that already holds most of the training clips, such as neutral
in some datasets, may well hold most of the test clips too: no warning for that.)

Held-out clips (``calibrated-em``): a class-stratified carve-out of the fold's training
clips (:func:`carve_out`: :data:`HELD_OUT_SHARE` of each class, at least
:data:`HELD_OUT_MIN_PER_CLASS` clips of a class that has more, at most
:data:`HELD_OUT_MAX` in all, drawn with the cell seed). Cells with such a correction form
their own group (:attr:`emobench.runner.plan.Cell.group_key`): their model is fitted on
the remaining training clips, so the carve-out is truly held out also for models trained
here (a zero-shot model ignores its training clips; it is only loaded once more). The
carve-out is scored like the test clips (same sampler, order, enrichment) without a prior
correction (:func:`score_held_out`).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.longtail.prior import apply_prior, estimate_prior_of, needs_calibration

if TYPE_CHECKING:
    from emobench.runner.plan import Cell
    from emobench.runner.scorers import GroupJob, Scorer

#: Share of each class's training clips held out for calibration.
HELD_OUT_SHARE = 0.2
#: Each class keeps at least this many held-out clips (when it has more training clips).
HELD_OUT_MIN_PER_CLASS = 2
#: At most this many held-out clips per fold (model calls are not free).
HELD_OUT_MAX = 1000
#: An estimated label prior with more than this share on one class draws a warning.
COLLAPSE_SHARE = 0.5
#: ... and at least this many times the class's share of the training clips.
COLLAPSE_RATIO = 2.0


def carve_out(
    train: pl.DataFrame, labels: list[str], seed: int, fold: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training clips kept, held-out clips): a class-stratified, seeded carve-out."""
    rng = np.random.default_rng([int(seed), int(fold), zlib.crc32(b"held-out")])
    ids = sorted(train["clip_id"].to_list())
    label_of = dict(zip(train["clip_id"].to_list(), train["label"].to_list(), strict=True))
    n_total = min(HELD_OUT_MAX, int(round(HELD_OUT_SHARE * len(ids))))
    share = n_total / max(len(ids), 1)
    held: list[str] = []
    for lab in labels:
        mine = [c for c in ids if label_of[c] == lab]
        if len(mine) < 2:
            continue
        k = min(len(mine) - 1, max(HELD_OUT_MIN_PER_CLASS, int(round(share * len(mine)))))
        held += [mine[i] for i in sorted(rng.choice(len(mine), size=k, replace=False))]
    is_held = pl.col("clip_id").is_in(held)
    return train.filter(~is_held), train.filter(is_held).sort("clip_id")


def held_out_for(
    cell: Cell, train: pl.DataFrame, labels: list[str], fold: int
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """:func:`carve_out` for a group whose prior correction needs held-out clips (its
    first cell stands for all: :attr:`~emobench.runner.plan.Cell.group_key`), else None."""

    if not needs_calibration(cell.prior_correction):
        return None
    return carve_out(train, labels, cell.seed, fold)


def with_prior_note(
    info: dict[str, Any], job: GroupJob, cell: Cell, fold: int, warnings: list[str]
) -> dict[str, Any]:
    """The cell's part info with its prior note (``prior_estimate``); a collapse warning
    also joins the run's ``warnings``."""
    note = job.prior_notes.get(cell.cell_id)
    if note is None:
        return info
    if "warning" in note:
        warnings.append(f"{cell.cell_id} fold {fold}: {note['warning']}")
    return {**info, "prior_estimate": note}


def score_held_out(
    scorer: Scorer, job: GroupJob, held: pl.DataFrame
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``cell_id → (scores (M, C), label indices (M,))`` of the held-out clips, scored by
    each cell's settings without a prior correction; clips without a score left out."""
    cells = [dataclasses.replace(c, prior_correction="none") for c in job.cells]
    held_job = dataclasses.replace(job, cells=cells, test=held, skips={}, calibration={})
    index = {lab: i for i, lab in enumerate(job.labels)}
    cols = [f"score:{lab}" for lab in job.labels]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for orig, (cell, part, _) in zip(job.cells, scorer.score_group(held_job), strict=True):
        assert cell.cell_id == dataclasses.replace(orig, prior_correction="none").cell_id
        z = part.select(cols).to_numpy().astype(np.float64)
        z = np.where(np.isnan(z), -np.inf, z)
        y = np.array([index[x] for x in part["label"].to_list()], dtype=np.int64)
        keep = np.isfinite(z).any(axis=1)
        out[orig.cell_id] = (z[keep], y[keep])
    return out


def correct(job: GroupJob, cell: Cell, scores: np.ndarray) -> np.ndarray:
    """The cell's prior correction of (N, C) test ``scores`` (module docstring); what it
    estimated goes to ``job.prior_notes[cell.cell_id]``."""

    name = cell.prior_correction
    params: dict[str, Any] = {}
    if needs_calibration(name):
        if cell.cell_id not in job.calibration:
            raise EmobenchError(f"{name}: no held-out clips were scored for {cell.cell_id}")
        params["calibration"] = job.calibration[cell.cell_id]
    out = apply_prior(name, scores, job.prior, **params)
    if len(scores):
        est = estimate_prior_of(name, scores, job.prior, **params)
        if est is not None:
            job.prior_notes[cell.cell_id] = prior_note(
                name, est, job.labels, params, train_prior=job.prior
            )
    return out


def prior_note(
    name: str,
    estimate: np.ndarray,
    labels: list[str],
    params: dict[str, Any],
    train_prior: np.ndarray | None = None,
) -> dict[str, Any]:
    """What the cell records about its estimated prior (manifest ``cell_info``); a warning
    when it holds more than :data:`COLLAPSE_SHARE` on one class and at least
    :data:`COLLAPSE_RATIO` times that class's share of ``train_prior`` (when given)."""
    top = int(np.argmax(estimate))
    note: dict[str, Any] = {
        "correction": name,
        "estimated_prior": {
            lab: round(float(v), 6) for lab, v in zip(labels, estimate, strict=True)
        },
        "max_share": round(float(estimate[top]), 6),
        "max_class": labels[top],
    }
    if "calibration" in params:
        note["held_out_clips"] = int(len(params["calibration"][1]))
    trained = None if train_prior is None else float(np.asarray(train_prior)[top])
    if estimate[top] > COLLAPSE_SHARE and (
        trained is None or estimate[top] >= COLLAPSE_RATIO * trained
    ):
        note["warning"] = (
            f"{name} estimated a label prior with {estimate[top]:.0%} of its mass on "
            f"{labels[top]!r}: the corrected predictions collapse towards it"
            + ("" if "calibration" in params else " (uncalibrated scores? try calibrated-em)")
        )
    return note


__all__ = [
    "COLLAPSE_RATIO",
    "COLLAPSE_SHARE",
    "HELD_OUT_MAX",
    "HELD_OUT_MIN_PER_CLASS",
    "HELD_OUT_SHARE",
    "carve_out",
    "correct",
    "held_out_for",
    "prior_note",
    "score_held_out",
    "with_prior_note",
]
