"""Training-free prior corrections applied to a model's per-label scores (logits).

Each correction is a registry entry ``name → fn(scores, train_prior, **params) → scores``,
with ``scores`` an (N, C) array of logits / log-probabilities over the evaluated clips of a
cell and ``train_prior`` the (C,) training label distribution (sums to 1). Corrections in
other modules of :mod:`emobench.longtail` (``estimated-prior``, ``em-test-prior``,
``calibrated-em``) register with :func:`register_prior_correction` and are imported on the
first lookup; this module imports none of them.

A correction registered with ``needs_calibration=True`` also takes ``calibration``: the
scores (M, C) and true class indices (M,) of held-out labelled clips
(:func:`needs_calibration`; the engine carves them out of the fold's training clips). A
correction that estimates a label prior registers its estimator with ``estimate=`` so that
the engine can record the estimate and warn when it puts most of its mass on one class
(:func:`estimate_prior_of`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emobench.errors import EmobenchError
from emobench.registry import Registry, find_modules

PriorFn = Callable[..., np.ndarray]
#: ``fn(scores, train_prior, **params) -> (C,) prior`` of an estimating correction.
EstimateFn = Callable[..., np.ndarray]


class PriorCorrectionError(EmobenchError):
    pass


#: Prior corrections by name, in registration order (``none`` first).
PRIOR_CORRECTIONS: Registry[PriorFn] = Registry(
    "prior correction",
    error=PriorCorrectionError,
    discover=lambda: find_modules("emobench.longtail", marker="@register_prior_correction("),
    sort=False,
)


#: Label-prior estimators of the corrections that estimate one, by correction name.
_ESTIMATORS: dict[str, EstimateFn] = {}
#: Corrections that need held-out labelled clips (``calibration=``).
_NEEDS_CALIBRATION: set[str] = set()


def register_prior_correction(
    name: str, *, needs_calibration: bool = False, estimate: EstimateFn | None = None
) -> Callable[[PriorFn], PriorFn]:
    """Decorator: register ``fn(scores, train_prior, **params) -> scores`` as ``name``
    (see the module docstring for ``needs_calibration`` and ``estimate``)."""

    def deco(fn: PriorFn) -> PriorFn:
        if needs_calibration:
            _NEEDS_CALIBRATION.add(name)
        if estimate is not None:
            _ESTIMATORS[name] = estimate
        return PRIOR_CORRECTIONS.register(name)(fn)

    return deco


def needs_calibration(name: str) -> bool:
    """Whether the correction ``name`` takes held-out labelled clips (``calibration=``)."""
    PRIOR_CORRECTIONS[name]  # loads the registry; an unknown name is one clear error
    return name in _NEEDS_CALIBRATION


def estimate_prior_of(
    name: str, scores: np.ndarray, train_prior: np.ndarray | None, **params: object
) -> np.ndarray | None:
    """The (C,) label prior the correction ``name`` estimates from ``scores`` (0 on columns
    it cannot use), or None for a correction that estimates none."""
    PRIOR_CORRECTIONS[name]
    fn = _ESTIMATORS.get(name)
    return None if fn is None else fn(np.asarray(scores, dtype=np.float64), train_prior, **params)


def on_finite_columns(
    scores: np.ndarray, name: str, fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``fn`` (a (N, C') → (C',) estimator) on the columns finite for every clip, 0 on the
    others."""
    z, cols = finite_columns(scores, name)
    out = np.zeros(z.shape[1])
    if cols.size and z.shape[0]:
        out[cols] = fn(z[:, cols])
    return out


@register_prior_correction("none")
def _none(scores: np.ndarray, train_prior: np.ndarray, **_: float) -> np.ndarray:
    return scores


@register_prior_correction("logit-adjust")
def _logit_adjust(scores: np.ndarray, train_prior: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al. 2021): subtract τ·log π_train."""
    return scores - tau * np.log(np.clip(train_prior, 1e-12, None))[None, :]


@register_prior_correction("batch-calibration")
def _batch_calibration(scores: np.ndarray, train_prior: np.ndarray, **_: float) -> np.ndarray:
    """Batch calibration (Zhou et al. 2024): subtract the mean score of each class."""
    return scores - scores.mean(axis=0, keepdims=True)


def finite_columns(scores: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A float64 copy of (N, C) ``scores`` and the columns finite for every clip (none when
    N is 0): the labels a correction that estimates from the scores can use."""
    z = np.array(scores, dtype=np.float64, copy=True)
    if z.ndim != 2:
        raise PriorCorrectionError(f"{name} needs (N, C) scores, got {z.shape}")
    if z.shape[0] == 0:
        return z, np.empty(0, dtype=np.intp)
    return z, np.flatnonzero(np.all(np.isfinite(z), axis=0))


def finite_scores(scores: np.ndarray, name: str) -> np.ndarray:
    """``scores`` as float64 (N>0, C>0) finite logits, else one :class:`PriorCorrectionError`."""
    z = np.asarray(scores, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise PriorCorrectionError(f"{name} needs (N>0, C>0) scores, got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise PriorCorrectionError(f"{name}: scores must be finite")
    return z


def apply_prior(
    name: str, scores: np.ndarray, train_prior: np.ndarray, **params: float
) -> np.ndarray:
    """Apply the named correction; unknown names give one clear error."""
    fn = PRIOR_CORRECTIONS[name]
    return fn(np.asarray(scores, dtype=np.float64), train_prior, **params)
