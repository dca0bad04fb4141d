"""Issue 22 §4: ECE, bias-corrected temperature scaling (BCTS) and calibrated EM
(``calibrated-em``), each checked against an independent reference."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions
from scipy.optimize import minimize
from scipy.special import log_softmax

from emobench.longtail.calibration import fit_bcts
from emobench.longtail.prior import (
    PRIOR_CORRECTIONS,
    PriorCorrectionError,
    apply_prior,
    estimate_prior_of,
    needs_calibration,
)
from emobench.longtail.prior_saerens import em_test_prior_estimate
from emobench.metrics.calibration import (
    DEFAULT_BINS,
    ece_of_scores,
    expected_calibration_error,
)

# --- ECE: top-label, equal-width bins ((m-1)/M, m/M], 15 by default -------------------


def test_ece_hand_computed() -> None:
    # confidences .90 (right), .85 (wrong), .62 (right), .64 (wrong): with 15 bins they fall
    # in (13/15, 14/15], (12/15, 13/15], and (9/15, 10/15] twice (no value on an edge)
    p = np.array([[0.90, 0.10], [0.85, 0.15], [0.62, 0.38], [0.36, 0.64]])
    y = np.array([0, 1, 0, 0])
    # bins: |1 - .90| = .10; |0 - .85| = .85; two clips, acc .5, conf .63: |.5 - .63| = .13
    hand = (1 * 0.10 + 1 * 0.85 + 2 * 0.13) / 4  # = 0.3025
    assert DEFAULT_BINS == 15
    # fp64 sums of four terms: a few ulps
    assert expected_calibration_error(p, y) == pytest.approx(hand, abs=1e-12)
    # one bin: |accuracy - mean confidence| = |.5 - .7525|
    assert expected_calibration_error(p, y, n_bins=1) == pytest.approx(0.2525, abs=1e-12)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0


def test_ece_of_scores_uses_softmax_and_skips_unscored_rows() -> None:
    p = np.array([[0.90, 0.10], [0.85, 0.15], [0.62, 0.38], [0.36, 0.64]])
    y = np.array([0, 1, 0, 0])
    z = np.log(p) + 3.0  # a constant shift leaves the softmax as it is
    z = np.vstack([z, [-np.inf, -np.inf]])  # a free-text answer: no score
    assert ece_of_scores(z, np.append(y, 1)) == pytest.approx(0.3025, abs=1e-12)
    assert ece_of_scores(np.full((2, 2), -np.inf), np.array([0, 1])) is None


def test_metrics_table_has_ece_for_scored_cells_only() -> None:
    from emobench.results.metrics_table import compute_metrics

    labels = ["happiness", "sadness"]
    p = np.array([[0.90, 0.10], [0.85, 0.15], [0.62, 0.38], [0.36, 0.64]])
    scored = fake_predictions(
        cell_id="s",
        model="m",
        fold=1,
        clip_ids=[f"c{i}" for i in range(4)],
        labels=["happiness", "sadness", "happiness", "happiness"],
        preds=["happiness", "happiness", "happiness", "sadness"],
        **{"score:happiness": np.log(p[:, 0]), "score:sadness": np.log(p[:, 1])},
    )
    free = fake_predictions(
        cell_id="g",
        model="m",
        fold=1,
        clip_ids=[f"c{i}" for i in range(4)],
        labels=["happiness", "sadness", "happiness", "happiness"],
        preds=["happiness", "happiness", "happiness", "sadness"],
        **{"score:happiness": [None] * 4, "score:sadness": [None] * 4},
    )
    preds = pl.concat([scored, free], how="diagonal_relaxed")
    manifest = {"datasets": {str(scored["dataset"][0]): {"labels": labels}}}
    from emobench.config import MetricsConfig

    table = compute_metrics(preds, manifest, MetricsConfig(n_resamples=0))
    ece = table.filter((pl.col("scope") == "calibration") & (pl.col("metric") == "ece"))
    assert set(ece["cell_id"]) == {"s"}
    assert ece["value"].to_list() == pytest.approx([0.3025, 0.3025], abs=1e-12)  # fold, mean


# --- BCTS: p = softmax(z / T + b), maximum likelihood on held-out labelled clips --------


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    z = rng.normal(size=(n, 3))
    z[np.arange(n), y] += 1.5
    return 0.3 * z + np.array([0.0, 0.4, -0.2]), y  # under-confident and biased


def test_bcts_equals_a_direct_scipy_minimisation_of_the_same_nll() -> None:
    z, y = _miscalibrated(400, 0)
    fit = fit_bcts(z, y)

    def nll(theta: np.ndarray) -> float:  # written independently: scipy's log_softmax
        t, b = np.exp(theta[0]), np.concatenate([[0.0], theta[1:]])  # b_0 = 0 fixes the gauge
        return -log_softmax(z / t + b, axis=1)[np.arange(len(y)), y].mean()

    ref = minimize(
        nll,
        np.zeros(3),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000},
    )
    t_ref = np.exp(ref.x[0])
    b_ref = np.concatenate([[0.0], ref.x[1:]])
    # both optimisers stop at a tolerance (L-BFGS-B gtol 1e-10, Nelder-Mead xatol 1e-10 on
    # θ): the parameters agree to ~1e-6, the minimum NLL (flat at the optimum) to ~1e-12
    assert fit.temperature == pytest.approx(t_ref, rel=1e-6)
    assert fit.bias == pytest.approx(b_ref - b_ref.mean(), abs=1e-6)
    assert fit.nll == pytest.approx(ref.fun, abs=1e-11)
    assert fit.temperature < 1  # the scores were under-confident: T sharpens them
    # at the optimum the mean calibrated posterior equals the label frequencies (∂/∂b = 0)
    freq = np.bincount(y, minlength=3) / len(y)
    assert fit.posteriors(z).mean(axis=0) == pytest.approx(freq, abs=1e-8)


# --- calibrated EM --------------------------------------------------------------------

# Held-out clips in two groups whose logits are the log of their label frequencies
# (group A: 3 of 4 class 0, group B: 1 of 4): BCTS's optimum is T = 1, b = 0 (the model is
# already calibrated there) and the source prior is (1/2, 1/2).
A, B = np.log([0.75, 0.25]), np.log([0.25, 0.75])
CAL = (np.array([A] * 4 + [B] * 4), np.array([0, 0, 0, 1, 0, 1, 1, 1]))
# Test: 5 clips like A, 3 like B. EM fixed point q = (q0, 1 - q0) with u = 2 q0 solves
# 8 = 5 · 3/(u + 1) + 3/(3 - u)  <=>  2u² - 7u + 6 = 0  <=>  u = 1.5 (u = 2 is the
# boundary q0 = 1). So π̂ = (0.75, 0.25); check: A's posterior of class 0 becomes
# 3·.75/(2·.75 + 1) = .9, B's .75/(3 - 1.5) = .5, and (5·.9 + 3·.5)/8 = .75.
TEST = np.array([A] * 5 + [B] * 3)


def test_saerens_em_hand_checked() -> None:
    q = em_test_prior_estimate(TEST, np.array([0.5, 0.5]))
    # EM stops when a step moves π̂ by < 1e-10; its linear rate here is ~0.5: error < 1e-9
    assert q == pytest.approx([0.75, 0.25], abs=1e-9)


def test_calibrated_em_hand_checked() -> None:
    assert "calibrated-em" in PRIOR_CORRECTIONS and needs_calibration("calibrated-em")
    assert not needs_calibration("em-test-prior")
    q = estimate_prior_of("calibrated-em", TEST, None, calibration=CAL)
    # the BCTS fit is T = 1, b = 0 up to L-BFGS-B's tolerance (gtol 1e-10): ~1e-7 on π̂
    assert q == pytest.approx([0.75, 0.25], abs=1e-6)
    out = apply_prior("calibrated-em", TEST, np.array([0.5, 0.5]), calibration=CAL)
    post = np.exp(log_softmax(out, axis=1))
    # adapted posteriors: 0.9 for A-like clips, 0.5 for B-like ones (see above)
    assert post[:, 0] == pytest.approx([0.9] * 5 + [0.5] * 3, abs=1e-6)


def test_calibrated_em_undoes_a_temperature_that_plain_em_trusts() -> None:
    # under-confident logits (A, B divided by 4): plain Saerens EM on them does not recover
    # the test prior; BCTS learns T = 1/4 from the held-out clips and EM then does
    cal = (CAL[0] / 4, CAL[1])
    plain = estimate_prior_of("em-test-prior", TEST / 4, np.array([0.5, 0.5]))
    fixed = estimate_prior_of("calibrated-em", TEST / 4, None, calibration=cal)
    assert abs(plain[0] - 0.75) > 0.1
    assert fixed == pytest.approx([0.75, 0.25], abs=1e-6)


def test_calibrated_em_needs_held_out_clips_and_keeps_unscored_columns() -> None:
    with pytest.raises(PriorCorrectionError, match="held-out"):
        apply_prior("calibrated-em", TEST, np.array([0.5, 0.5]))
    z = np.hstack([TEST, np.full((8, 1), -np.inf)])
    cal = (np.hstack([CAL[0], np.full((8, 1), -np.inf)]), CAL[1])
    out = apply_prior("calibrated-em", z, None, calibration=cal)
    assert np.all(np.isneginf(out[:, 2]))
    assert np.exp(log_softmax(out[:, :2], axis=1))[:, 0] == pytest.approx(
        [0.9] * 5 + [0.5] * 3, abs=1e-6
    )
