"""Uncertainty: bootstrap intervals (clip resampling as multinomial draws over confusion
cells), the paired bootstrap and McNemar's test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emobench.metrics.core import (
    LONGTAIL_METRICS,
    OVERALL_METRICS,
    Labels,
    MetricsError,
    _as_list,
    _batch_metrics,
    _check_labels,
    _cm_from_codes,
    _encode,
    _Groups,
    _make_groups,
    confusion_matrix,
)


def resample_cms(cm: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` bootstrap confusion matrices: a multinomial draw over the cells.

    Resampling n clips with replacement gives cell counts ~ Multinomial(n, cell / n), so
    this is the clip bootstrap, at a cost that does not grow with n.
    """
    flat = np.asarray(cm, dtype=np.int64).ravel()
    n = int(flat.sum())
    nz = np.flatnonzero(flat)
    out = np.zeros((n_resamples, flat.size), dtype=np.float64)
    if n:
        out[:, nz] = rng.multinomial(n, flat[nz] / n, size=n_resamples)
    return out.reshape((n_resamples, *np.shape(cm)))


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def _check_metric_names(metrics: Sequence[str]) -> None:
    known = set(OVERALL_METRICS) | set(LONGTAIL_METRICS)
    bad = [m for m in metrics if m not in known and not m.startswith(("recall_", "f1_"))]
    if "n" in metrics:
        bad.append("n")
    if bad:
        raise MetricsError(
            f"no bootstrap for metric(s) {bad}; use {sorted(known - {'n'})} or recall_/f1_<group>"
        )


