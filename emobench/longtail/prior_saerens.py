"""``em-test-prior``: adapt the scores to the test split's label prior, estimated by EM.

Saerens, Latinne & Decaestecker (2002), "Adjusting the outputs of a classifier to new a
priori probabilities: a simple procedure", Neural Computation 14(1). The model's
posteriors ``p_i = softmax(z_i)`` are taken as calibrated for the training prior
``π_t`` (the ``train_prior`` argument; uniform when None). The test prior ``π̂`` and the
adjusted posteriors are then the maximum-likelihood fixed point of

    p̂_i(c) = normalise_c( p_i(c) · π̂(c) / π_t(c) ),      π̂(c) = mean_i p̂_i(c),

iterated from ``π̂ = π_t`` (each step is one EM step on the unlabelled test clips and never
decreases their likelihood). The correction returns ``z + log π̂ − log π_t``, whose softmax
is ``p̂``. Unlike ``estimated-prior`` (which removes a prior so that the mean prediction is
uniform) this *adopts* the test prior: on a long-tailed test split it moves predictions
towards the frequent classes the test split really has.

Columns that are not finite for every clip (labels the model cannot output) are left as
they are and excluded, with ``π_t`` renormalised over the remaining classes.
"""

from __future__ import annotations

import numpy as np

from emobench.longtail.prior import (
    PriorCorrectionError,
    finite_columns,
    finite_scores,
    register_prior_correction,
)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def em_test_prior_estimate(
    scores: np.ndarray,
    train_prior: np.ndarray | None = None,
    iters: int = 1000,
    tol: float = 1e-10,
) -> np.ndarray:
    """The test label prior ``π̂`` (C,) of finite logits ``scores`` (N, C) by Saerens' EM."""
    z = finite_scores(scores, "em-test-prior")
    log_pt = _log_train_prior(train_prior, z.shape[1])
    log_p = _log_softmax(z)
    log_q = log_pt.copy()
    for _ in range(int(iters)):
        post = np.exp(_log_softmax(log_p + (log_q - log_pt)[None, :]))
        new = np.log(np.clip(post.mean(axis=0), 1e-300, None))
        new -= np.logaddexp.reduce(new)
        done = np.max(np.abs(np.exp(new) - np.exp(log_q))) < tol
        log_q = new
        if done:
            break
    return np.exp(log_q)


def _log_train_prior(train_prior: np.ndarray | None, n_classes: int) -> np.ndarray:
    if train_prior is None:
        return np.full(n_classes, -np.log(n_classes))
    pt = np.asarray(train_prior, dtype=np.float64)
    if pt.shape != (n_classes,) or not np.all(np.isfinite(pt)) or np.any(pt < 0) or pt.sum() <= 0:
        raise PriorCorrectionError(
            f"em-test-prior needs a ({n_classes},) non-negative train prior, got {pt!r}"
        )
    pt = np.clip(pt / pt.sum(), 1e-12, None)
    return np.log(pt / pt.sum())


def _estimate(
    scores: np.ndarray, train_prior: np.ndarray | None, iters: int = 1000, tol: float = 1e-10
) -> np.ndarray:
    """``π̂`` over the finite columns (0 elsewhere): the test prior the correction adopts."""
    z, cols = finite_columns(scores, "em-test-prior")
    out = np.zeros(z.shape[1])
    if cols.size and z.shape[0]:
        pt = None if train_prior is None else np.asarray(train_prior, dtype=np.float64)[cols]
        out[cols] = em_test_prior_estimate(z[:, cols], pt, iters=iters, tol=tol)
    return out


@register_prior_correction("em-test-prior", estimate=_estimate)
def em_test_prior(
    scores: np.ndarray,
    train_prior: np.ndarray | None,
    iters: int = 1000,
    tol: float = 1e-10,
) -> np.ndarray:
    """Shift ``scores`` by ``log π̂ − log π_t`` (module docstring)."""
    z, cols = finite_columns(scores, "em-test-prior")
    if cols.size == 0:
        return z
    pt = None if train_prior is None else np.asarray(train_prior, dtype=np.float64)[cols]
    log_pt = _log_train_prior(pt, cols.size)
    q = em_test_prior_estimate(z[:, cols], np.exp(log_pt), iters=iters, tol=tol)
    z[:, cols] += np.log(np.clip(q, 1e-300, None))[None, :] - log_pt[None, :]
    return z


__all__ = ["em_test_prior", "em_test_prior_estimate"]
