"""Training shared by the model families: a seeded, early-stopped loop over in-memory
arrays, the stratified validation split, temporal heads (and linear probes) on frozen
per-frame features with the re-balancing recipes of ``emobench.longtail.rebalance``, and
head prediction. The baseline's frame encoder is trained in
:mod:`emobench.models.baseline.train`; saved modules are :mod:`emobench.training.checkpoint`;
the heads trainer is :mod:`emobench.training.heads`.

Protocol (recorded here because the study publishes none):

* A stratified validation split (``val_fraction`` of each class, at least one clip of every
  class with ≥ 2 clips) is carved from the *training* clips the caller passes; the trainer
  never sees test clips. Early stopping watches validation UAR (mean per-class recall, the
  usual DFER metric and the one that does not reward head-class collapse) and restores the
  best weights.
* TSN-style sampling (:func:`emobench.video.sampling.segment_random`): every training
  sample is K frames, one at a random position inside each of K equal segments of the clip.
  For heads K is drawn per batch from ``train_frames`` (default 4, 8, 16) so that one head
  serves the whole density sweep (2..64 frames at test time) instead of only the density it
  was trained at. Validation uses the segment centres at ``eval_frames``.
* Determinism: ``seed`` seeds numpy and torch (inside ``torch.random.fork_rng``, so the
  caller's global RNG is untouched); on CPU the same seed gives bit-identical weights. On
  CUDA, cuDNN/atomics may differ in the last bits between runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from emobench.errors import EmobenchError, describe_validation_error
from emobench.longtail.rebalance import (
    class_counts,
)
from emobench.metrics import overall
from emobench.progress import ProgressFn
from emobench.settings import Device, Seed, TrainSettings

# training loops call ``progress(epoch, n_epochs, metrics)`` after every epoch (1-based)


class TrainConfigError(EmobenchError):
    """A training setting of the wrong type, out of range or unknown."""


class TrainDataError(EmobenchError):
    """Training inputs that do not fit together (shapes, lengths, label range)."""


class TrainConfig(TrainSettings):
    """Settings of one training run (encoder or head): :class:`emobench.settings.TrainSettings`
    (the ``[train]`` table of a run config, checked at config load) plus the run's ``seed``
    and resolved ``device``. ``batch_size`` counts clips; ``train_frames`` are the K values
    drawn per batch when training heads, ``eval_frames`` the K of validation;
    ``crt_epochs`` bounds the classifier re-training of ``decoupled-crt``; the encoder's
    settings are explained in :mod:`emobench.models.baseline.train`. A bad value is a
    :class:`TrainConfigError` naming the setting.
    """

    seed: Seed = 0
    device: Device = "auto"

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            raise TrainConfigError(
                f"bad training setting {describe_validation_error(exc)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (for sidecars and manifests)."""
        out = self.model_dump()
        out["train_frames"] = list(self.train_frames)
        return out


# --------------------------------------------------------------------------- helpers


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..N-1`` into (train, validation), stratified by label.

    Each class gives ``round(val_fraction · n_c)`` clips to validation, but at least one
    when it has ≥ 2 clips and never all of them (a class with one clip stays in train).
    Both outputs are sorted int64 arrays.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    if val_fraction > 0:
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            n = len(members)
            n_val = min(max(int(round(val_fraction * n)), 1), n - 1) if n >= 2 else 0
            val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64) if val else np.zeros(0, np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx).astype(np.int64)
    return train_idx, val_idx


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted average recall of integer class codes: :func:`emobench.metrics.overall`'s
    ``uar`` over the classes present in ``y_true`` (NaN for no clips)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return float("nan")
    present = [str(c) for c in np.unique(y_true)]
    return overall(y_true.astype(str), np.asarray(y_pred).astype(str), present)["uar"]


