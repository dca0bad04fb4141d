"""Calibration of a model's scores: expected calibration error (ECE), a pure function.

Definition (top-label ECE, Guo et al. ICML 2017, "On Calibration of Modern Neural
Networks", eq. 3): each clip's posterior is ``p_i = softmax(z_i)`` over the labels with a
finite score; its *confidence* is ``max_c p_i(c)`` and it is *correct* when the argmax
label is the true label. Confidences are put in ``n_bins`` (default 15) equal-width bins
``B_1 = [0, 1/M]``, ``B_m = ((m-1)/M, m/M]``; then

    ECE = Σ_m |B_m| / N · | acc(B_m) − conf(B_m) |

with ``acc`` the fraction correct and ``conf`` the mean confidence of the bin (empty bins
add nothing). 0 is perfectly calibrated; an under-confident model (confidence below
accuracy, e.g. a zero-shot CLIP whose softmax is flat) and an over-confident one both
score above 0. Rows without any finite score (a free-text answer) are left out; a cell
without scored rows has no ECE (None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Equal-width confidence bins of :func:`expected_calibration_error` (Guo et al. use 15).
DEFAULT_BINS = 15


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits; -inf / NaN entries get probability 0."""
    z = np.asarray(scores, dtype=np.float64)
    z = np.where(np.isfinite(z), z, -np.inf)
    top = z.max(axis=1, keepdims=True)
    e = np.exp(z - np.where(np.isfinite(top), top, 0.0))
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(
    probs: np.ndarray, y_true: Sequence[int] | np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """Top-label ECE of (N, C) posteriors ``probs`` against class indices ``y_true``
    (module docstring); 0.0 for N = 0."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(
            f"ECE needs (N, C) probabilities and (N,) labels, got {p.shape}, {y.shape}"
        )
    if n_bins < 1:
        raise ValueError(f"ECE needs n_bins >= 1, got {n_bins}")
    if p.shape[0] == 0:
        return 0.0
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # bin m (1-based) holds (m-1)/M < conf <= m/M; conf = 0 goes to the first bin
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges, right=True) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    gap = np.bincount(idx, weights=correct - conf, minlength=n_bins)
    # |Σ_bin (correct - conf)| / N = |B|/N · |acc(B) - conf(B)|
    return float(np.abs(gap[count > 0]).sum() / p.shape[0])


def ece_of_scores(
    scores: np.ndarray, y_true: Sequence[int] | np.ndarray, n_bins: int = DEFAULT_BINS
) -> float | None:
    """ECE of the rows of (N, C) logits with at least one finite score (softmax over the
    finite ones); None when no row has a score."""
    z = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    scored = np.isfinite(z).any(axis=1) if z.size else np.zeros(len(y), dtype=bool)
    if not scored.any():
        return None
    return expected_calibration_error(softmax_rows(z[scored]), y[scored], n_bins)


__all__ = ["DEFAULT_BINS", "ece_of_scores", "expected_calibration_error", "softmax_rows"]
