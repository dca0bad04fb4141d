"""``predictions:<file>``: another program's predictions imported as a model's cells.

Results of code emobench does not run (MAE-DFER, HiCMAE, Gemini answers, a colleague's
export) become cells like any other model's, so that the report compares them under the
same metrics, folds and long-tail diagnostics. The file is a CSV (``.csv``, ``.tsv``) or
Parquet table with

* ``clip_id`` (required) and ``pred`` and/or ``score:<label>`` columns (at least one);
* optionally ``raw_text``, ``context``, ``n_frames``, ``n_unique_frames``, ``latency_s``,
  ``label`` (the true label the other code used: checked against the dataset's), and
  ``dataset`` / ``fold`` / ``seed`` columns that select the rows of a run.

The path may hold ``{fold}``, ``{seed}`` and ``{dataset}`` placeholders (one file per
fold: ``preds/maedfer_fold{fold}.csv``); a relative path is taken from ``base_dir`` (default:
the working folder). Label names (``pred`` values and ``score:<label>`` columns) are mapped
by name: the options' ``label_aliases`` first, then :func:`emobench.labels.canonical`.

Nothing is decoded: the imported cell's sampler, order and enrichment are the settings the
other code used, given in the config as one value each (checked by
:func:`check_config`), and recorded as such. :meth:`ImportedPredictions.match` checks the
file against the fold's test split clip by clip (missing, extra, duplicate, unknown labels,
bad scores, ...); missing clips are skipped and counted by the engine, every problem goes to
a JSON report in the results folder and a short warning line per kind to the manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import EmobenchError
from emobench.io import write_json_atomic
from emobench.labels import INVALID, UnknownLabelError, canonical
from emobench.models.predictions.files import (  # noqa: F401  (re-exported)
    PASSTHROUGH,
    PLACEHOLDERS,
    SCORE_PREFIX,
    PredictionsFileError,
    PredictionsOptions,
    check_config,
    file_for,
    file_sha256,
    files_digest,
    placeholders,
    read_table,
    resolve_pattern,
)
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import FamilyRole
from emobench.registry import suggest
from emobench.training.checkpoint import recipe_hash

#: Ids listed per kind in a warning line (the JSON report lists them all).
SHOWN = 3
#: Rows for training clips of the fold (shown on the console: the other code may have
#: trained on this fold's test clips): kind → what it means.
LEAK = {
    "train-clip": "training clips of this fold, ignored: a possible leak (the file's split "
    "is not the dataset's)",
    "other-fold": "training clips of this fold, ignored: expected when the file holds every "
    "fold's rows, else a possible leak (the file's split is not the dataset's)",
}


@register_model(
    "predictions",
    "predictions made elsewhere (CSV/Parquet: clip_id, pred and/or score:<label>), imported "
    "as cells, predictions:<file>; {fold}, {seed}, {dataset} placeholders allowed",
    options=PredictionsOptions,
    kind="imported",
    check_config=check_config,
    inputs_digest=files_digest,
    # the user says in the model's options what made the predictions (role, trained,
    # temporal, order_invariant); without a role they are left out of the findings
    role=FamilyRole(
        lambda arg, opts: opts.get("role") if opts.get("role") in ("vlm", "vision-only") else None,
        trained=lambda arg, opts: bool(opts.get("trained", False)),
        temporal=lambda arg, opts: bool(opts.get("temporal", False)),
        order_invariant=lambda arg, opts: bool(opts.get("order_invariant", False)),
    ),
)
def _create(argument: str, options: dict[str, Any]) -> ImportedPredictions:
    return ImportedPredictions(argument, options)


# --------------------------------------------------------------------------- the model


@dataclass
class Imported:
    """One fold's imported predictions, aligned with the test clips that have a row."""

    rows: list[dict[str, Any]]  # the fold's test rows (clip index) that the file covers
    #: (N, C) scores in dataset label order, -inf where absent; None: no score columns
    scores: np.ndarray | None
    preds: list[str | None]  # the file's pred mapped to a dataset label (None: no pred)
    extra: dict[str, list[Any]]  # raw_text, context, n_frames, n_unique_frames, latency_s
    skips: dict[str, str] = field(default_factory=dict)  # missing / unusable clip → reason
    problems: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p["problem"]] = out.get(p["problem"], 0) + 1
        return out


