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

import hashlib
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from emobench.errors import EmobenchError
from emobench.labels import INVALID
from emobench.models.registry import parse_options, register_model, split_name
from emobench.settings import Bool, StrictModel

#: Placeholders a predictions path may hold.
PLACEHOLDERS = ("dataset", "fold", "seed")
#: Optional columns copied into the predictions table as they are.
PASSTHROUGH = {"raw_text": str, "context": str, "n_frames": int, "n_unique_frames": int}
SCORE_PREFIX = "score:"
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


class PredictionsFileError(EmobenchError):
    """A predictions file that cannot be imported (missing, unreadable, no needed column)."""


class PredictionsOptions(StrictModel):
    """``[models.options]`` of ``predictions:<file>`` (see the module docstring)."""

    base_dir: Path | None = Field(
        None, description="folder a relative path is taken from (default: the working folder)"
    )
    label_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="extra label names of the file → emobench label names (e.g. Happy = "
        '"happiness"), used before the built-in aliases',
    )
    role: Literal["vlm", "vision-only"] | None = Field(
        None,
        description="what made the predictions, for the report's findings: a VLM or a "
        "vision-only model (unset: the imported model is left out of the findings)",
    )
    trained: Bool = Field(
        False, description="the model was trained or fine-tuned on the dataset (not zero-shot)"
    )
    temporal: Bool = Field(
        False,
        description="the model reads frames in order (a temporal vision-only model such as "
        "MAE-DFER): the findings compare its shuffle sensitivity with the VLMs'",
    )
    scores: Literal["logits", "log-probabilities", "probabilities"] = Field(
        "logits",
        description="what the score:<label> columns hold; probabilities are turned into "
        "log-probabilities, so prior corrections act on logits",
    )

    @field_validator("label_aliases")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        from emobench.labels import UnknownLabelError, canonical

        for key, target in v.items():
            if not key.strip():
                raise ValueError("label_aliases has an empty name")
            try:
                canonical(target)
            except UnknownLabelError as exc:
                raise ValueError(f"label_aliases.{key}: {exc}") from None
        return v


@register_model(
    "predictions",
    "predictions made elsewhere (CSV/Parquet: clip_id, pred and/or score:<label>), imported "
    "as cells, predictions:<file>; {fold}, {seed}, {dataset} placeholders allowed",
    options=PredictionsOptions,
    kind="imported",
)
def _create(argument: str, options: dict[str, Any]) -> ImportedPredictions:
    return ImportedPredictions(argument, options)


# --------------------------------------------------------------------------- paths


