"""Bootstrap statistics over several folds or several cells (the report's findings use them).

* :func:`class_f1_draws` -- the fold-mean per-class F1 under the stratified clip bootstrap
  of :func:`emobench.metrics.fold_mean_ci` (each fold's clips resampled, as a multinomial
  draw over its confusion cells), so a rank correlation of per-class F1 with a class prior
  gets a CI that reflects how well each class's F1 is measured;
* :func:`rank_correlation_draws` -- Spearman ρ of each resample's per-class values with a
  fixed prior;
* :func:`joint_metric_draws` -- one metric of *k* cells on the same resampled clips (the
  k-cell form of :func:`emobench.metrics.paired_bootstrap`), for contrasts of differences
  such as (shuffled − original of a baseline) − (shuffled − original of a VLM).

The metric definitions and the resampling of one confusion matrix are
:mod:`emobench.metrics.core`'s and :mod:`emobench.metrics.uncertainty`'s; only the
bookkeeping for several folds or cells is here. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emobench.metrics.core import (
    MetricsError,
    _batch_metrics,
    _check_labels,
    _class_stats,
    _encode,
    _make_groups,
)
from emobench.metrics.uncertainty import percentile_interval, resample_cms


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the finite ``values`` (None when there are none)."""
    return percentile_interval(np.asarray(values, dtype=np.float64), level)


def class_f1_draws(counts: np.ndarray, *, n_resamples: int, seed: int) -> np.ndarray:
    """Per-class F1, averaged over folds, for ``n_resamples`` stratified clip resamples.

    ``counts`` is one cell's confusion counts per fold, ``(F, C, C + 1)`` (invalid last),
    as :class:`~emobench.report.scores.CellConfusion` holds them. Returns ``(R, C)``; a
    class without clips in a fold's resample has F1 0 there, as in the metrics table.
    """
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] == 0:
        raise MetricsError(f"counts must have shape (F, C, C + 1), got {counts.shape}")
    rng = np.random.default_rng(seed)
    total = np.zeros((n_resamples, counts.shape[1]))
    for fold in counts:
        total += _class_stats(resample_cms(fold, n_resamples, rng)).f1
    return total / counts.shape[0]


def _rank_rows(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def rank_correlation_draws(values: np.ndarray, prior: Sequence[float]) -> np.ndarray:
    """Spearman ρ of each row of ``values`` (R, C) with ``prior`` (C,); NaN for a
    constant row."""
    v = _rank_rows(np.asarray(values, dtype=np.float64))
    p = _rank_rows(np.asarray(prior, dtype=np.float64))
    v = v - v.mean(axis=-1, keepdims=True)
    p = p - p.mean()
    num = v @ p
    den = np.sqrt((v * v).sum(axis=-1) * float(p @ p))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def joint_metric_draws(
    y_true: Sequence[str],
    preds: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    metric: str = "uar",
    n_resamples: int,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``metric`` of each of *k* prediction columns on the same clips, and on
    ``n_resamples`` clip resamples shared by all columns.

    Returns ``(point (k,), draws (R, k))``. Resampling clips with replacement is drawn as
    a multinomial over the joint cells (true label, pred 1, ..., pred k), which has the
    same distribution, and each column's confusion matrix is that draw summed over the
    other columns. Differences and contrasts of the columns (row by row) are then paired
    over clips. Raises :class:`~emobench.metrics.MetricsError` when ``metric`` is
    undefined for the inputs.
    """
    labs = _check_labels(labels)
    c, k1 = len(labs), len(labs) + 1
    codes = [_encode(y_true, p, labs) for p in preds]
    t = codes[0][0] if codes else np.zeros(0, dtype=np.int64)
    if t.size == 0 or not codes:
        raise MetricsError("no clips to resample")
    joint = t.copy()
    for _, p in codes:
        joint = joint * k1 + p
    cats, n_cat = np.unique(joint, return_counts=True)
    n = int(n_cat.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, n_cat / n, size=n_resamples).astype(np.float64)
    grp = _make_groups(labs, groups)
    nidx = labs.index("neutral") if "neutral" in labs else None
    k = len(codes)
    point = np.empty(k)
    out = np.empty((n_resamples, k))
    for j in range(k):
        # the (true, pred j) cell of each joint category, decoded from its code
        pj = (cats // k1 ** (k - 1 - j)) % k1
        cell = (cats // k1**k) * k1 + pj
        order = np.argsort(cell, kind="stable")
        uniq, starts = np.unique(cell[order], return_index=True)
        cm = np.zeros((n_resamples + 1, c * k1))
        cm[:-1, uniq] = np.add.reduceat(draws[:, order], starts, axis=1)
        cm[-1, uniq] = np.add.reduceat(n_cat[order].astype(np.float64), starts)
        values = _batch_metrics(cm.reshape(-1, c, k1), grp, nidx).get(metric)
        if values is None or not np.isfinite(values[-1]):
            raise MetricsError(f"metric {metric!r} is not defined for these inputs")
        point[j] = values[-1]
        out[:, j] = values[:-1]
    return point, out