class ImportedPredictions:
    """The ``predictions:<file>`` adapter: reads one fold's file in :meth:`fit`, matches it
    with the fold's test clips in :meth:`match` (used by the ``imported`` scorer)."""

    kind = "imported"

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.adapter = f"predictions:{argument}"
        self.options = dict(options)
        self.opts: PredictionsOptions = parse_options(
            self.adapter, PredictionsOptions, self.options
        )
        self.pattern = resolve_pattern(argument, self.opts.base_dir)
        if not placeholders(self.pattern) and not Path(self.pattern).is_file():
            raise PredictionsFileError(f"predictions file not found: {self.pattern}")
        self.aliases = {k.strip().lower(): v for k, v in self.opts.label_aliases.items()}
        self.labels: list[str] = []
        self.path: Path | None = None
        self.sha256 = ""
        self.report_path: Path | None = None
        self._table: Any = None
        self._ctx: Any = None
        self._rows_in_file = 0
        self._last: dict[str, int] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, ctx: Any) -> None:
        """Read and hash the (dataset, fold, seed) file; keep the rows that are this run's
        (``dataset``/``fold``/``seed`` columns, when present, select them)."""
        import polars as pl

        self.labels = list(ctx.labels)
        self._ctx = ctx
        self.path = file_for(self.pattern, ctx.dataset, ctx.fold, ctx.seed)
        table = read_table(self.path)
        self.sha256 = file_sha256(self.path)
        self._rows_in_file = table.height
        for col, value in (("dataset", ctx.dataset), ("fold", ctx.fold), ("seed", ctx.seed)):
            if col in table.columns:
                text = pl.col(col).cast(pl.Utf8).str.strip_chars()
                table = table.filter(text == str(value))
        self._table = table
        #: whether the rows are known to be this fold's (else other folds' clips are expected)
        self._fold_given = "{fold}" in self.pattern or "fold" in table.columns
        self._train_ids = set(ctx.train_index["clip_id"].to_list())
        key = recipe_hash({"pattern": self.pattern, "options": self.options})
        stem = re.sub(r"[^A-Za-z0-9.+-]+", "-", self.path.stem).strip("-")
        self.report_path = Path(ctx.checkpoint_dir) / "imported" / f"{stem}-{key[:10]}.json"

    # ------------------------------------------------------------------ labels
    def to_label(self, name: Any) -> tuple[str | None, str | None]:
        """(dataset label, None) for a name, or (None, why) with a did-you-mean hint."""

        text = str(name).strip()
        key = text.lower()
        try:
            lab = canonical(self.aliases.get(key, key))
        except UnknownLabelError:
            lab = None
        if lab is not None and lab in self.labels:
            return lab, None
        pool = {lb: lb for lb in self.labels}  # names that map to one of the labels
        pool.update({k: canonical(v) for k, v in self.aliases.items()})
        best = suggest(key, [k for k, v in pool.items() if v in self.labels])
        hint = f"; did you mean {pool[best]!r}?" if best is not None else ""
        if lab is not None:
            return None, f"{text!r} is not a label of this dataset{hint}"
        return None, f"unknown label {text!r}{hint}"

    # ------------------------------------------------------------------ matching
    def match(self, test: Any) -> Imported:
        """Align the file's rows with the fold's test clips (sorted by ``clip_id``), report
        every problem (JSON file + one warning line per kind) and return what to score.

        Rules: a test clip without a row is skipped; a row of a clip outside the test split
        is ignored; a clip with several rows keeps one when they are identical and is
        skipped when they differ; an unknown ``pred`` label counts as ``invalid`` (a wrong
        answer); a row whose scores are missing, non-numeric or out of range has no scores
        (its ``pred`` is used); a score column of an unknown label is ignored and a
        dataset label without a column gets no score (never predicted from scores).
        """
        import polars as pl

        if self._table is None:
            raise EmobenchError(f"{self.adapter}: match() before fit()")
        table = self._table
        problems: list[dict[str, Any]] = []

        def problem(kind: str, detail: str, clip_id: str | None = None, **more: Any) -> None:
            problems.append({"problem": kind, "clip_id": clip_id, "detail": detail, **more})

        # score columns → dataset labels
        col_for: dict[str, str] = {}
        for col in [c for c in table.columns if c.startswith(SCORE_PREFIX)]:
            lab, why = self.to_label(col[len(SCORE_PREFIX) :])
            if lab is None:
                problem("unknown-score-label", f"column {col!r} ignored: {why}", column=col)
            elif lab in col_for:
                raise PredictionsFileError(
                    f"predictions file {self.path}: columns {col_for[lab]!r} and {col!r} "
                    f"both give scores of {lab!r}"
                )
            else:
                col_for[lab] = col
        if col_for:
            for lab in self.labels:
                if lab not in col_for:
                    problem("missing-score-label", f"no score:{lab} column: {lab} gets no score")
        has_scores = bool(col_for)
        score_cols = [col_for.get(lab) for lab in self.labels]
        cast = [
            pl.col(c).cast(pl.Float64, strict=False).alias(f"__s{j}")
            for j, c in enumerate(score_cols)
            if c is not None
        ]
        table = table.with_columns(cast) if cast else table

        # duplicates: identical rows keep one, differing rows skip the clip
        by_id: dict[str, list[dict[str, Any]]] = {}
        for r in table.iter_rows(named=True):
            by_id.setdefault(r["clip_id"], []).append(r)
        test_rows = list(test.iter_rows(named=True))
        test_ids = {r["clip_id"] for r in test_rows}
        skips: dict[str, str] = {}
        name = self.path.name if self.path is not None else "?"
        for cid, rs in by_id.items():
            if len(rs) > 1 and cid in test_ids:
                if all(r == rs[0] for r in rs[1:]):
                    problem("duplicate", f"{len(rs)} identical rows: one kept", cid)
                else:
                    problem("duplicate", f"{len(rs)} rows that differ: clip skipped", cid)
                    skips[cid] = f"imported: {len(rs)} differing rows in {name}"
        for cid in sorted(set(by_id) - test_ids):
            if cid in self._train_ids:
                kind = "train-clip" if self._fold_given else "other-fold"
                problem(kind, LEAK[kind], cid)
            else:
                problem("extra", "not a test clip of this fold: ignored", cid)
        for r in test_rows:
            if r["clip_id"] not in by_id:
                problem("missing", "no row in the file: clip skipped", r["clip_id"])
                skips[r["clip_id"]] = f"imported: no row in {name}"

        kept = [r for r in test_rows if r["clip_id"] not in skips]
        n, c = len(kept), len(self.labels)
        scores = np.full((n, c), -np.inf) if has_scores else None
        preds: list[str | None] = []
        extra: dict[str, list[Any]] = {k: [] for k in (*PASSTHROUGH, "latency_s")}
        for i, r in enumerate(kept):
            cid = r["clip_id"]
            row = by_id[cid][0]
            pred = row.get("pred")
            if pred is None or not str(pred).strip():
                preds.append(None)
            else:
                lab, why = self.to_label(pred)
                if lab is None:
                    problem("unknown-label", f"pred: {why}; counted as invalid", cid)
                preds.append(lab if lab is not None else INVALID)
            if row.get("label") is not None and str(row["label"]).strip():
                true, why = self.to_label(row["label"])
                if true != r["label"]:
                    problem(
                        "label-mismatch",
                        f"label {row['label']!r} in the file, {r['label']!r} in the dataset "
                        "(the dataset's is used)",
                        cid,
                    )
            if scores is not None:
                self._row_scores(row, scores[i], problem, cid)
                if preds[-1] not in (None, INVALID) and np.isfinite(scores[i]).any():
                    best = self.labels[int(np.argmax(scores[i]))]
                    if best != preds[-1]:
                        problem(
                            "pred-vs-scores",
                            f"pred {preds[-1]!r} but highest score {best!r}: scores decide",
                            cid,
                        )
            for key, kind in PASSTHROUGH.items():
                extra[key].append(_value(row.get(key), kind))
            extra["latency_s"].append(_value(row.get("latency_s"), float))

        imported = Imported(kept, scores, preds, extra, skips, problems)
        self._report(imported, test)
        return imported

    def _row_scores(self, row: dict[str, Any], out: np.ndarray, problem: Any, cid: str) -> None:
        """Fill one row's scores (dataset order) in ``out``; a bad value leaves it empty."""
        present = [j for j in range(len(self.labels)) if f"__s{j}" in row]
        values = np.array([row[f"__s{j}"] for j in present], dtype=np.float64)
        raw = [row[f"__s{j}"] for j in present]
        why = None
        if any(v is None for v in raw) or not np.isfinite(values).all():
            why = "missing or non-numeric score"
        elif self.opts.scores == "probabilities":
            if (values < 0).any() or (values > 1).any():
                why = "probability outside 0..1"
            else:
                values = np.log(np.clip(values, np.finfo(np.float64).tiny, None))
        if why is not None:
            problem("bad-score", f"{why}: the row's scores are not used", cid)
            return
        out[present] = values

    # ------------------------------------------------------------------ reporting
    def _report(self, imported: Imported, test: Any) -> None:
        """Write the fold's JSON report (atomic) and one warning line per problem kind."""

        ctx = self._ctx
        counts = imported.counts()
        self._last = counts
        report = {
            "model": self.adapter,
            "file": str(self.path),
            "sha256": self.sha256,
            "dataset": ctx.dataset,
            "fold": ctx.fold,
            "seed": ctx.seed,
            "rows_in_file": self._rows_in_file,
            "test_clips": test.height,
            "imported": len(imported.rows),
            "skipped": len(imported.skips),
            "counts": counts,
            "problems": imported.problems,
        }
        assert self.report_path is not None
        write_json_atomic(self.report_path, report)
        for kind, n in counts.items():
            items = [p for p in imported.problems if p["problem"] == kind]
            shown = "; ".join(
                str(p["clip_id"])
                if kind in LEAK
                else (f"{p['clip_id']}: " if p["clip_id"] is not None else "") + p["detail"]
                for p in items[:SHOWN]
            )
            more = f"; +{n - SHOWN} more" if n > SHOWN else ""
            means = f": {LEAK[kind]}" if kind in LEAK else ""
            ctx.warn(
                f"{self.adapter} {ctx.dataset} fold {ctx.fold}: {n} {kind} "
                f"({shown}{more}){means}; all in {self.report_path}"
            )

    def describe(self) -> dict[str, Any]:
        """Recorded per cell and fold in the manifest's ``cell_info``."""
        return {
            "imported_from": str(self.path),
            "sha256": self.sha256,
            "scores": self.opts.scores,
            "rows_in_file": self._rows_in_file,
            "problems": dict(self._last),
            "report": str(self.report_path),
        }


def _value(v: Any, kind: type) -> Any:
    """A passthrough cell as ``kind`` (None when empty or not convertible)."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if kind is str:
        return str(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(x):
        return None
    return int(x) if kind is int else x
