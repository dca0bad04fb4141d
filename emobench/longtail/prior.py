"""Training-free prior corrections applied to a model's per-label scores (logits).

Each correction is a registry entry ``name → fn(scores, train_prior, **params) → scores``,
with ``scores`` an (N, C) array of logits / log-probabilities over the evaluated clips of a
cell and ``train_prior`` the (C,) training label distribution (sums to 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emobench.errors import EmobenchError

PriorFn = Callable[..., np.ndarray]
PRIOR_CORRECTIONS: dict[str, PriorFn] = {}


class PriorCorrectionError(EmobenchError):
    pass


def register_prior(name: str) -> Callable[[PriorFn], PriorFn]:
    def deco(fn: PriorFn) -> PriorFn:
        PRIOR_CORRECTIONS[name] = fn
        return fn

    return deco


@register_prior("none")
def _none(scores: np.ndarray, train_prior: np.ndarray, **_: float) -> np.ndarray:
    return scores


@register_prior("logit-adjust")
def _logit_adjust(scores: np.ndarray, train_prior: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al. 2021): subtract τ·log π_train."""
    return scores - tau * np.log(np.clip(train_prior, 1e-12, None))[None, :]


@register_prior("batch-calibration")
def _batch_calibration(scores: np.ndarray, train_prior: np.ndarray, **_: float) -> np.ndarray:
    """Batch calibration (Zhou et al. 2024): subtract the mean score of each class."""
    return scores - scores.mean(axis=0, keepdims=True)


def apply_prior(
    name: str, scores: np.ndarray, train_prior: np.ndarray, **params: float
) -> np.ndarray:
    """Apply the named correction; unknown names give one clear error."""
    if name not in PRIOR_CORRECTIONS:
        raise PriorCorrectionError(
            f"unknown prior correction {name!r}; allowed: {', '.join(PRIOR_CORRECTIONS)}"
        )
    return PRIOR_CORRECTIONS[name](np.asarray(scores, dtype=np.float64), train_prior, **params)


# Corrections defined in their own modules register on import.
from emobench.longtail import prior_estimated  # noqa: E402,F401  (estimated-prior)
