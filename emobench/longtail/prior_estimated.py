"""``estimated-prior``: remove a model's *implicit* label prior, estimated without labels.

A zero-shot model has no training label distribution we could subtract (its bias comes
from web-scale pre-training: frequent words, frequent concepts), so the known-prior logit
adjustment does not apply. In the spirit of generalized logit adjustment (Zhu et al.,
NeurIPS 2023) the prior is estimated from the model's own predictions on the unlabelled
clips of the evaluated split, then ``τ · log q̂`` is subtracted from the scores.

Two estimators (``method``):

* ``em`` (default, the historical name): the fixed point of
  ``q ← normalise(q ⊙ mean_i softmax(z_i − log q))``. At the fixed point
  ``mean_i softmax(z_i − log q̂)`` is uniform: ``q̂`` is the prior whose removal makes the
  corrected predictions' mean posterior uniform over the evaluated clips. The iteration is
  Sinkhorn–Knopp matrix scaling (Sinkhorn & Knopp, 1967; in the optimal-transport form of
  Cuturi, NeurIPS 2013) of ``exp(z)`` to rows summing to 1 and equal column sums, i.e. the
  equipartition constraint of Asano et al. (ICLR 2020, self-labelling), kept as one
  per-class column scaling. It is *not* Saerens et al.'s (2002) test-prior EM, which
  re-weights the posteriors by ``π̂ / π_train`` and whose fixed point is
  ``mean_i p̂_i = π̂`` (a test prior to *adopt*, not a bias to remove): that one is the
  separate ``em-test-prior`` correction (:mod:`emobench.longtail.prior_saerens`). Adding a
  constant per-class bias ``b`` to every score multiplies ``q̂`` by ``exp(b)``, so the
  correction removes such a bias exactly (like batch calibration, but in probability
  space).
* ``mean-softmax``: ``q̂ = mean_i softmax(z_i)``, one pass (one Sinkhorn half-step).

Both treat the evaluated clips as a sample from the label distribution the corrected
classifier should be balanced for: on a natural (long-tailed) test split they trade
accuracy on head classes for recall on tail classes, which is what UAR rewards.
Columns that are not finite for every clip (labels the model cannot output) are left as
they are and excluded from the estimate.

Importing this module registers the correction (the registry imports it on first lookup).
"""

from __future__ import annotations

import numpy as np

from emobench.longtail.prior import (
    PriorCorrectionError,
    finite_columns,
    finite_scores,
    on_finite_columns,
    register_prior_correction,
)

METHODS = ("em", "mean-softmax")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def estimate_prior(
    scores: np.ndarray, method: str = "em", iters: int = 200, tol: float = 1e-10
) -> np.ndarray:
    """The implicit label prior ``q̂`` (C,) of finite logits ``scores`` (N, C); sums to 1."""
    z = finite_scores(scores, "estimated-prior")
    if method == "mean-softmax":
        q = _softmax(z).mean(axis=0)
        return q / q.sum()
    if method != "em":
        raise PriorCorrectionError(
            f"estimated-prior: unknown method {method!r}; allowed: {', '.join(METHODS)}"
        )
    log_q = np.full(z.shape[1], -np.log(z.shape[1]))
    for _ in range(int(iters)):
        marginal = _softmax(z - log_q[None, :]).mean(axis=0)
        new = log_q + np.log(np.clip(marginal, 1e-300, None))
        new -= np.logaddexp.reduce(new)
        done = np.max(np.abs(new - log_q)) < tol
        log_q = new
        if done:
            break
    return np.exp(log_q)


def _estimate(
    scores: np.ndarray,
    train_prior: np.ndarray | None,
    method: str = "em",
    iters: int = 200,
    **_: float,
) -> np.ndarray:
    """``q̂`` over the finite columns (0 elsewhere): the implicit prior that is removed."""
    return on_finite_columns(
        scores, "estimated-prior", lambda z: estimate_prior(z, method=method, iters=iters)
    )


@register_prior_correction("estimated-prior", estimate=_estimate)
def estimated_prior(
    scores: np.ndarray,
    train_prior: np.ndarray,
    tau: float = 1.0,
    method: str = "em",
    iters: int = 200,
) -> np.ndarray:
    """Subtract ``τ · log q̂`` with ``q̂`` estimated from ``scores`` themselves (module
    docstring); ``train_prior`` is not used (the model's own prior is unknown)."""
    z, cols = finite_columns(scores, "estimated-prior")
    if cols.size == 0:
        return z
    q = estimate_prior(z[:, cols], method=method, iters=iters)
    z[:, cols] -= tau * np.log(np.clip(q, 1e-300, None))[None, :]
    return z


__all__ = ["METHODS", "estimate_prior", "estimated_prior"]
