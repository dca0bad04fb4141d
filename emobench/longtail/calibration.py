"""Bias-corrected temperature scaling (BCTS), fitted on held-out labelled clips.

Alexandari, Kundaje & Shrikumar (ICML 2020), "Maximum Likelihood with Bias-Corrected
Calibration is Hard-To-Beat at Label Shift Adaptation": the calibrated posterior of logits
``z`` is

    p(c | z) = softmax_c( z / T + b_c )

with one temperature ``T > 0`` and one bias per class ``b`` (C + 1 parameters), chosen to
minimise the negative log-likelihood of the true labels of a held-out labelled set.
Parameters: ``θ = (log T, b)`` (so T stays positive), minimised by L-BFGS-B with the
analytic gradient (``∂NLL/∂b = Σ_i (p_i − y_i)``, ``∂NLL/∂log T = −Σ_i (p_i − y_i)·z_i / T``).
The softmax is invariant to adding one constant to every ``b_c``; the fit fixes that by
reporting ``b`` with mean 0 (any representative gives the same posteriors). At the optimum
``Σ_i p_i = Σ_i y_i``: the mean calibrated posterior on the held-out set equals its label
frequencies.

Columns that are not finite for every clip are excluded from the fit and left as they are
(they get no probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emobench.errors import EmobenchError

#: L-BFGS-B's gradient tolerance (projected gradient, per clip: the NLL is a mean).
GTOL = 1e-10


class CalibrationError(EmobenchError):
    pass


@dataclass(frozen=True)
class BCTS:
    """A fitted BCTS map over the classes ``cols`` of the scores it was fitted on."""

    temperature: float
    bias: np.ndarray  # (len(cols),), mean 0
    cols: np.ndarray  # indices of the calibrated columns
    n_clips: int
    nll: float  # mean NLL at the optimum

    def log_posteriors(self, scores: np.ndarray) -> np.ndarray:
        """(N, len(cols)) calibrated log-posteriors of (N, C) logits."""
        z = np.asarray(scores, dtype=np.float64)[:, self.cols]
        return _log_softmax(z / self.temperature + self.bias[None, :])

    def posteriors(self, scores: np.ndarray) -> np.ndarray:
        return np.exp(self.log_posteriors(scores))


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def bcts_nll(theta: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL of BCTS with ``θ = (log T, b)`` on logits ``z`` (N, C), labels ``y`` (N,),
    and its gradient."""
    t = np.exp(theta[0])
    b = theta[1:]
    logp = _log_softmax(z / t + b[None, :])
    n = z.shape[0]
    nll = -logp[np.arange(n), y].mean()
    resid = np.exp(logp)
    resid[np.arange(n), y] -= 1.0
    grad_b = resid.sum(axis=0) / n
    grad_logt = -(resid * z).sum() / (t * n)
    return float(nll), np.concatenate([[grad_logt], grad_b])


def fit_bcts(scores: np.ndarray, labels: np.ndarray) -> BCTS:
    """BCTS fitted on held-out logits ``scores`` (N, C) with class indices ``labels`` (N,)
    (module docstring)."""
    from scipy.optimize import minimize

    z = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or z.shape[0] == 0 or y.shape != (z.shape[0],):
        raise CalibrationError(
            f"BCTS needs (N>0, C) held-out scores and (N,) labels, got {z.shape}, {y.shape}"
        )
    cols = np.flatnonzero(np.all(np.isfinite(z), axis=0))
    remap = {int(c): i for i, c in enumerate(cols)}
    keep = np.array([int(v) in remap for v in y])
    if cols.size < 2 or not keep.any():
        raise CalibrationError("BCTS needs at least two scored classes and a labelled clip")
    zc = z[keep][:, cols]
    yc = np.array([remap[int(v)] for v in y[keep]], dtype=np.int64)
    theta0 = np.zeros(cols.size + 1)
    res = minimize(
        bcts_nll,
        theta0,
        args=(zc, yc),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": GTOL, "ftol": 1e-15, "maxiter": 10_000},
    )
    b = res.x[1:] - res.x[1:].mean()
    return BCTS(
        temperature=float(np.exp(res.x[0])),
        bias=b,
        cols=cols,
        n_clips=int(zc.shape[0]),
        nll=float(res.fun),
    )


__all__ = ["BCTS", "CalibrationError", "bcts_nll", "fit_bcts"]
