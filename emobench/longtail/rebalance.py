"""Class-imbalance strategies for training: sampling schedules, re-weighted losses, and the
named re-balancing recipes that configs refer to.

Three registries, each name → one entry:

* ``SAMPLINGS``: class counts ``n_c``, epoch ``e`` and total epochs ``E`` → per-class sampling
  probabilities (numpy). ``instance-balanced`` (∝ n_c, the natural distribution),
  ``class-balanced`` (uniform over classes), ``square-root`` (∝ √n_c) and ``progressive``
  (``(1 − e/E)·IB + (e/E)·CB``, Kang et al., ICLR 2020).
* ``LOSSES``: class counts + parameters → a torch loss ``(logits, targets) → scalar``. ``ce``,
  ``class-balanced`` (effective number of samples, Cui et al., CVPR 2019) and
  ``logit-adjusted`` (Menon et al., ICLR 2021).
* ``REBALANCING``: the recipes named in configs (``Rebalancing`` records) combining one
  sampling, one loss and whether training is decoupled (cRT: Kang et al. 2020).

Classes with no training sample get probability 0 under every sampling (there is nothing to
draw) and are ignored by the re-weighting; class indices exist only inside training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emobench.errors import EmobenchError
from emobench.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch


class RebalancingError(EmobenchError):
    """An unknown sampling / loss / re-balancing name, or bad labels or parameters."""


# --------------------------------------------------------------------------- sampling


def _check_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise RebalancingError(f"class counts must be a non-empty 1-D array, got {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise RebalancingError("class counts must be finite and non-negative")
    if counts.sum() <= 0:
        raise RebalancingError("class counts are all zero: no training samples")
    return counts


def _instance_balanced(counts: np.ndarray, epoch: int, n_epochs: int) -> np.ndarray:
    """p_c ∝ n_c: the natural (data) distribution."""
    return counts / counts.sum()


def _class_balanced(counts: np.ndarray, epoch: int, n_epochs: int) -> np.ndarray:
    """p_c = 1/C' over the C' classes that have samples."""
    present = (counts > 0).astype(np.float64)
    return present / present.sum()


def _square_root(counts: np.ndarray, epoch: int, n_epochs: int) -> np.ndarray:
    """p_c ∝ √n_c (Mahajan et al. 2018; Kang et al. 2020)."""
    root = np.sqrt(counts)
    return root / root.sum()


def _progressive(counts: np.ndarray, epoch: int, n_epochs: int) -> np.ndarray:
    """p_c = (1 − e/E)·IB + (e/E)·CB: moves from natural to balanced over training."""
    if n_epochs <= 0:
        raise RebalancingError(f"progressive sampling needs n_epochs > 0, got {n_epochs}")
    t = min(max(epoch / n_epochs, 0.0), 1.0)
    return (1.0 - t) * _instance_balanced(counts, epoch, n_epochs) + t * _class_balanced(
        counts, epoch, n_epochs
    )


SamplingFn = Callable[[np.ndarray, int, int], np.ndarray]

#: Sampling strategies: (class counts, epoch, total epochs) → class probabilities (sum 1).
SAMPLINGS: Registry[SamplingFn] = Registry(
    "sampling strategy",
    {
        "instance-balanced": _instance_balanced,
        "class-balanced": _class_balanced,
        "square-root": _square_root,
        "progressive": _progressive,
    },
    error=RebalancingError,
)


def class_probabilities(
    strategy: str, counts: np.ndarray, epoch: int = 0, n_epochs: int = 1
) -> np.ndarray:
    """Per-class sampling probabilities of ``strategy`` at ``epoch`` of ``n_epochs``."""
    return SAMPLINGS[strategy](_check_counts(counts), epoch, n_epochs)


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Histogram of integer labels in ``[0, n_classes)``; raises on out-of-range labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise RebalancingError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise RebalancingError(f"labels must be integer class indices, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise RebalancingError(
            f"labels must lie in [0, {n_classes}), got range [{labels.min()}, {labels.max()}]"
        )
    return np.bincount(labels, minlength=n_classes).astype(np.int64)


def sample_weights(
    strategy: str, labels: np.ndarray, n_classes: int, epoch: int = 0, n_epochs: int = 1
) -> np.ndarray:
    """Per-sample weights ``p_{y_i} / n_{y_i}`` (they sum to 1): drawing sample i with this
    probability gives class c the probability ``p_c`` of ``strategy``."""
    counts = class_counts(labels, n_classes)
    probs = class_probabilities(strategy, counts, epoch, n_epochs)
    per_class = np.divide(probs, counts, out=np.zeros_like(probs), where=counts > 0)
    return per_class[np.asarray(labels)]


def draw_epoch(
    strategy: str,
    labels: np.ndarray,
    n_classes: int,
    epoch: int,
    n_epochs: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices of one epoch: ``len(labels)`` draws with replacement under ``strategy``."""
    weights = sample_weights(strategy, labels, n_classes, epoch, n_epochs)
    weights = weights / weights.sum()  # guard against float drift for rng.choice
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights).astype(np.int64)


# --------------------------------------------------------------------------- losses


