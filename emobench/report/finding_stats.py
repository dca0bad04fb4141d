"""The statistics behind the findings' verdicts (pure functions; numpy, scipy inside).

* :func:`spearman_permutation_test` -- Spearman ρ of a few classes' values with a class
  prior, tested at the level of the classes: an exact permutation test over every
  ordering of the classes up to :data:`EXACT_MAX_CLASSES` classes (8! = 40320), a seeded
  Monte Carlo one above (``scipy.stats.permutation_test``, two-sided);
* :func:`class_bootstrap_rho` -- ρ on resamples of the classes *and* of the clips within
  them (a two-level bootstrap: scipy's ``bootstrap`` resamples one level only), so the CI
  of a correlation over 7 or 11 classes reflects how few classes there are;
* :func:`bootstrap_p` -- the two-sided p of a bootstrap difference (the rule of
  :func:`emobench.metrics.paired_bootstrap`), for contrasts drawn jointly;
* :func:`holm` -- Holm's step-down adjustment of a family of p-values;
* :func:`discrete_interval` -- a percentile interval that stays on the values drawn (the
  densities a peak can sit at);
* :func:`density_shape` -- the name of a density curve's shape from its two tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Family-wise error rate of each finding's statements (Holm).
ALPHA = 0.05
#: Up to this many classes the permutation test enumerates every ordering.
EXACT_MAX_CLASSES = 8
#: Orderings drawn by the Monte Carlo permutation test above that.
MONTE_CARLO_PERMUTATIONS = 9999

#: The named shapes of a metric-vs-density curve.
RISES, RISES_THEN_FALLS, FLAT, FALLS = "rises", "rises then falls", "flat", "falls"


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ along the last axis of ``x`` and ``y`` (broadcast); average ranks for
    ties, NaN where either side is constant."""
    from scipy.stats import rankdata

    rx = rankdata(np.asarray(x, dtype=np.float64), axis=-1)
    ry = rankdata(np.asarray(y, dtype=np.float64), axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    num = (rx * ry).sum(axis=-1)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass(frozen=True)
class PermutationResult:
    """ρ, its two-sided permutation p and how the orderings were drawn."""

    statistic: float
    p_value: float
    method: str


def spearman_permutation_test(
    values: Sequence[float],
    prior: Sequence[float],
    *,
    exact_max: int = EXACT_MAX_CLASSES,
    n_resamples: int = MONTE_CARLO_PERMUTATIONS,
    seed: int = 0,
) -> PermutationResult:
    """Class-level test of Spearman ρ(values, prior): the classes' values are reassigned
    to the classes in every order (exact, ``len(values) <= exact_max``) or in
    ``n_resamples`` random orders (seeded). Two-sided: p = 2 min(P(ρ* ≤ ρ), P(ρ* ≥ ρ)),
    capped at 1 (``scipy.stats.permutation_test``; Monte Carlo counts the observed order
    once). ``values`` and ``prior`` need at least 3 classes and must not be constant."""
    from math import factorial

    from scipy.stats import permutation_test

    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(prior, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError("values and prior must be two equal-length vectors of >= 3 classes")
    rho = float(spearman_rows(x, y))
    if not np.isfinite(rho):
        raise ValueError("ρ is undefined: constant values or prior")
    n = x.size
    exact = n <= exact_max

    def stat(a: np.ndarray, axis: int = -1) -> np.ndarray:
        return spearman_rows(np.moveaxis(a, axis, -1), y)

    res = permutation_test(
        (x,),
        stat,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=np.inf if exact else n_resamples,
        alternative="two-sided",
        rng=None if exact else np.random.default_rng(seed),
    )
    method = (
        f"exact permutation over all {factorial(n)} orderings of {n} classes"
        if exact
        else f"Monte Carlo permutation, {n_resamples} orderings of {n} classes (seed {seed})"
    )
    return PermutationResult(rho, float(res.pvalue), method)


def class_bootstrap_rho(f1_draws: np.ndarray, prior: Sequence[float], *, seed: int) -> np.ndarray:
    """ρ of per-class values with ``prior`` on resamples of classes and clips.

    ``f1_draws`` is (R, C): each row the classes' values on one clip resample (e.g.
    :func:`~emobench.metrics.multi_bootstrap.class_f1_draws`). Row r draws C classes
    with replacement (a class drawn twice counts twice, ties in both columns) and takes
    their values from clip resample r. Returns (R,) ρs; NaN where a resample's values or
    prior are constant (the percentile CI leaves those out)."""
    draws = np.asarray(f1_draws, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    r, c = draws.shape
    idx = np.random.default_rng(seed).integers(0, c, size=(r, c))
    return spearman_rows(np.take_along_axis(draws, idx, axis=1), p[idx])


def bootstrap_p(draws: np.ndarray, point: float) -> float:
    """Two-sided bootstrap p of ``point`` against 0 from its resampled ``draws``: the
    draws shifted to the null, (1 + #{|d* − d| ≥ |d|}) / (R + 1) over finite draws, as
    :func:`emobench.metrics.paired_bootstrap` computes it; 1 where none is finite."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return 1.0
    hits = int(np.sum(np.abs(d - point) >= abs(point) - 1e-12))
    return min(1.0, (1 + hits) / (d.size + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest p
    times (m − i + 1), made monotone and capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    out = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, float((m - rank) * p[i])))
        out[i] = running
    return out.tolist()


def discrete_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval that only takes values among ``values`` (inverted CDF)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a], method="inverted_cdf")
    return float(lo), float(hi)


def density_shape(rises: bool, falls: bool) -> str:
    """The shape of a curve from its two tests: a significant rise from the sparsest
    setting to the peak and a significant fall from the peak to the densest."""
    if rises:
        return RISES_THEN_FALLS if falls else RISES
    return FALLS if falls else FLAT
