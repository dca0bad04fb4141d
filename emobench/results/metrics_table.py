"""The metrics table: every metric of every (cell, fold) of a run, and their fold means.

:func:`compute_metrics` turns a predictions table and its manifest into the long metrics
table (:data:`emobench.results.schema.METRICS_SCHEMA`) that a run writes to
``metrics.parquet``; the metric definitions are in :mod:`emobench.metrics`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from emobench.config import MetricsConfig
from emobench.labels import EMOTIONS
from emobench.metrics.calibration import ece_of_scores
from emobench.metrics.core import (
    CI_METRICS,
    GROUP_METRICS,
    LONGTAIL_METRICS,
    MetricsError,
    _batch_metrics,
    _check_labels,
    _class_stats,
    _Groups,
    _make_groups,
    _overall_from_cm,
    _scalar,
)
from emobench.metrics.groups import get_rule, group_classes, head_to_tail
from emobench.metrics.uncertainty import bootstrap_from_cm, fold_mean_ci
from emobench.results.manifest import Manifest
from emobench.results.schema import METRICS_SCHEMA, SETTING_COLUMNS, validate_predictions

if TYPE_CHECKING:
    from emobench.config import MetricsConfig


def _fold_rows(
    cm: np.ndarray,
    labels: list[str],
    grp: _Groups | None,
    neutral_idx: int | None,
    ci: Mapping[str, tuple[float, float]],
) -> list[tuple[str, str, str, float, float | None, float | None]]:
    """(scope, target, metric, value, ci_lo, ci_hi) rows for one cell and fold."""
    rows: list[tuple[str, str, str, float, float | None, float | None]] = []

    def add(scope: str, target: str, metric: str, value: float) -> None:
        lo, hi = ci.get(metric, (None, None)) if scope in ("overall", "longtail") else (None, None)
        rows.append((scope, target, metric, float(value), lo, hi))

    for name, v in _overall_from_cm(cm).items():
        add("overall", "", name, v)
    s = _class_stats(cm)
    for i, lab in enumerate(labels):
        if s.support[i] > 0:
            add("class", lab, "precision", s.precision[i])
            add("class", lab, "recall", s.recall[i])
            add("class", lab, "f1", s.f1[i])
            add("class", lab, "support", s.support[i])
            add("class", lab, "n_pred", s.n_pred[i])
    m = _scalar(_batch_metrics(cm[None], grp, neutral_idx))
    if grp is not None:
        for g in grp.names:
            for metric in GROUP_METRICS:
                key = f"{metric}_{g}"
                if key in m:
                    add("group", g, metric, m[key])
    for name in LONGTAIL_METRICS:
        if name in m:
            add("longtail", "", name, m[name])
    return rows


def compute_metrics(
    predictions: pl.DataFrame,
    manifest: Manifest | Mapping[str, Any],
    options: MetricsConfig | None = None,
    *,
    level: float = 0.95,
    neutral: str = "neutral",
) -> pl.DataFrame:
    """The metrics table (long format; columns :data:`emobench.results.METRICS_SCHEMA`).

    ``options`` (:class:`emobench.config.MetricsConfig`; default: its defaults) gives the
    grouping ``rule`` with its ``head``/``tail`` thresholds and the bootstrap's
    ``n_resamples`` and ``seed``. One row per value: per (cell, fold) first, then the
    across-fold aggregate of each value (``fold`` null) = the mean of the per-fold values
    (DFEW/MAFW convention, not pooled predictions) with their sample ``std`` (0 for one
    fold). Scopes: ``overall`` (target ""), ``class`` (target = class; only classes with
    test clips in that fold), ``group`` (target = group; classes grouped by
    :func:`~emobench.metrics.group_classes` from the manifest's ``train_counts`` for that
    dataset and fold, under ``rule``), ``longtail`` (target ""), ``calibration`` (target
    ""; ``ece``, the top-label expected calibration error of the softmax of the cell's
    scores, :func:`scored_eces`; only cells with scores).

    Intervals (``n_resamples`` = 0 skips them): per-fold rows of uar, war, macro_f1 and
    head_tail_gap carry a bootstrap ``ci_lo``/``ci_hi``; an aggregate over a single fold
    copies its interval; the aggregate uar, war and macro_f1 over several folds carry the
    stratified bootstrap interval of the fold mean (:func:`across_fold_cis`).

    Cells come in the manifest's ``cells`` order, then in order of first appearance.
    Classes come from the manifest's ``datasets[<name>].labels``; a dataset missing there
    falls back to its true labels in canonical order. Without train counts for a fold, the
    group rows and group-based long-tail rows are left out.
    """
    if options is None:
        options = MetricsConfig()
    rule, head, tail = options.rule, options.head, options.tail
    n_resamples, seed = options.n_resamples, options.seed
    man = Manifest.from_dict(manifest)
    if n_resamples < 0:
        raise MetricsError(f"n_resamples must be >= 0 (got {n_resamples})")
    if n_resamples and not 0 < level < 1:
        raise MetricsError(f"level must lie in (0, 1) (got {level})")
    get_rule(rule)
    preds = validate_predictions(predictions)
    settings = preds.select(["cell_id", *SETTING_COLUMNS]).unique(
        subset=["cell_id"], keep="first", maintain_order=True
    )
    # Cells in the manifest's order, then any others in order of first appearance.
    cell_order: dict[str, int] = {}
    for c in [*man.cell_ids(), *settings["cell_id"].to_list()]:
        cell_order.setdefault(c, len(cell_order))
    labels_of = {ds: _dataset_labels(preds, man, ds) for ds in preds["dataset"].unique()}

    counts = preds.group_by(["cell_id", "dataset", "fold", "label", "pred"]).len()
    parts = counts.partition_by(["cell_id", "dataset", "fold"], as_dict=True)
    keys = sorted(parts, key=lambda k: (cell_order[k[0]], k[2]))

    eces = scored_eces(preds, labels_of)
    rows: list[tuple[Any, ...]] = []
    folds_of: dict[str, tuple[str, list[np.ndarray]]] = {}  # cell -> (dataset, fold matrices)
    for cell_id, ds, fold in keys:
        labs = labels_of[ds]
        cm = _confusion(parts[(cell_id, ds, fold)], labs, f"cell {cell_id!r} fold {fold}", ds)
        folds_of.setdefault(cell_id, (ds, []))[1].append(cm)
        train = man.train_counts(ds, int(fold))
        grp = None
        if train is not None:
            full = {lab: train.get(lab, 0) for lab in labs}
            grp = _make_groups(labs, group_classes(full, rule, head, tail))
        nidx = labs.index(neutral) if neutral in labs else None
        ci: dict[str, tuple[float, float]] = {}
        if n_resamples:
            entropy = [seed, zlib.crc32(str(cell_id).encode()), int(fold)]
            ci = bootstrap_from_cm(cm, labs, grp, n_resamples, entropy, level, CI_METRICS, neutral)
        for row in _fold_rows(cm, labs, grp, nidx, ci):
            rows.append((cell_id, int(fold), *row))
        if (cell_id, int(fold)) in eces:
            ece = eces[(cell_id, int(fold))]
            rows.append((cell_id, int(fold), "calibration", "", "ece", ece, None, None))

    fold_cis = {
        cell_id: across_fold_cis(
            np.stack(cms), labels_of[ds], man, ds, n_resamples=n_resamples, seed=seed, level=level
        )
        for cell_id, (ds, cms) in folds_of.items()
        if len(cms) > 1
    }
    table = _with_aggregates(rows, fold_cis)
    table = table.join(settings, on="cell_id", how="left", maintain_order="left")
    table = table.with_columns(pl.lit(rule, dtype=pl.Utf8).alias("rule"))
    return table.select([pl.col(c).cast(t) for c, t in METRICS_SCHEMA.items()])


def scored_eces(
    preds: pl.DataFrame, labels_of: Mapping[str, list[str]]
) -> dict[tuple[str, int], float]:
    """Top-label ECE (:func:`emobench.metrics.calibration.ece_of_scores`, 15 equal-width
    bins) of each (cell, fold) with scored rows: the softmax of its ``score:<label>``
    columns (after the cell's prior correction) against the true labels. Cells without
    scores (free-text answers) are left out."""

    out: dict[tuple[str, int], float] = {}
    if preds.is_empty():
        return out
    for (cell_id, ds, fold), part in preds.partition_by(
        ["cell_id", "dataset", "fold"], as_dict=True
    ).items():
        labels = labels_of[ds]
        cols = [f"score:{lab}" for lab in labels]
        if not all(c in part.columns for c in cols):
            continue
        z = part.select(cols).to_numpy().astype(np.float64)
        z = np.where(np.isnan(z), -np.inf, z)
        index = {lab: i for i, lab in enumerate(labels)}
        y = np.array([index.get(x, -1) for x in part["label"].to_list()], dtype=np.int64)
        if (y < 0).any():  # an unknown true label: the confusion matrix names it
            continue
        ece = ece_of_scores(z, y)
        if ece is not None:
            out[(str(cell_id), int(fold))] = ece
    return out


def _dataset_labels(preds: pl.DataFrame, man: Manifest, ds: str) -> list[str]:
    """The manifest's labels of ``ds``, or its true labels in canonical order."""
    labs = man.labels(ds)
    if labs is None:
        seen = set(preds.filter(pl.col("dataset") == ds)["label"].unique().to_list())
        labs = [e for e in EMOTIONS if e in seen]
    return _check_labels(labs)


def _confusion(part: pl.DataFrame, labs: list[str], where: str, ds: str) -> np.ndarray:
    """The (C, C+1) confusion counts of one (cell, fold) from its (label, pred, len) rows."""
    index = {name: i for i, name in enumerate(labs)}
    c = len(labs)
    bad = sorted(set(part["label"].to_list()) - set(labs))
    if bad:
        raise MetricsError(
            f"{where}: true label(s) {bad} are not among dataset {ds!r}'s labels {labs}"
        )
    t = np.array([index[x] for x in part["label"].to_list()], dtype=np.int64)
    p = np.array([index.get(x, c) for x in part["pred"].to_list()], dtype=np.int64)
    cm = np.zeros((c, c + 1), dtype=np.int64)
    np.add.at(cm, (t, p), part["len"].to_numpy())
    return cm


def across_fold_cis(
    counts: np.ndarray,
    labels: Sequence[str],
    manifest: Manifest | Mapping[str, Any],
    dataset: str,
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of one cell's across-fold mean UAR, WAR and macro-F1.

    ``counts`` (F, C, C+1) holds the cell's confusion counts per fold, classes in
    ``labels`` order. They are reordered head to tail by the manifest's mean training
    counts (:func:`~emobench.metrics.head_to_tail`, the report's class order) before
    :func:`~emobench.metrics.fold_mean_ci` draws, so the interval is the one the report
    computed itself before the metrics table carried it.
    """
    man = Manifest.from_dict(manifest)
    labels = list(labels)
    base = man.labels(dataset) or sorted(labels)
    order = [labels.index(lab) for lab in head_to_tail(base, man.train_counts_mean(dataset))]
    counts = np.asarray(counts)[:, order][:, :, [*order, len(labels)]]
    return fold_mean_ci(counts, n_resamples=n_resamples, seed=seed, level=level)


def _with_aggregates(
    rows: list[tuple[Any, ...]], fold_cis: Mapping[str, Mapping[str, tuple[float, float]]]
) -> pl.DataFrame:
    """Per-fold rows, then each value's across-fold mean, std and interval (fold null)."""
    row_schema = {
        "cell_id": pl.Utf8,
        "fold": pl.Int64,
        "scope": pl.Utf8,
        "target": pl.Utf8,
        "metric": pl.Utf8,
        "value": pl.Float64,
        "ci_lo": pl.Float64,
        "ci_hi": pl.Float64,
    }
    per_fold = pl.DataFrame(rows, schema=row_schema, orient="row").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("std")
    )
    n_folds = per_fold.group_by("cell_id").agg(pl.col("fold").n_unique().alias("_nf"))
    key = ["cell_id", "scope", "target", "metric"]
    mean_cis = pl.DataFrame(
        [
            (cell_id, "overall", "", metric, lo, hi)
            for cell_id, cis in fold_cis.items()
            for metric, (lo, hi) in cis.items()
        ],
        schema={**{k: pl.Utf8 for k in key}, "_lo": pl.Float64, "_hi": pl.Float64},
        orient="row",
    )
    agg = (
        per_fold.group_by(key, maintain_order=True)
        .agg(
            pl.col("value").mean().alias("value"),
            pl.col("value").std(ddof=1).fill_null(0.0).alias("std"),
            pl.col("ci_lo").first().alias("ci_lo"),
            pl.col("ci_hi").first().alias("ci_hi"),
        )
        .join(n_folds, on="cell_id", how="left", maintain_order="left")
        .join(mean_cis, on=key, how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("_nf") == 1).then(pl.col(x)).otherwise(pl.col(f"_{x[3:]}")).alias(x)
            for x in ("ci_lo", "ci_hi")
        )
        .with_columns(pl.lit(None, dtype=pl.Int64).alias("fold"))
    )
    cols = ["cell_id", "fold", "scope", "target", "metric", "value", "std", "ci_lo", "ci_hi"]
    return pl.concat([per_fold.select(cols), agg.select(cols)], how="vertical")
