"""Summaries across folds and against class priors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from emobench.metrics.core import MetricsError

_PER_FOLD_ONLY = ("fold", "std", "ci_lo", "ci_hi")


def fold_summary(
    per_fold: pl.DataFrame, value: str = "value", by: Sequence[str] | None = None
) -> pl.DataFrame:
    """Mean and sample std (ddof=1; 0 with one fold) of ``value`` over folds.

    ``by`` defaults to every column except ``value``, fold, std, ci_lo and ci_hi. Returns
    the ``by`` columns, ``value`` (the mean), ``std`` and ``n_folds``, in first-seen order.
    """
    if value not in per_fold.columns:
        raise MetricsError(f"fold_summary: no column {value!r} in {per_fold.columns}")
    keys = (
        [c for c in per_fold.columns if c != value and c not in _PER_FOLD_ONLY]
        if by is None
        else list(by)
    )
    missing = [c for c in keys if c not in per_fold.columns]
    if missing:
        raise MetricsError(f"fold_summary: no column(s) {missing}")
    col = pl.col(value).cast(pl.Float64)
    aggs = [
        col.mean().alias(value),
        col.std(ddof=1).fill_null(0.0).alias("std"),
        col.count().cast(pl.Int64).alias("n_folds"),
    ]
    if not keys:
        return per_fold.select(aggs)
    return per_fold.group_by(keys, maintain_order=True).agg(aggs)


def prior_correlation(
    per_class_f1: Mapping[str, float], prior: Mapping[str, float]
) -> dict[str, Any]:
    """Spearman and Pearson correlation of per-class F1 with a class prior.

    Uses the classes present in both mappings with finite values (``per_class_f1`` order).
    With fewer than 3 classes or a constant input the coefficients and p-values are None.
    Returns spearman, spearman_p, pearson, pearson_p, n and points [(label, prior, f1)],
    and 95% confidence intervals ``spearman_ci`` / ``pearson_ci`` ((low, high), None below
    4 classes). The CIs use the Fisher z transform (z = atanh r ± 1.96·se, back with tanh):
    se = 1/sqrt(n − 3) for Pearson and Bonett & Wright's (2000) se = sqrt((1 + ρ²/2)/(n − 3))
    for Spearman. Not a bootstrap over classes: with 7–11 classes most resamples repeat a
    class or are constant, and the bootstrap interval is too narrow.
    """
    points = []
    for lab, f in per_class_f1.items():
        q = prior.get(lab)
        if f is None or q is None:
            continue
        f, q = float(f), float(q)
        if math.isfinite(f) and math.isfinite(q):
            points.append((lab, q, f))
    out: dict[str, Any] = {
        "spearman": None,
        "spearman_p": None,
        "pearson": None,
        "pearson_p": None,
        "spearman_ci": None,
        "pearson_ci": None,
        "n": len(points),
        "points": points,
    }
    if len(points) < 3:
        return out
    x = np.array([p[1] for p in points])
    y = np.array([p[2] for p in points])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    from scipy import stats

    def clean(v: Any) -> float | None:
        v = float(v)
        return v if math.isfinite(v) else None

    sp = stats.spearmanr(x, y)
    pe = stats.pearsonr(x, y)
    out.update(
        spearman=clean(sp.statistic),
        spearman_p=clean(sp.pvalue),
        pearson=clean(pe.statistic),
        pearson_p=clean(pe.pvalue),
    )
    n = len(points)
    for key, var in (("pearson", lambda r: 1.0), ("spearman", lambda r: 1.0 + r * r / 2.0)):
        r = out[key]
        if r is not None and n >= 4:
            out[f"{key}_ci"] = fisher_z_ci(r, n, var(r))
    return out


def fisher_z_ci(
    r: float, n: int, var_factor: float = 1.0, z: float = 1.959963984540054
) -> tuple[float, float]:
    """95% (by default) CI of a correlation ``r`` over ``n`` points by the Fisher z
    transform: tanh(atanh r ± z·sqrt(var_factor/(n − 3))); ``var_factor`` is 1 for Pearson,
    1 + r²/2 for Spearman (Bonett & Wright 2000). Needs n ≥ 4; |r| = 1 gives (r, r)."""
    if n < 4:
        raise ValueError(f"a Fisher z interval needs at least 4 points, got {n}")
    if abs(r) >= 1.0:
        return (float(r), float(r))
    half = z * math.sqrt(var_factor / (n - 3))
    zr = math.atanh(r)
    return (math.tanh(zr - half), math.tanh(zr + half))
