"""The statistics behind the findings' verdicts (emobench.report.finding_stats) against
independent references: every ordering enumerated by hand, scipy.stats.spearmanr /
bootstrap, Holm computed by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import bootstrap, rankdata, spearmanr

from emobench.report.finding_stats import (
    FALLS,
    FLAT,
    RISES,
    RISES_THEN_FALLS,
    bootstrap_p,
    class_bootstrap_rho,
    density_shape,
    discrete_interval,
    holm,
    spearman_permutation_test,
)

#: The issue's shape of data: 7 classes, per-class F1 with three classes tied at 0.
F1 = [0.62, 0.55, 0.0, 0.41, 0.0, 0.0, 0.18]
PRIOR = [200.0, 120.0, 80.0, 50.0, 30.0, 15.0, 8.0]


def _hand_permutation_p(x, y) -> tuple[float, int]:
    """Two-sided exact p by enumerating every ordering: Spearman ρ is Pearson's r of the
    average ranks, so permuting the values permutes their ranks. Ties of ρ within 1e-12
    count as equal (rounding of the same rank sums)."""
    rx, ry = rankdata(x), rankdata(y)
    ry = ry - ry.mean()
    perms = np.array(list(itertools.permutations(range(len(x)))))
    r = rx[perms] - rx.mean()
    null = (r @ ry) / np.sqrt((r * r).sum(axis=1) * (ry @ ry))
    obs = spearmanr(x, y).statistic
    less = np.mean(null <= obs + 1e-12)
    greater = np.mean(null >= obs - 1e-12)
    return min(1.0, 2 * min(less, greater)), len(perms)


def test_exact_permutation_p_equals_every_ordering_by_hand():
    res = spearman_permutation_test(F1, PRIOR)
    want, n = _hand_permutation_p(F1, PRIOR)
    assert n == 5040
    assert res.statistic == pytest.approx(spearmanr(F1, PRIOR).statistic, abs=1e-15)
    # both are counts over the same 5040 orderings divided by 5040: equal up to float
    assert res.p_value == pytest.approx(want, rel=1e-12)
    assert res.method == "exact permutation over all 5040 orderings of 7 classes"
    # the point: ρ ≈ +0.75 is far from significant over 7 classes with ties
    assert 0.6 < res.statistic < 0.9 and res.p_value > 0.05


def test_monte_carlo_above_eight_classes_is_seeded_and_near_the_exact_p():
    x = [0.9, 0.1, 0.7, 0.0, 0.5, 0.0, 0.3, 0.6, 0.2]
    y = list(range(9, 0, -1))
    a = spearman_permutation_test(x, y, seed=4)
    assert a == spearman_permutation_test(x, y, seed=4)
    assert a.method == "Monte Carlo permutation, 9999 orderings of 9 classes (seed 4)"
    exact, n = _hand_permutation_p(x, y)  # 9! = 362880 orderings
    assert n == 362880
    # Monte Carlo p over 9999 orderings: binomial SE sqrt(p(1-p)/9999) of each tail; the
    # two-sided p doubles a tail, so 4 SE of 2x the tail SE bounds it (fails 1 in 15000)
    tail = exact / 2
    assert abs(a.p_value - exact) < 4 * 2 * np.sqrt(tail * (1 - tail) / 9999)
    # and exact when asked for up to 9 classes
    assert spearman_permutation_test(x, y, exact_max=9).p_value == pytest.approx(exact, rel=1e-12)


def test_constant_values_are_refused():
    with pytest.raises(ValueError):
        spearman_permutation_test([0.0, 0.0, 0.0, 0.0], [1, 2, 3, 4])


def test_class_bootstrap_resamples_classes_each_draw_equals_spearmanr():
    rng = np.random.default_rng(2)
    draws = np.clip(np.array(F1) + rng.normal(0, 0.03, (50, 7)), 0, 1)
    got = class_bootstrap_rho(draws, PRIOR, seed=7)
    idx = np.random.default_rng(7).integers(0, 7, size=(50, 7))  # the documented draw
    for r in range(50):
        v, p = draws[r, idx[r]], np.array(PRIOR)[idx[r]]
        if np.ptp(v) == 0 or np.ptp(p) == 0:
            assert np.isnan(got[r])
        else:  # rank sums of the same ranks: float rounding only
            assert got[r] == pytest.approx(spearmanr(v, p).statistic, abs=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.stats.DegenerateDataWarning")
def test_class_bootstrap_without_clip_noise_matches_scipy_bootstrap():
    """With the same F1 on every clip resample only the classes are resampled: the
    distribution is scipy's paired bootstrap of ρ."""
    reps = 20000
    draws = np.tile(np.array(F1), (reps, 1))
    ours = class_bootstrap_rho(draws, PRIOR, seed=1)

    def rho(x, y, axis=-1):
        from emobench.report.finding_stats import spearman_rows

        return spearman_rows(np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1))

    ref = bootstrap(
        (np.array(F1), np.array(PRIOR)),
        rho,
        paired=True,
        vectorized=True,
        n_resamples=reps,
        method="percentile",
        rng=np.random.default_rng(5),
    ).bootstrap_distribution
    a, b = ours[np.isfinite(ours)], ref[np.isfinite(ref)]
    # two independent Monte Carlo samples of one distribution: means within 4 SE of
    # their difference, spreads within 5%
    se = np.sqrt(a.var() / a.size + b.var() / b.size)
    assert abs(a.mean() - b.mean()) < 4 * se
    assert a.std() == pytest.approx(b.std(), rel=0.05)
    # the CI is not pinned at the estimate, as the clip bootstrap with fixed classes was
    hi = np.quantile(a, 0.975)
    assert hi > spearmanr(F1, PRIOR).statistic + 0.1


def test_holm_by_hand():
    got = holm([0.01, 0.04, 0.03])
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1, made monotone: the same float operations
    assert got == [3 * 0.01, max(3 * 0.01, 2 * 0.03), max(3 * 0.01, 2 * 0.03, 1 * 0.04)]
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []


def test_bootstrap_p_by_hand():
    # |d* − 0.1| = 0, 0.1, 0.15, 0.2: three are >= 0.1, so (1 + 3) / (4 + 1)
    assert bootstrap_p(np.array([0.1, 0.2, -0.05, 0.3]), 0.1) == pytest.approx(0.8)
    assert bootstrap_p(np.zeros(9), 0.0) == 1.0
    assert bootstrap_p(np.array([np.nan]), 0.3) == 1.0


def test_discrete_interval_stays_on_the_values_and_shapes_are_named():
    v = np.array([5.0] * 98 + [10.0] + [1.0])  # 1% on each side: inside the 95%
    assert discrete_interval(v) == (5.0, 5.0)
    assert discrete_interval(np.array([1.0, 5.0] * 50)) == (1.0, 5.0)
    assert density_shape(True, True) == RISES_THEN_FALLS == "rises then falls"
    assert density_shape(True, False) == RISES == "rises"
    assert density_shape(False, True) == FALLS == "falls"
    assert density_shape(False, False) == FLAT == "flat"