def check_labels(labels: np.ndarray, n_items: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_items:
        raise TrainDataError(f"got {n_items} clips but labels of shape {labels.shape}")
    if n_items < 2:
        raise TrainDataError(f"need at least 2 training clips, got {n_items}")
    if n_classes < 2:
        raise TrainDataError(f"need at least 2 classes, got {n_classes}")
    class_counts(labels, n_classes)  # validates dtype and range
    return labels.astype(np.int64)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch inside a forked RNG, so the caller's global RNG state is left untouched.

    ``torch.use_deterministic_algorithms`` is not switched on: importing it pulls in
    torch._inductor (≈3 s), and the CPU kernels used here are deterministic already (the
    tests check bit-identical weights for the same seed).
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class EarlyStopper:
    """Keeps a copy of the best weights by validation UAR (ties broken by the lower
    class-balanced validation loss, which matters on small validation sets where UAR
    saturates); signals after ``patience`` epochs without improvement. Without validation
    data every epoch counts as the best (the last weights are kept)."""

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.module, self.patience = module, patience
        self.best = -1.0
        self.best_loss = float("inf")
        self.best_epoch = 0
        self.state: dict[str, torch.Tensor] | None = None
        self.bad = 0

    def update(self, epoch: int, score: float, loss: float = float("nan")) -> bool:
        """Record ``score`` (and tie-breaking ``loss``) for ``epoch``; True when training
        should stop."""
        tie = abs(score - self.best) <= 1e-9 and loss < self.best_loss - 1e-6
        if np.isnan(score) or score > self.best + 1e-9 or tie:
            if not np.isnan(score):
                self.best, self.best_loss = score, loss
            self.best_epoch = epoch
            self.state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.bad = 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)


def make_optimizer(
    params: Sequence[nn.Parameter], cfg: TrainConfig, epochs: int, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a cosine decay over the planned number of steps."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    return opt, sched


def optimizer_step(
    opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, loss: torch.Tensor
) -> float:
    """Back-propagate ``loss``, step the optimizer and its schedule; the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


def batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


#: Validation metrics of every epoch (history lists of these names).
_VAL_METRICS = ("val_uar", "val_acc", "val_loss")


def validate(
    logits_fn: Callable[[np.ndarray], np.ndarray], labels: np.ndarray, val_idx: np.ndarray
) -> dict[str, float]:
    if len(val_idx) == 0:
        return dict.fromkeys(_VAL_METRICS, float("nan"))
    logits = logits_fn(val_idx).astype(np.float64)
    pred = logits.argmax(1)
    y = labels[val_idx]
    # class-balanced CE: mean over classes of the mean per-clip CE (consistent with UAR)
    shifted = logits - logits.max(1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(y)), y]
    balanced = float(np.mean([nll[y == c].mean() for c in np.unique(y)]))
    return {"val_uar": uar(y, pred), "val_acc": float(np.mean(pred == y)), "val_loss": balanced}


def record_epoch(
    history: dict[str, Any],
    epoch: int,
    loss: float,
    metrics: dict[str, float],
    stopper: EarlyStopper,
    phase: str | None = None,
) -> bool:
    history["epoch"].append(epoch)
    history["train_loss"].append(loss)
    for key in _VAL_METRICS:
        history[key].append(metrics[key])
    if phase is not None:
        history["phase"].append(phase)
    return stopper.update(epoch, metrics["val_uar"], metrics["val_loss"])


def last_metrics(history: dict[str, Any], stopper: EarlyStopper) -> dict[str, Any]:
    last = {key: history[key][-1] for key in _VAL_METRICS}
    return {"loss": history["train_loss"][-1], **last, "best_val_uar": stopper.best}


def run_summary(
    stopper: EarlyStopper,
    history: dict[str, Any],
    started: float,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
) -> dict[str, Any]:
    return {
        "best_epoch": stopper.best_epoch,
        "best_val_uar": stopper.best if stopper.best >= 0 else float("nan"),
        "epochs_run": len(history["epoch"]),
        "seconds": time.perf_counter() - started,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "val_indices": [int(i) for i in val_idx],
    }


# --------------------------------------------------------------------------- heads


__all__ = [
    "EarlyStopper",
    "ProgressFn",
    "TrainConfig",
    "TrainConfigError",
    "TrainDataError",
    "batches",
    "check_labels",
    "make_optimizer",
    "record_epoch",
    "run_summary",
    "seeded",
    "stratified_split",
    "uar",
    "validate",
]