def placeholders(pattern: str) -> set[str]:
    """The ``{name}`` fields of a path; an unknown or positional field is one error line."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:  # an unmatched brace
        raise PredictionsFileError(f"predictions path {pattern!r}: {exc}") from None
    bad = sorted(fields - set(PLACEHOLDERS))
    if bad:
        raise PredictionsFileError(
            f"predictions path {pattern!r} has placeholder {{{bad[0]}}}; allowed: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        )
    return fields


def resolve_pattern(argument: str, base_dir: Path | None) -> str:
    """The absolute path pattern of ``predictions:<argument>``."""
    path = Path(argument).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()).expanduser() / path
    return str(path)


def file_for(pattern: str, dataset: str, fold: int, seed: int) -> Path:
    """The file of one (dataset, fold, seed)."""
    return Path(pattern.format(dataset=dataset, fold=fold, seed=seed))


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (cached per path, size and modification time)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def files_digest(adapter: str, options: dict[str, Any]) -> str:
    """A digest of every file the model's path pattern matches (names and SHA-256s).

    It goes into the cells (:attr:`emobench.runner.plan.Cell.inputs`) and so into every
    part's stamp: an edited, added or removed file makes the model's parts stale.
    """
    import glob

    try:
        opts = PredictionsOptions.model_validate(options)
        pattern = resolve_pattern(split_name(adapter)[1], opts.base_dir)
        fields = placeholders(pattern)
    except (EmobenchError, ValueError):
        return "invalid"  # the run stops with its own error line
    # names relative to the pattern's fixed folder: the same files elsewhere, same digest
    root = os.path.dirname(pattern.split("{", 1)[0]) if fields else os.path.dirname(pattern)
    h = hashlib.sha256()
    for hit in sorted(glob.glob(_as_glob(pattern))):
        if Path(hit).is_file():
            h.update(f"{os.path.relpath(hit, root)}\0{file_sha256(Path(hit))}\n".encode())
    return h.hexdigest()[:16]


def read_table(path: Path) -> Any:
    """Read a predictions file into a polars table; any problem is one line naming the file.

    CSV cells are read as text (clip ids such as ``00012`` keep their zeros); the file must
    have ``clip_id`` and a ``pred`` or at least one ``score:<label>`` column.
    """
    import polars as pl

    if not path.is_file():
        raise PredictionsFileError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            table = pl.read_csv(path, infer_schema_length=0, separator=sep)
        elif suffix in (".parquet", ".pq"):
            table = pl.read_parquet(path)
        else:
            raise PredictionsFileError(
                f"predictions file {path}: unknown format {suffix or '(no suffix)'!r}; "
                "use .csv, .tsv or .parquet"
            )
    except PredictionsFileError:
        raise
    except Exception as exc:  # polars raises several types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictionsFileError(f"predictions file {path} cannot be read: {first}") from None
    if "clip_id" not in table.columns:
        raise PredictionsFileError(f"predictions file {path} has no clip_id column")
    if "pred" not in table.columns and not any(c.startswith(SCORE_PREFIX) for c in table.columns):
        raise PredictionsFileError(
            f"predictions file {path} has neither a pred column nor score:<label> columns"
        )
    return table.with_columns(pl.col("clip_id").cast(pl.Utf8).str.strip_chars())


def file_columns(path: Path) -> list[str]:
    """The column names of a predictions file (read without its rows), or [] if unreadable."""
    import polars as pl

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return list(pl.read_parquet_schema(path))
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        return pl.read_csv(path, n_rows=0, separator=sep).columns
    except Exception:  # an unreadable file is reported when the run reads it
        return []


# --------------------------------------------------------------------------- config check


def check_config(
    where: str,
    adapter: str,
    options: dict[str, Any],
    axes: dict[str, list[Any]],
    datasets: list[str],
) -> str | None:
    """Why a ``predictions:`` model does not fit the run's sweep, or None.

    Imported predictions were made with one sampler, frame order, enrichment and
    re-balancing: each axis (``axes``: name → the model's values after its overrides) must
    have one value, which is recorded as the setting the other code used. Several seeds
    need a ``{seed}`` placeholder (or a ``seed`` column) and several datasets a
    ``{dataset}`` placeholder (or a ``dataset`` column): the same rows are not imported twice.
    A prior correction needs ``score:<label>`` columns (checked on the first file found;
    a file that appears later is checked when the run reads it).
    """
    for axis in ("sampler", "order", "enrichment", "rebalancing"):
        values = axes[axis]
        if len(values) != 1:
            return (
                f"{where} ({adapter}) imports predictions made with one {axis}: give exactly "
                f"one ({where}.{axis} = [{values[0]!r}]), not a sweep over "
                f"{len(values)} ({', '.join(map(str, values))})"
            )
    try:
        opts = PredictionsOptions.model_validate(options)
        pattern = resolve_pattern(split_name(adapter)[1], opts.base_dir)
        fields = placeholders(pattern)
    except (EmobenchError, ValueError) as exc:
        return f"{where} ({adapter}): {' '.join(str(exc).split())}"
    for name, values in (("seed", axes["seeds"]), ("dataset", datasets)):
        if len(values) > 1 and name not in fields:
            some = _some_file(pattern, datasets[0], axes["seeds"][0])
            if some is None or name not in file_columns(some):
                return (
                    f"{where} ({adapter}): the run has {len(values)} {name}s; put a "
                    f"{{{name}}} placeholder in the path or a {name} column in the file"
                )
    priors = [p for p in axes.get("prior_correction", []) if p != "none"]
    some = _some_file(pattern, datasets[0], axes["seeds"][0]) if priors else None
    columns = file_columns(some) if some is not None else []
    if columns and not any(c.startswith(SCORE_PREFIX) for c in columns):
        return (
            f"{where} ({adapter}): prior correction {priors[0]!r} needs scores, and {some} "
            "has no score:<label> columns"
        )
    return None


def _some_file(pattern: str, dataset: str, seed: int) -> Path | None:
    """One existing file of the pattern (the first fold found), to read its columns."""
    import glob

    hits = sorted(glob.glob(_as_glob(pattern, dataset=dataset, seed=seed)))
    return Path(hits[0]) if hits else None


def _as_glob(pattern: str, **known: Any) -> str:
    """A glob of a path pattern: ``known`` placeholders filled in, the others ``*``."""
    import glob

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in known:
            return glob.escape(m.group(0).format(**known))
        return "*"

    out, pos = [], 0
    for m in _FIELD.finditer(pattern):
        out += [glob.escape(pattern[pos : m.start()]), fill(m)]
        pos = m.end()
    return "".join([*out, glob.escape(pattern[pos:])])


_FIELD = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")(?:![rsa])?(?::[^{}]*)?\}")


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

        from emobench.models.checkpoint import recipe_hash

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
        from emobench.labels import UnknownLabelError, canonical
        from emobench.registry import suggest

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
        from emobench.io import write_json_atomic

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
