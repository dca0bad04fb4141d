"""The predictions and metrics tables: their schemas, validation and score look-ups.

See :mod:`emobench.results` for the column-by-column description of the predictions table
and :func:`emobench.results.metrics_table.compute_metrics` for the metrics table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
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
    "context": pl.Utf8(),
    "micro": pl.Boolean(),
    "scene": pl.Utf8(),
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

#: The metrics table (long format, one row per value); see
#: emobench.results.metrics_table.compute_metrics.
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
METRIC_SCOPES: tuple[str, ...] = ("overall", "class", "group", "longtail", "calibration")


class ResultsError(EmobenchError):
    """A predictions or metrics table (or a value to store) violates its schema."""


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
