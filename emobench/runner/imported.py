"""The scorer of ``imported`` models (``predictions:<file>``): rows in, parts out.

Nothing is decoded or run: the model (:mod:`emobench.models.predictions.adapter`) has read
the fold's file in ``fit`` and matches it with the fold's test clips here. Clips without a
usable row join the group's skips (counted and listed by the engine). Each cell's part is
built as a clip model's would be: a row with scores is predicted by their argmax after the
cell's prior correction (:meth:`emobench.runner.scorers.GroupJob.correct` on the test
clips' scores, with the training prior), a row without scores by the file's ``pred``; ``raw_text``
and the frame counts the file gives are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.labels import INVALID
from emobench.runner.plan import Cell
from emobench.runner.scorers import GroupJob, Services, argmax_labels, build_part, register_scorer


@register_scorer("imported")
class ImportedScorer:
    def __init__(self, services: Services) -> None:
        self.s = services

    def all_features(self, model: Any, rows: pl.DataFrame, skips: dict[str, str]) -> Any:
        raise EmobenchError(f"{type(model).__name__} imports predictions: it has no features")

    def score_group(self, job: GroupJob) -> Iterator[tuple[Cell, pl.DataFrame, dict[str, Any]]]:
        imported = job.model.match(job.test)
        for cid, reason in imported.skips.items():
            job.skips.setdefault(cid, reason)
        for cell in job.cells:
            yield cell, self.part(job, cell, imported), job.model.describe()

    @staticmethod
    def part(job: GroupJob, cell: Cell, imported: Any) -> pl.DataFrame:
        """One cell's predictions part from the matched rows (see the module docstring)."""
        n, c = len(imported.rows), len(job.labels)
        if imported.scores is None:
            if cell.prior_correction != "none":
                raise EmobenchError(
                    f"{job.model.adapter}: the file {job.model.path} has no score:<label> "
                    f"columns: prior correction {cell.prior_correction!r} needs scores"
                )
            scores = np.full((n, c), -np.inf)
        else:
            # rows with scores only: a row without any (a bad row) must not shift the others
            scores = np.full((n, c), -np.inf)
            scored = np.isfinite(imported.scores).any(axis=1)
            if scored.any():
                fixed = job.correct(cell, imported.scores[scored])
                scores[scored] = np.where(np.isnan(fixed), -np.inf, fixed)
        best = argmax_labels(scores, job.labels)
        preds = [
            b if np.isfinite(s).any() else (p or INVALID)
            for b, s, p in zip(best, scores, imported.preds, strict=True)
        ]
        ex = imported.extra
        return build_part(
            cell,
            job.fold,
            imported.rows,
            job.labels,
            scores,
            preds=preds,
            texts=ex["raw_text"],
            contexts=ex["context"],
            n_frames=ex["n_frames"],
            n_unique=ex["n_unique_frames"],
            latency=ex["latency_s"],
        )
