"""The scorer of ``clip`` models (generative VLMs, API models): frames in, answers out.

For each cell and test clip it samples the cell's frames, orders them, decodes them (one
decode per clip for the union of the group's frames, through the frame cache), and asks
the model in batches of :attr:`~emobench.models.base.ClipModel.batch_size` clips. An
answer with scores is predicted by their argmax after the cell's prior correction; an
answer with text only by the label the text names
(:func:`emobench.answers.parse_answer`); the raw text
is always kept in the predictions table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from emobench.answers import parse_answer
from emobench.errors import EmobenchError
from emobench.models.base import ClipInput
from emobench.runner.media import record_skips
from emobench.runner.plan import Cell
from emobench.runner.scorers import (
    GroupJob,
    Services,
    argmax_labels,
    build_part,
    register_scorer,
    sampled_indices,
    to_dataset_order,
)
from emobench.video.sampling import between_indices, n_unique


@dataclass(frozen=True)
class ClipView:
    """The frames one cell shows the model for one clip."""

    #: presented frame indices, in presentation order
    indices: np.ndarray
    #: msce / msce-text: the in-between frame indices of each gap of ``indices``
    between: tuple[np.ndarray, ...] = ()

    def needed(self) -> np.ndarray:
        """Every frame index to decode for this view."""
        return np.concatenate([self.indices, *self.between]).astype(np.int64)


def clip_view(cell: Cell, r: dict[str, Any], gap: int) -> ClipView:
    """A cell's view of a clip: its sampler and order give the keyframes; ``msce-dense``
    adds the ``gap`` in-between frames of each gap to them, ``msce``/``msce-text`` pass the
    in-between frames separately for the model's describer."""

    keys = sampled_indices(cell, r)
    gaps = tuple(between_indices(a, b, gap) for a, b in zip(keys[:-1], keys[1:], strict=True))
    if cell.enrichment == "msce-dense":
        dense = [keys[:1], *(np.concatenate([g, keys[i + 1 : i + 2]]) for i, g in enumerate(gaps))]
        return ClipView(np.concatenate(dense).astype(np.int64))
    if cell.enrichment in ("msce", "msce-text"):
        return ClipView(keys, gaps)
    return ClipView(keys)


@register_scorer("clip")
class ClipScorer:
    def __init__(self, services: Services) -> None:
        self.s = services

    def all_features(self, model: Any, rows: pl.DataFrame, skips: dict[str, str]) -> Any:
        raise EmobenchError(f"{type(model).__name__} is a clip model: it has no frame features")

    def score_group(self, job: GroupJob) -> Iterator[tuple[Cell, pl.DataFrame, dict[str, Any]]]:
        model = job.model
        gap = int(getattr(model, "gap_frames", 4))
        t = time.perf_counter()
        test = list(job.test.iter_rows(named=True))
        views = {c.cell_id: [clip_view(c, r, gap) for r in test] for c in job.cells}
        frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        bad: dict[str, str] = {}
        self.s.progress.start("decoding test clips", len(test))
        unions = (
            (r, np.unique(np.concatenate([v[i].needed() for v in views.values()])))
            for i, r in enumerate(test)
        )
        for d in self.s.media.decode_ahead(unions, model.frame_size):  # decoded in workers
            cid = d.job.row["clip_id"]
            if d.ok:
                frames[cid] = (d.job.indices, d.frames)
            else:
                bad[cid] = str(d.reason)
            self.s.progress.advance()
        self.s.media.check_failures(bad, job.test, "test")
        record_skips(job.skips, bad, "test")
        self.s.timings["features"] += time.perf_counter() - t
        for cell in job.cells:
            keep = [
                (r, v)
                for r, v in zip(test, views[cell.cell_id], strict=True)
                if r["clip_id"] not in bad
            ]
            reset = getattr(model, "reset_stats", None)
            if reset is not None:
                reset()
            part = self._score_cell(job, cell, keep, frames)
            describe = getattr(model, "describe", None)
            yield cell, part, (describe() if describe is not None else {})

    def _score_cell(
        self,
        job: GroupJob,
        cell: Cell,
        clips: list[tuple[dict[str, Any], ClipView]],
        frames: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> pl.DataFrame:
        model = job.model
        inputs = []
        for r, view in clips:
            have_idx, have = frames[r["clip_id"]]

            def pick(idx: np.ndarray, have_idx=have_idx, have=have) -> np.ndarray:
                return have[np.searchsorted(have_idx, idx)]

            inputs.append(
                ClipInput(
                    clip_id=r["clip_id"],
                    frames=pick(view.indices),
                    indices=view.indices,
                    fps=float(r["fps"]),
                    enrichment=cell.enrichment,
                    between=tuple(pick(b) for b in view.between),
                    between_indices=view.between,
                )
            )
        outputs, latency = [], []
        step = max(int(getattr(model, "batch_size", 8)), 1)
        self.s.progress.start(f"asking {cell.model}", len(inputs))
        for start in range(0, len(inputs), step):
            batch = inputs[start : start + step]
            t = time.perf_counter()
            answers = list(model.predict(batch))
            if len(answers) != len(batch):
                raise EmobenchError(
                    f"model {cell.model} returned {len(answers)} answers for {len(batch)} clips"
                )
            latency += [(time.perf_counter() - t) / len(batch)] * len(batch)
            outputs += answers
            for _ in batch:
                self.s.progress.advance()
        n_labels = len(model.labels)
        raw = np.full((len(outputs), n_labels), -np.inf)
        for i, out in enumerate(outputs):
            if out.scores is not None:
                raw[i] = np.asarray(out.scores, dtype=np.float64).reshape(n_labels)
        scores = job.correct(cell, to_dataset_order(raw, job.columns))
        texts = [out.text for out in outputs]
        contexts = [out.context for out in outputs]
        preds = [
            None if out.scores is not None else parse_answer(out.text, job.labels)
            for out in outputs
        ]
        best = argmax_labels(scores, job.labels)  # for scored rows, after prior correction
        preds = [b if p is None else p for p, b in zip(preds, best, strict=True)]
        return build_part(
            cell,
            job.fold,
            [r for r, _ in clips],
            job.labels,
            scores,
            preds=preds,
            texts=texts,
            contexts=contexts,
            n_frames=[len(v.indices) for _, v in clips],
            n_unique=[n_unique(v.indices) for _, v in clips],
            latency=latency,
        )
