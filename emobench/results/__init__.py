"""The results store: the predictions table, atomic file writes and the run folder.

A run folder is plain files, each written atomically (temp file in the same folder, fsync,
``os.replace``), so an interrupted run never leaves a half-written file::

    results/<run>/
      manifest.json        the manifest (below)
      predictions.parquet  the predictions table (below)
      metrics.parquet      the metrics table (:func:`emobench.metrics.compute_metrics`)
      report/              figures and summaries written by ``emobench report``

Predictions table (polars; one row per (cell, fold, clip)). A *cell* is one combination of
the settings, across folds; ``cell_id`` names it.

================  =========  ===========================================================
column            dtype      meaning
================  =========  ===========================================================
cell_id           Utf8       the cell (one combination of the setting columns)
dataset           Utf8       registered dataset name
model             Utf8       registered model name (``openclip:...``, ``hf:...``, ...)
sampler           Utf8?      sampler spec, e.g. ``uniform:8``, ``fps:5``, ``all``
density           Float64?   frames (8.0) or frames per second (5.0); null for dense
density_unit      Utf8?      ``frames`` | ``fps`` | ``all``
order             Utf8?      ``original`` | ``shuffle`` | ``reverse``
enrichment        Utf8?      ``none`` or an enrichment spec
rebalancing       Utf8?      training re-balancing setting
prior_correction  Utf8?      prior-correction setting
seed              Int64?     seed of the cell
fold              Int64      fold number (1-based)
clip_id           Utf8       clip id
label             Utf8       true canonical label name
pred              Utf8       predicted canonical label name, or ``invalid``
raw_text          Utf8?      a generative model's raw answer
n_frames          Int64?     frames fed to the model
n_unique_frames   Int64?     distinct frames among them
latency_s         Float64?   seconds spent on the clip
score:<label>     Float64?   one column per label: the model's score for that label
================  =========  ===========================================================

Manifest (``manifest.json``, a JSON object; :func:`build_manifest` fills it)::

    {
      "emobench_version": "0.1.0",
      "created": "2026-01-31T12:00:00+00:00",        # ISO 8601, UTC
      "run_name": "quickstart",
      "config": {...},                                # every setting, as given
      "git_commit": "2fa18fb..." | null,
      "versions": {"numpy": "2.4.6", ...},            # installed packages that matter
      "hardware": {"platform": ..., "machine": ..., "python": ..., "cpu_count": 2,
                   "torch_device": "cuda:0 NVIDIA H100" | "cpu" (only if torch loaded)},
      "seeds": {...} | [...] | int,
      "datasets": {
        "<name>": {"fingerprint": "ab12...",          # emobench.data.index.fingerprint
                   "labels": ["happiness", ...],      # canonical names, display order
                   "train_counts": {"<fold>": {"<label>": count}},
                   "n_clips": 1234}
      },
      "cells": [{"cell_id": "...", "dataset": ..., "model": ..., ...}],
      "skipped": [{"cell_id": "...", "fold": 1, "clip_id": "...", "reason": "..."}]
    }
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.io import (  # noqa: F401  (re-exported: the atomic writers live in emobench.io)
    JsonValueError,
    _fsync_dir,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    to_json,
    write_json_atomic,
    write_parquet_atomic,
)
from emobench.io import atomic_open as _atomic_open  # noqa: F401  (old name; runner/parts.py)
from emobench.labels import EMOTIONS, INVALID

SETTING_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "sampler",
    "density",
    "density_unit",
    "order",
    "enrichment",
    "rebalancing",
    "prior_correction",
    "seed",
)

#: Fixed columns of the predictions table, in order (``score:<label>`` columns follow).
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "cell_id": pl.Utf8(),
    "dataset": pl.Utf8(),
    "model": pl.Utf8(),
    "sampler": pl.Utf8(),
    "density": pl.Float64(),
    "density_unit": pl.Utf8(),
    "order": pl.Utf8(),
    "enrichment": pl.Utf8(),
    "rebalancing": pl.Utf8(),
    "prior_correction": pl.Utf8(),
    "seed": pl.Int64(),
    "fold": pl.Int64(),
    "clip_id": pl.Utf8(),
    "label": pl.Utf8(),
    "pred": pl.Utf8(),
    "raw_text": pl.Utf8(),
    "n_frames": pl.Int64(),
    "n_unique_frames": pl.Int64(),
    "latency_s": pl.Float64(),
}
#: Columns that must be present and non-null; the others are added as nulls when absent.
PREDICTION_REQUIRED: tuple[str, ...] = (
    "cell_id",
    "dataset",
    "model",
    "fold",
    "clip_id",
    "label",
    "pred",
)
SCORE_PREFIX = "score:"

#: The metrics table (long format, one row per value); see emobench.metrics.compute_metrics.
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "cell_id": pl.Utf8(),
    **{c: PREDICTION_SCHEMA[c] for c in SETTING_COLUMNS},
    "fold": pl.Int64(),
    "scope": pl.Utf8(),
    "target": pl.Utf8(),
    "metric": pl.Utf8(),
    "value": pl.Float64(),
    "std": pl.Float64(),
    "ci_lo": pl.Float64(),
    "ci_hi": pl.Float64(),
    "rule": pl.Utf8(),
}
METRIC_SCOPES: tuple[str, ...] = ("overall", "class", "group", "longtail")

MANIFEST_FILE = "manifest.json"
PREDICTIONS_FILE = "predictions.parquet"
METRICS_FILE = "metrics.parquet"
REPORT_DIR = "report"

#: Packages whose versions the manifest records (those not installed are left out).
MANIFEST_PACKAGES: tuple[str, ...] = (
    "emobench",
    "numpy",
    "polars",
    "pyarrow",
    "scipy",
    "torch",
    "torchvision",
    "open_clip_torch",
    "transformers",
    "safetensors",
    "decord2",
    "av",
    "pillow",
    "pydantic",
    "wordfreq",
)


class ResultsError(EmobenchError):
    """A predictions or metrics table (or a value to store) violates its schema."""


class RunFolderError(EmobenchError):
    """A run folder is missing, incomplete or holds a malformed file."""


# ----------------------------------------------------------------------------------------
# predictions table


def score_columns(df: pl.DataFrame) -> list[str]:
    """The ``score:<label>`` columns of a predictions table, in table order."""
    return [c for c in df.columns if c.startswith(SCORE_PREFIX)]


def validate_predictions(df: pl.DataFrame) -> pl.DataFrame:
    """Check and normalise a predictions table; raise :class:`ResultsError` (one line).

    Adds absent optional columns as nulls, casts every column to its dtype (score columns to
    Float64), replaces a null ``pred`` by ``invalid`` (no answer is an invalid answer), and
    checks: required columns non-null, label names canonical, predictions canonical or
    ``invalid``, score columns named by canonical labels, no (cell, fold, clip) repeated,
    and one settings combination per ``cell_id``. Returns the fixed columns in schema
    order, then the score columns, then any extra columns (kept as they are).
    """
    if not isinstance(df, pl.DataFrame):
        raise ResultsError(f"predictions must be a polars DataFrame, not {type(df).__name__}")
    missing = [c for c in PREDICTION_REQUIRED if c not in df.columns]
    if missing:
        raise ResultsError(f"predictions table lacks required column(s): {', '.join(missing)}")
    scores = score_columns(df)
    bad_scores = [c for c in scores if c[len(SCORE_PREFIX) :] not in EMOTIONS]
    if bad_scores:
        raise ResultsError(
            f"predictions table has score column(s) for unknown label(s): {bad_scores}"
        )
    extra = [c for c in df.columns if c not in PREDICTION_SCHEMA and c not in scores]
    exprs = []
    for col, dtype in PREDICTION_SCHEMA.items():
        if col in df.columns:
            exprs.append(_cast(df, col, dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
    exprs += [_cast(df, c, pl.Float64()) for c in scores]
    exprs += [pl.col(c) for c in extra]
    out = df.select(exprs).with_columns(pl.col("pred").fill_null(INVALID))
    for col in PREDICTION_REQUIRED:
        n = out[col].null_count()
        if n:
            raise ResultsError(f"predictions column {col!r} has {n} null value(s)")
    _check_names(out, "label", set(EMOTIONS))
    _check_names(out, "pred", set(EMOTIONS) | {INVALID})
    dup = out.group_by(["cell_id", "fold", "clip_id"]).len().filter(pl.col("len") > 1)
    if dup.height:
        row = dup.row(0, named=True)
        raise ResultsError(
            f"predictions repeat clip {row['clip_id']!r} in cell {row['cell_id']!r} "
            f"fold {row['fold']} ({dup.height} repeated key(s))"
        )
    multi = (
        out.select(["cell_id", *SETTING_COLUMNS])
        .unique()
        .group_by("cell_id")
        .len()
        .filter(pl.col("len") > 1)
    )
    if multi.height:
        raise ResultsError(
            f"predictions cell {multi['cell_id'][0]!r} has more than one combination of "
            f"settings ({', '.join(SETTING_COLUMNS)})"
        )
    return out


def _cast(df: pl.DataFrame, col: str, dtype: pl.DataType) -> pl.Expr:
    src = df.schema[col]
    if src == dtype:
        return pl.col(col)
    if src == pl.Null:
        return pl.col(col).cast(dtype)
    try:
        df.select(pl.col(col).cast(dtype, strict=True))
    except Exception as exc:  # polars raises several exception types for bad casts
        raise ResultsError(
            f"predictions column {col!r} has type {src}, which does not cast to {dtype}"
        ) from exc
    return pl.col(col).cast(dtype)


def _check_names(df: pl.DataFrame, col: str, allowed: set[str]) -> None:
    bad = sorted(set(df[col].unique().to_list()) - allowed)
    if bad:
        raise ResultsError(
            f"predictions column {col!r} has non-canonical name(s) {bad[:5]}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        )


def scores_matrix(df: pl.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """Scores as a float array of shape (rows, len(labels)), columns in ``labels`` order.

    Null scores become NaN. Raises :class:`ResultsError` naming a label without a
    ``score:<label>`` column.
    """
    cols = [f"{SCORE_PREFIX}{lab}" for lab in labels]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ResultsError(f"predictions table has no score column(s): {', '.join(missing)}")
    if not cols:
        return np.zeros((df.height, 0), dtype=np.float64)
    mat = df.select([pl.col(c).cast(pl.Float64) for c in cols]).to_numpy()
    return np.asarray(mat, dtype=np.float64)


# ----------------------------------------------------------------------------------------
# run folder


@dataclass(frozen=True)
class RunFolder:
    """A run's folder of results; every write is atomic, every read error one line."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    def _missing(self, name: str) -> RunFolderError:
        return RunFolderError(f"{self.path}: {name} is missing")

    def read_manifest(self) -> dict[str, Any]:
        """The manifest as a dict; raises :class:`RunFolderError` if missing or malformed."""
        p = self.manifest_path
        if not p.is_file():
            raise self._missing(MANIFEST_FILE)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{self.path}: {MANIFEST_FILE} cannot be read ({exc})") from exc
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunFolderError(
                f"{self.path}: {MANIFEST_FILE} is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from exc
        if not isinstance(obj, dict):
            raise RunFolderError(
                f"{self.path}: {MANIFEST_FILE} is not a JSON object (found {type(obj).__name__})"
            )
        for key, kind in (("datasets", dict), ("cells", list), ("skipped", list)):
            if key in obj and not isinstance(obj[key], kind):
                raise RunFolderError(
                    f"{self.path}: {MANIFEST_FILE} field {key!r} should be a "
                    f"{'JSON object' if kind is dict else 'list'}"
                )
        return obj

    def _read_parquet(self, p: Path) -> pl.DataFrame:
        if not p.is_file():
            raise self._missing(p.name)
        try:
            return pl.read_parquet(p)
        except Exception as exc:  # polars/pyarrow raise several types for bad files
            msg = " ".join(str(exc).split())[:200]
            raise RunFolderError(
                f"{self.path}: {p.name} is not a readable Parquet file ({msg})"
            ) from exc

    def read_predictions(self) -> pl.DataFrame:
        """The validated predictions table."""
        df = self._read_parquet(self.predictions_path)
        try:
            return validate_predictions(df)
        except ResultsError as exc:
            raise RunFolderError(f"{self.path}: {PREDICTIONS_FILE}: {exc}") from exc

    def read_metrics(self) -> pl.DataFrame:
        """The validated metrics table."""
        df = self._read_parquet(self.metrics_path)
        try:
            return validate_metrics(df)
        except ResultsError as exc:
            raise RunFolderError(f"{self.path}: {METRICS_FILE}: {exc}") from exc

    def write_manifest(self, d: Mapping[str, Any]) -> None:
        write_json_atomic(self.manifest_path, dict(d))

    def write_predictions(self, df: pl.DataFrame) -> None:
        write_parquet_atomic(self.predictions_path, validate_predictions(df))

    def write_metrics(self, df: pl.DataFrame) -> None:
        write_parquet_atomic(self.metrics_path, validate_metrics(df))


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """Open an existing run folder, checking that its manifest and predictions are sound.

    Raises :class:`RunFolderError` naming exactly what is missing or malformed, e.g.
    ``results/x: manifest.json is not valid JSON (line 3: ...)``.
    """
    run = RunFolder(Path(path))
    if not run.path.exists():
        raise RunFolderError(f"{run.path}: no such run folder")
    if not run.path.is_dir():
        raise RunFolderError(f"{run.path}: is not a folder")
    missing = [n for n in (MANIFEST_FILE, PREDICTIONS_FILE) if not (run.path / n).is_file()]
    if missing:
        raise RunFolderError(f"{run.path}: {' and '.join(missing)} missing")
    run.read_manifest()
    try:
        schema = pl.read_parquet_schema(run.predictions_path)
    except Exception as exc:  # polars/pyarrow raise several types for bad files
        msg = " ".join(str(exc).split())[:200]
        raise RunFolderError(
            f"{run.path}: {PREDICTIONS_FILE} is not a readable Parquet file ({msg})"
        ) from exc
    lacking = [c for c in PREDICTION_REQUIRED if c not in schema]
    if lacking:
        raise RunFolderError(
            f"{run.path}: {PREDICTIONS_FILE} lacks required column(s): {', '.join(lacking)}"
        )
    return run


# ----------------------------------------------------------------------------------------
# metrics table


def validate_metrics(df: pl.DataFrame) -> pl.DataFrame:
    """Check and cast a metrics table to :data:`METRICS_SCHEMA`; no NaN or inf allowed."""
    missing = [c for c in METRICS_SCHEMA if c not in df.columns]
    if missing:
        raise ResultsError(f"metrics table lacks column(s): {', '.join(missing)}")
    try:
        out = df.select([pl.col(c).cast(t, strict=True) for c, t in METRICS_SCHEMA.items()])
    except Exception as exc:  # polars raises several exception types for bad casts
        raise ResultsError(f"metrics table has a column of the wrong type: {exc}") from exc
    bad_scope = sorted(set(out["scope"].drop_nulls().unique().to_list()) - set(METRIC_SCOPES))
    if bad_scope:
        raise ResultsError(f"metrics table has unknown scope(s) {bad_scope}")
    for col in ("value", "std", "ci_lo", "ci_hi"):
        n = out.select((~pl.col(col).is_finite()).sum()).item()
        if n:
            raise ResultsError(f"metrics column {col!r} has {n} NaN or infinite value(s)")
    return out


# ----------------------------------------------------------------------------------------
# manifest


def manifest_labels(manifest: Mapping[str, Any], dataset: str) -> list[str] | None:
    """A dataset's canonical labels in display order from the manifest, or None."""
    entry = (manifest.get("datasets") or {}).get(dataset)
    if not isinstance(entry, Mapping) or not entry.get("labels"):
        return None
    return [str(x) for x in entry["labels"]]


def manifest_train_counts(
    manifest: Mapping[str, Any], dataset: str, fold: int
) -> dict[str, int] | None:
    """Training clips per label for one dataset and fold from the manifest, or None."""
    entry = (manifest.get("datasets") or {}).get(dataset)
    if not isinstance(entry, Mapping):
        return None
    counts = (entry.get("train_counts") or {}).get(str(fold))
    if not isinstance(counts, Mapping):
        return None
    return {str(k): int(v) for k, v in counts.items()}


def dataset_entry(index: pl.DataFrame, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The manifest's ``datasets[name]`` entry for a validated clip index.

    ``labels`` gives the display order; by default the labels present, in canonical order.
    """
    from emobench.data.index import class_counts, fingerprint

    if labels is None:
        present = set(index["label"].unique().to_list())
        labels = [e for e in EMOTIONS if e in present]
    folds = sorted(index["fold"].unique().to_list())
    return {
        "fingerprint": fingerprint(index),
        "labels": list(labels),
        "train_counts": {str(f): class_counts(index, split="train", fold=f) for f in folds},
        "n_clips": int(index["clip_id"].n_unique()),
    }


def package_versions(packages: Sequence[str] = MANIFEST_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(repo_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit of ``repo_dir`` (default: emobench's source), or None."""
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = res.stdout.strip()
    return commit if res.returncode == 0 and commit else None


def hardware_info() -> dict[str, Any]:
    """Platform, Python, CPU count and, when torch is already loaded, its device.

    torch is not imported here (slow); a run that uses it has loaded it already.
    """
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                n = torch.cuda.device_count()
                info["torch_device"] = "cuda"
                info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(n)]
                info["cuda_version"] = torch.version.cuda
            else:
                info["torch_device"] = "cpu"
            info["torch_threads"] = torch.get_num_threads()
        except Exception:  # a broken CUDA setup must not stop the manifest
            info["torch_device"] = "unknown"
    return info


def build_manifest(
    *,
    run_name: str,
    config: Mapping[str, Any],
    datasets: Mapping[str, Mapping[str, Any]] | None = None,
    cells: Sequence[Mapping[str, Any]] = (),
    skipped: Sequence[Mapping[str, Any]] = (),
    seeds: Any = None,
    packages: Sequence[str] = MANIFEST_PACKAGES,
    repo_dir: str | os.PathLike[str] | None = None,
    created: _dt.datetime | None = None,
) -> dict[str, Any]:
    """Assemble a manifest dict (see the module docstring) with versions, git and hardware.

    ``datasets`` maps a dataset name to its entry (see :func:`dataset_entry`). The result
    is JSON-ready (checked), so a bad value fails here rather than at write time.
    """
    from emobench import __version__

    when = created or _dt.datetime.now(_dt.timezone.utc)
    manifest: dict[str, Any] = {
        "emobench_version": __version__,
        "created": when.isoformat(timespec="seconds"),
        "run_name": run_name,
        "config": dict(config),
        "git_commit": git_commit(repo_dir),
        "versions": package_versions(packages),
        "hardware": hardware_info(),
        "seeds": seeds,
        "datasets": {k: dict(v) for k, v in (datasets or {}).items()},
        "cells": [dict(c) for c in cells],
        "skipped": [dict(s) for s in skipped],
    }
    # Round-trip through JSON so the dict holds plain JSON values (no numpy, no Path).
    return json.loads(to_json(manifest))