def _check_resample_args(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise MetricsError(f"n_resamples must be >= 1 (got {n_resamples})")
    if not 0 < level < 1:
        raise MetricsError(f"level must lie in (0, 1) (got {level})")


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    labels: Labels,
    groups: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = ("uar", "war", "macro_f1", "head_tail_gap"),
    neutral: str = "neutral",
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (resampling clips) for each metric in ``metrics``.

    Deterministic for a seed. A metric that needs ``groups`` when none are given, or that is
    undefined in every resample, is left out. Within a resample, macro means run over the
    classes that the resample contains, as for the point estimate.
    """
    _check_resample_args(n_resamples, level)
    _check_metric_names(metrics)
    labs = _check_labels(labels)
    cm = confusion_matrix(y_true, y_pred, labs)
    grp = _make_groups(labs, groups)
    return bootstrap_from_cm(cm, labs, grp, n_resamples, seed, level, metrics, neutral)


def bootstrap_from_cm(
    cm: np.ndarray,
    labels: list[str],
    grp: _Groups | None,
    n_resamples: int,
    seed: int | Sequence[int],
    level: float,
    metrics: Sequence[str],
    neutral: str = "neutral",
) -> dict[str, tuple[float, float]]:
    if cm.sum() == 0:
        return {}
    rng = np.random.default_rng(seed)
    nidx = labels.index(neutral) if neutral in labels else None
    values = _batch_metrics(resample_cms(cm, n_resamples, rng), grp, nidx)
    out: dict[str, tuple[float, float]] = {}
    for name in metrics:
        if name in values:
            ci = percentile_interval(values[name], level)
            if ci is not None:
                out[name] = ci
    return out


def paired_bootstrap(
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    labels: Labels,
    metric: str = "macro_f1",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Mapping[str, str] | None = None,
    neutral: str = "neutral",
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(b) − metric(a)`` on the same clips.

    Returns metric, a, b, diff (= b − a), ci_lo, ci_hi (percentile, ``level``), p_value
    (two-sided, from the bootstrap distribution shifted to the null of no difference:
    (1 + #{|d* − d| ≥ |d|}) / (R + 1)), n and n_resamples.
    """
    _check_resample_args(n_resamples, level)
    _check_metric_names([metric])
    labs = _check_labels(labels)
    t, a = _encode(y_true, pred_a, labs)
    _, b = _encode(y_true, pred_b, labs)
    c, k1 = len(labs), len(labs) + 1
    grp = _make_groups(labs, groups)
    nidx = labs.index(neutral) if neutral in labs else None
    cm_a, cm_b = _cm_from_codes(t, a, c), _cm_from_codes(t, b, c)
    va = _batch_metrics(cm_a[None], grp, nidx).get(metric)
    vb = _batch_metrics(cm_b[None], grp, nidx).get(metric)
    if va is None or vb is None or not (np.isfinite(va[0]) and np.isfinite(vb[0])):
        raise MetricsError(f"metric {metric!r} is not defined for these inputs")
    diff = float(vb[0] - va[0])
    # Joint resample of (true, pred_a, pred_b) cells, then project to the two matrices.
    joint = np.bincount((t * k1 + a) * k1 + b, minlength=c * k1 * k1)
    nz = np.flatnonzero(joint)
    n = int(joint.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, joint[nz] / n, size=n_resamples).astype(np.float64)
    proj_a = np.zeros((nz.size, c * k1))
    proj_b = np.zeros((nz.size, c * k1))
    rows = np.arange(nz.size)
    proj_a[rows, nz // k1] = 1.0  # (t, a) cell
    proj_b[rows, (nz // (k1 * k1)) * k1 + nz % k1] = 1.0  # (t, b) cell
    da = _batch_metrics((draws @ proj_a).reshape(-1, c, k1), grp, nidx)[metric]
    db = _batch_metrics((draws @ proj_b).reshape(-1, c, k1), grp, nidx)[metric]
    d = db - da
    d = d[np.isfinite(d)]
    ci = percentile_interval(d, level)
    p = (1 + int(np.sum(np.abs(d - diff) >= abs(diff) - 1e-12))) / (d.size + 1)
    return {
        "metric": metric,
        "a": float(va[0]),
        "b": float(vb[0]),
        "diff": diff,
        "ci_lo": ci[0] if ci else None,
        "ci_hi": ci[1] if ci else None,
        "p_value": min(1.0, p),
        "n": n,
        "n_resamples": n_resamples,
    }


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """McNemar's test on paired correctness; invalid answers count as wrong.

    b = clips a gets right and b wrong, c = the reverse. With b + c < 25: exact two-sided
    binomial test (statistic = min(b, c)); otherwise chi-square with continuity correction,
    (|b − c| − 1)² / (b + c), one degree of freedom.
    """
    from scipy import stats

    t, pa, pb = _as_list(y_true), _as_list(pred_a), _as_list(pred_b)
    if not len(t) == len(pa) == len(pb):
        raise MetricsError(
            f"y_true, pred_a and pred_b differ in length ({len(t)}, {len(pa)}, {len(pb)})"
        )
    ok_a = np.array([x == y for x, y in zip(pa, t, strict=True)], dtype=bool)
    ok_b = np.array([x == y for x, y in zip(pb, t, strict=True)], dtype=bool)
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    if b + c == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    if b + c < 25:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": p, "method": "exact"}
    stat = (abs(b - c) - 1.0) ** 2 / (b + c)
    p = float(stats.chi2.sf(stat, df=1))
    return {"b": b, "c": c, "statistic": stat, "p_value": p, "method": "chi2"}


#: Metrics whose across-fold mean gets a bootstrap interval (:func:`fold_mean_ci`).
FOLD_MEAN_CI_METRICS: tuple[str, ...] = ("uar", "war", "macro_f1")


def fold_mean_ci(
    counts: np.ndarray, *, n_resamples: int, seed: int | Sequence[int], level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile CI of the across-fold mean of UAR, WAR and macro-F1.

    ``counts`` is one cell's confusion counts per fold, shape ``(F, C, C + 1)`` (invalid
    last). Stratified clip bootstrap: each fold's clips are resampled with replacement (a
    multinomial draw over its confusion cells, which has the same distribution), the metric
    is computed per fold and averaged over folds, as the reported value is. Deterministic
    for a seed; the draws depend on the order of the classes (the metrics table and the
    report use :func:`~emobench.metrics.head_to_tail`). Empty ``counts`` or ``n_resamples``
    < 1 give ``{}``.
    """
    counts = np.asarray(counts)
    if n_resamples < 1 or counts.size == 0:
        return {}
    rng = np.random.default_rng(seed)
    f = counts.shape[0]
    flat = counts.reshape(f, -1).astype(np.int64)
    draws = np.zeros((n_resamples, *flat.shape), dtype=np.float64)
    for j in range(f):
        n = int(flat[j].sum())
        nz = np.flatnonzero(flat[j])
        if n:
            draws[:, j, nz] = rng.multinomial(n, flat[j, nz] / n, size=n_resamples)
    values = _batch_metrics(draws.reshape(n_resamples, *counts.shape))
    a = (1.0 - level) / 2.0
    out = {}
    for name in FOLD_MEAN_CI_METRICS:
        lo, hi = np.quantile(values[name].mean(axis=1), [a, 1.0 - a])
        out[name] = (float(lo), float(hi))
    return out
