"""The scorer of ``clip`` models (generative VLMs, API models): frames in, answers out.

For each cell and test clip it samples the cell's frames, orders them, decodes them (one
decode per clip for the union of the group's frames, through the frame cache), and asks
the model in batches of :attr:`~emobench.models.base.ClipModel.batch_size` clips. An
answer with scores is predicted by their argmax after the cell's prior correction; an
answer with text only by the label the text names (:func:`parse_answer`); the raw text
is always kept in the predictions table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from emobench.labels import INVALID
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

_WORD = re.compile(r"[a-z]+")


def parse_answer(text: str | None, labels: Sequence[str]) -> str:
    """The label a free-text answer names, or ``invalid``.

    Words are matched case-insensitively against the labels and their aliases
    (:func:`emobench.labels.canonical`: "happy" → happiness); an answer naming no label,
    or several different ones, is ``invalid``.
    """
    from emobench.labels import UnknownLabelError, canonical

    if not text:
        return INVALID
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        try:
            name = canonical(word)
        except UnknownLabelError:
            continue
        if name in labels and name not in found:
            found.append(name)
    return found[0] if len(found) == 1 else INVALID


@register_scorer("clip")
class ClipScorer:
    def __init__(self, services: Services) -> None:
        self.s = services

    def all_features(self, model: Any, rows: pl.DataFrame, skips: dict[str, str]) -> Any:
        from emobench.errors import EmobenchError

        raise EmobenchError(f"{type(model).__name__} is a clip model: it has no frame features")

    def score_group(self, job: GroupJob) -> Iterator[tuple[Cell, pl.DataFrame]]:
        from emobench.video.frames import FrameReadError

        model = job.model
        t = time.perf_counter()
        test = list(job.test.iter_rows(named=True))
        wanted = {c.cell_id: [sampled_indices(c, r) for r in test] for c in job.cells}
        frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        bad: dict[str, str] = {}
        self.s.progress.start("decoding test clips", len(test))
        for i, r in enumerate(test):
            union = np.unique(np.concatenate([w[i] for w in wanted.values()]))
            try:
                frames[r["clip_id"]] = (union, self.s.media.read(r, union, model.frame_size))
            except FrameReadError as exc:
                bad[r["clip_id"]] = exc.reason
            self.s.progress.advance()
        self.s.media.check_failures(bad, job.test, "test")
        record_skips(job.skips, bad, "test")
        self.s.timings["features"] += time.perf_counter() - t
        for cell in job.cells:
            keep = [(r, idx) for r, idx in zip(test, wanted[cell.cell_id], strict=True)]
            keep = [(r, idx) for r, idx in keep if r["clip_id"] not in bad]
            yield cell, self._score_cell(job, cell, keep, frames)

    def _score_cell(
        self,
        job: GroupJob,
        cell: Cell,
        clips: list[tuple[dict[str, Any], np.ndarray]],
        frames: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> pl.DataFrame:
        from emobench.longtail.prior import apply_prior
        from emobench.models.base import ClipInput
        from emobench.video.sampling import n_unique

        model = job.model
        inputs = []
        for r, idx in clips:
            have_idx, have = frames[r["clip_id"]]
            inputs.append(
                ClipInput(
                    clip_id=r["clip_id"],
                    frames=have[np.searchsorted(have_idx, idx)],
                    indices=idx,
                    fps=float(r["fps"]),
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
                from emobench.errors import EmobenchError

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
        scores = apply_prior(cell.prior_correction, to_dataset_order(raw, job.columns), job.prior)
        texts = [out.text for out in outputs]
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
            n_frames=[len(idx) for _, idx in clips],
            n_unique=[n_unique(idx) for _, idx in clips],
            latency=latency,
        )