def class_balanced_weights(counts: np.ndarray, beta: float = 0.9999) -> np.ndarray:
    """Cui et al. (2019) weights ``w_c = (1 − β) / (1 − β^{n_c})``, normalised to sum to C.

    Classes with no samples get weight 0 (they never occur as a target); the others share
    the total ``C`` in proportion to the inverse effective number of samples.
    """
    counts = _check_counts(counts)
    if not 0.0 <= beta < 1.0:
        raise RebalancingError(f"class-balanced loss needs 0 <= beta < 1, got {beta}")
    present = counts > 0
    raw = np.zeros_like(counts)
    # beta = 0 gives w_c = 1 for every present class (plain CE).
    raw[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    return raw / raw.sum() * counts.size


def log_prior(counts: np.ndarray) -> np.ndarray:
    """``log π_c`` of the training label distribution; absent classes get log(0.5/N) so the
    adjustment stays finite (they have no training targets either way)."""
    counts = _check_counts(counts)
    return np.log(np.maximum(counts, 0.5) / counts.sum())


LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _ce_loss(counts: np.ndarray) -> LossFn:
    import torch.nn.functional as F

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets)

    return loss


def _cb_loss(counts: np.ndarray, beta: float = 0.9999) -> LossFn:
    """Per-sample CE weighted by ``w_{y_i}``, averaged over the batch (as in Cui et al.)."""
    import torch
    import torch.nn.functional as F

    weights = torch.as_tensor(class_balanced_weights(counts, beta), dtype=torch.float32)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = weights.to(logits.device)[targets]
        return (w * F.cross_entropy(logits.float(), targets, reduction="none")).mean()

    return loss


def _logit_adjusted_loss(counts: np.ndarray, tau: float = 1.0) -> LossFn:
    """CE on ``logits + τ·log π`` during training; predict with the raw logits."""
    import torch
    import torch.nn.functional as F

    shift = torch.as_tensor(tau * log_prior(counts), dtype=torch.float32)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float() + shift.to(logits.device), targets)

    return loss


#: Losses: (class counts, **params) → loss function over (logits, integer targets).
LOSSES: Registry[Callable[..., LossFn]] = Registry(
    "loss",
    {"ce": _ce_loss, "class-balanced": _cb_loss, "logit-adjusted": _logit_adjusted_loss},
    error=RebalancingError,
)


def make_loss(name: str, counts: np.ndarray, params: Mapping[str, float] | None = None) -> LossFn:
    """Build the loss ``name`` for a training set with class histogram ``counts``."""
    make = LOSSES[name]
    counts = _check_counts(counts)
    try:
        return make(counts, **dict(params or {}))
    except TypeError as exc:
        raise RebalancingError(
            f"bad parameters {dict(params or {})} for loss {name!r}: {exc}"
        ) from None


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Rebalancing:
    """A named re-balancing recipe.

    ``sampling`` and ``loss`` name entries of ``SAMPLINGS`` / ``LOSSES``; ``loss_params`` are
    (name, value) pairs passed to the loss. ``decoupled`` means cRT: train everything with
    ``sampling``/``loss`` (the natural distribution), then re-initialise and re-train only the
    final classifier layer with ``crt_sampling``.
    """

    name: str
    sampling: str
    loss: str = "ce"
    loss_params: tuple[tuple[str, float], ...] = ()
    decoupled: bool = False
    crt_sampling: str = "class-balanced"
    description: str = ""

    @property
    def params(self) -> dict[str, float]:
        """``loss_params`` as a dict."""
        return dict(self.loss_params)


def _recipes(*items: Rebalancing) -> Registry[Rebalancing]:
    return Registry(
        "re-balancing strategy", {r.name: r for r in items}, error=RebalancingError, sort=False
    )


#: Named re-balancing recipes used by configs (``rebalancing = "cb-loss"``), in their
#: listing order (``instance-balanced`` first).
REBALANCING: Registry[Rebalancing] = _recipes(
    Rebalancing(
        "instance-balanced", "instance-balanced", description="natural distribution, plain CE"
    ),
    Rebalancing("class-balanced", "class-balanced", description="uniform class sampling, CE"),
    Rebalancing("square-root", "square-root", description="sampling ∝ √n_c, CE"),
    Rebalancing(
        "progressive", "progressive", description="instance- to class-balanced over epochs, CE"
    ),
    Rebalancing(
        "cb-loss",
        "instance-balanced",
        "class-balanced",
        (("beta", 0.9999),),
        description="effective-number re-weighted CE (Cui et al. 2019)",
    ),
    Rebalancing(
        "logit-adjusted",
        "instance-balanced",
        "logit-adjusted",
        (("tau", 1.0),),
        description="CE on logits + τ log π (Menon et al. 2021)",
    ),
    Rebalancing(
        "decoupled-crt",
        "instance-balanced",
        decoupled=True,
        description="natural training, then class-balanced classifier re-training (Kang 2020)",
    ),
)


def get_rebalancing(name: str) -> Rebalancing:
    """The recipe called ``name``; unknown names raise ``RebalancingError`` listing the
    allowed ones."""
    return REBALANCING[name]


__all__ = [
    "LOSSES",
    "REBALANCING",
    "SAMPLINGS",
    "Rebalancing",
    "RebalancingError",
    "class_balanced_weights",
    "class_counts",
    "class_probabilities",
    "draw_epoch",
    "get_rebalancing",
    "log_prior",
    "make_loss",
    "sample_weights",
]
