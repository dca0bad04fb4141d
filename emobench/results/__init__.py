"""The results store: what a run writes and how it is read back.

=====================  ===================================================================
module                 holds
=====================  ===================================================================
``schema``             the predictions and metrics tables: schemas, validation
``folder``             :class:`RunFolder` / :func:`open_run`: the run folder's files
``manifest``           provenance: :func:`build_manifest` and the typed :class:`Manifest`
``metrics_table``      :func:`compute_metrics`: the metrics table from predictions
=====================  ===================================================================

Every name is importable from here (``from emobench.results import RunFolder``). The atomic
writers live in :mod:`emobench.io` and are re-exported here.

A run folder is plain files, each written atomically (temp file in the same folder, fsync,
``os.replace``), so an interrupted run never leaves a half-written file::

    results/<run>/
      manifest.json        the manifest (below)
      predictions.parquet  the predictions table (below)
      metrics.parquet      the metrics table (:func:`compute_metrics`)
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
context           Utf8?      enrichment text the model was given (MSCE's gap descriptions)
micro             Boolean?   the clip is a micro-expression clip (from the clip index)
scene             Utf8?      the clip's scene (FERV39k; from the clip index)
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

from typing import Any

from emobench.io import (
    JsonValueError,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    to_json,
    write_json_atomic,
    write_parquet_atomic,
)
from emobench.io import atomic_open as _atomic_open  # noqa: F401  (old name; runner/parts.py)
from emobench.results.folder import (
    MANIFEST_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_DIR,
    RunFolder,
    RunFolderError,
    open_run,
)
from emobench.results.manifest import (
    MANIFEST_PACKAGES,
    DatasetEntry,
    Manifest,
    ManifestError,
    build_manifest,
    dataset_entry,
    git_commit,
    hardware_info,
    manifest_labels,
    manifest_train_counts,
    package_versions,
)
from emobench.results.schema import (
    METRIC_SCOPES,
    METRICS_SCHEMA,
    PREDICTION_REQUIRED,
    PREDICTION_SCHEMA,
    SCORE_PREFIX,
    SETTING_COLUMNS,
    ResultsError,
    score_columns,
    scores_matrix,
    validate_metrics,
    validate_predictions,
)

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_PACKAGES",
    "METRICS_FILE",
    "METRICS_SCHEMA",
    "METRIC_SCOPES",
    "PREDICTIONS_FILE",
    "PREDICTION_REQUIRED",
    "PREDICTION_SCHEMA",
    "REPORT_DIR",
    "SCORE_PREFIX",
    "SETTING_COLUMNS",
    "DatasetEntry",
    "JsonValueError",
    "Manifest",
    "ManifestError",
    "ResultsError",
    "RunFolder",
    "RunFolderError",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_manifest",
    "compute_metrics",
    "dataset_entry",
    "git_commit",
    "hardware_info",
    "manifest_labels",
    "manifest_train_counts",
    "open_run",
    "package_versions",
    "score_columns",
    "scores_matrix",
    "to_json",
    "validate_metrics",
    "validate_predictions",
    "write_json_atomic",
    "write_parquet_atomic",
]


def __getattr__(name: str) -> Any:
    # compute_metrics is imported on first use: it pulls in emobench.metrics.
    if name == "compute_metrics":
        # lazy: the submodule imports this package, not initialised yet
        from emobench.results.metrics_table import compute_metrics

        return compute_metrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
