"""``calibrated-em``: Saerens EM on BCTS-calibrated posteriors (Alexandari et al. 2020).

Saerens, Latinne & Decaestecker's EM (``em-test-prior``) assumes the model's posteriors
are calibrated for the source prior. A zero-shot model's are not (a flat CLIP softmax is
under-confident), and EM then runs away towards one class. Alexandari, Kundaje &
Shrikumar (ICML 2020) show that calibrating first with bias-corrected temperature scaling
(BCTS, :mod:`emobench.longtail.calibration`) makes EM "hard to beat" at label-shift
adaptation. This correction:

1. fits BCTS (``p = softmax(z / T + b)``) on held-out labelled clips: ``calibration =
   (scores (M, C), labels (M,))``, which the engine scores from a carve-out of the fold's
   training clips (:mod:`emobench.runner.prior_hook`);
2. takes the source prior ``π_s`` as the mean calibrated posterior of those clips (at the
   BCTS optimum this equals their label frequencies; the default of Alexandari et al.'s
   ``abstention`` code);
3. runs Saerens EM (:func:`emobench.longtail.prior_saerens.em_test_prior_estimate`) on
   the calibrated test posteriors from ``π_s``, giving the test prior ``π̂``;
4. returns ``log p_cal + log π̂ − log π_s`` (softmax = the adapted posteriors).

Columns without a finite score for every clip (labels the model cannot output) are left
as they are (BCTS is fitted over the others).
"""

from __future__ import annotations

import numpy as np

from emobench.longtail.calibration import BCTS, fit_bcts
from emobench.longtail.prior import PriorCorrectionError, finite_columns, register_prior_correction
from emobench.longtail.prior_saerens import em_test_prior_estimate

NAME = "calibrated-em"


def _fit(calibration: object) -> BCTS:
    if calibration is None:
        raise PriorCorrectionError(
            f"{NAME} needs held-out labelled clips (calibration=(scores, labels))"
        )
    cal_scores, cal_labels = calibration  # type: ignore[misc]
    return fit_bcts(np.asarray(cal_scores, dtype=np.float64), np.asarray(cal_labels))


def calibrated_em_fit(
    scores: np.ndarray, calibration: object, iters: int = 1000, tol: float = 1e-10
) -> tuple[BCTS, np.ndarray, np.ndarray]:
    """The BCTS map, the source prior ``π_s`` and the EM test prior ``π̂`` (both over the
    BCTS map's columns) of test logits ``scores`` (module docstring)."""
    z, cols = finite_columns(scores, NAME)
    cal = _fit(calibration)
    cal_scores = np.asarray(calibration[0], dtype=np.float64)  # type: ignore[index]
    source = cal.posteriors(cal_scores).mean(axis=0)
    source = source / source.sum()
    if z.shape[0] == 0:
        return cal, source, source
    missing = np.setdiff1d(cal.cols, cols)
    if missing.size or z.shape[1] != cal_scores.shape[1]:
        raise PriorCorrectionError(
            f"{NAME}: the test scores ({z.shape[1]} labels) lack labels {missing.tolist()} "
            f"that the held-out clips ({cal_scores.shape[1]} labels) have"
        )
    log_p = cal.log_posteriors(z)
    q = em_test_prior_estimate(log_p, source, iters=iters, tol=tol)
    return cal, source, q


def _estimate(
    scores: np.ndarray,
    train_prior: np.ndarray | None,
    calibration: object = None,
    iters: int = 1000,
    tol: float = 1e-10,
) -> np.ndarray:
    """``π̂`` on the calibrated columns (0 elsewhere)."""
    cal, _, q = calibrated_em_fit(scores, calibration, iters=iters, tol=tol)
    out = np.zeros(np.asarray(scores).shape[1])
    out[cal.cols] = q
    return out


@register_prior_correction(NAME, needs_calibration=True, estimate=_estimate)
def calibrated_em(
    scores: np.ndarray,
    train_prior: np.ndarray | None,
    calibration: object = None,
    iters: int = 1000,
    tol: float = 1e-10,
) -> np.ndarray:
    """Calibrated test-prior adaptation (module docstring); ``train_prior`` is not used:
    the source prior is that of the held-out clips the calibration was fitted on."""
    z, _ = finite_columns(scores, NAME)
    if z.shape[0] == 0:
        return z
    cal, source, q = calibrated_em_fit(z, calibration, iters=iters, tol=tol)
    adapted = (
        cal.log_posteriors(z)
        + np.log(np.clip(q, 1e-300, None))[None, :]
        - np.log(np.clip(source, 1e-300, None))[None, :]
    )
    z[:, cal.cols] = adapted
    return z


__all__ = ["NAME", "calibrated_em", "calibrated_em_fit"]
