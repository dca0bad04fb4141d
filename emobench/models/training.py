"""Training shared by the model families: a seeded, early-stopped loop over in-memory
arrays, the stratified validation split, temporal heads (and linear probes) on frozen
per-frame features with the re-balancing recipes of ``emobench.longtail.rebalance``, and
head prediction. The baseline's frame encoder is trained in
:mod:`emobench.models.baseline.train`; saved modules are :mod:`emobench.models.checkpoint`.

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
    draw_epoch,
    get_rebalancing,
    make_loss,
)
from emobench.metrics import overall
from emobench.models.baseline.heads import HEADS, build_head
from emobench.models.device import autocast, resolve_device
from emobench.progress import ProgressFn
from emobench.settings import Device, Seed, TrainSettings
from emobench.video.sampling import segment_centres, segment_random

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


class _FlatFeatures:
    """Per-clip (T_i, D) features stored as one flat (ΣT, D) tensor plus offsets, so that a
    batch of (clip, frame index) pairs is a single gather."""

    def __init__(self, features: list[np.ndarray], device: torch.device) -> None:
        self.lengths = np.array([len(f) for f in features], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        flat = np.concatenate([np.asarray(f, dtype=np.float32) for f in features])
        self.flat = torch.from_numpy(flat).to(device)

    def gather(self, clips: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """(B, K, D) features of frames ``idx`` (B, K) of ``clips`` (B,)."""
        flat_idx = torch.from_numpy(self.offsets[clips][:, None] + idx).to(self.flat.device)
        return self.flat[flat_idx]


def _check_features(features: list[np.ndarray]) -> int:
    if not isinstance(features, (list, tuple)) or not features:
        raise TrainDataError("features must be a non-empty list of per-clip (T, D) arrays")
    dims = set()
    for i, f in enumerate(features):
        f = np.asarray(f)
        if f.ndim != 2 or len(f) == 0:
            raise TrainDataError(f"clip {i}: features must be (T >= 1, D), got shape {f.shape}")
        if not np.issubdtype(f.dtype, np.floating):
            raise TrainDataError(f"clip {i}: features must be floating point, got {f.dtype}")
        dims.add(f.shape[1])
    if len(dims) != 1:
        raise TrainDataError(f"all clips must share one feature width, got {sorted(dims)}")
    return dims.pop()


def _head_logits(
    head: nn.Module, store: _FlatFeatures, clips: np.ndarray, k: int, batch: int = 512
) -> np.ndarray:
    head.eval()
    idx = segment_centres(store.lengths[clips], k)
    out = []
    with torch.inference_mode(), autocast(store.flat.device):
        for start in range(0, len(clips), batch):
            sel = slice(start, start + batch)
            out.append(head(store.gather(clips[sel], idx[sel])).float().cpu().numpy())
    return np.concatenate(out)


def _fit_head(
    head: nn.Module,
    params: list[nn.Parameter],
    store: _FlatFeatures,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    n_classes: int,
    sampling: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
    cfg: TrainConfig,
    rng: np.random.Generator,
    history: dict[str, Any],
    phase: str,
    progress: ProgressFn | None,
    frozen_body: bool = False,
) -> EarlyStopper:
    """One training phase of a head; restores the phase's best weights before returning."""
    device = store.flat.device
    steps = -(-len(train_idx) // cfg.batch_size)
    opt, sched = make_optimizer(params, cfg, epochs, steps)
    stopper = EarlyStopper(head, cfg.patience)
    frames = np.asarray(cfg.train_frames)
    for epoch in range(1, epochs + 1):
        # cRT: the representation is fixed, so the body runs in eval mode (no dropout).
        head.train(not frozen_body)
        order = train_idx[
            draw_epoch(sampling, labels[train_idx], n_classes, epoch - 1, epochs, rng)
        ]
        losses = []
        for clips in batches(order, cfg.batch_size):
            k = int(rng.choice(frames))
            x = store.gather(clips, segment_random(store.lengths[clips], k, rng))
            y = torch.from_numpy(labels[clips]).to(device)
            with autocast(device):
                loss = loss_fn(head(x), y)
            losses.append(optimizer_step(opt, sched, loss))
        metrics = validate(
            lambda clips: _head_logits(head, store, clips, cfg.eval_frames), labels, val_idx
        )
        stop = record_epoch(history, epoch, float(np.mean(losses)), metrics, stopper, phase)
        if progress is not None:
            progress(epoch, epochs, {"phase": phase, **last_metrics(history, stopper)})
        if stop:
            break
    stopper.restore()
    return stopper


def train_head(
    features: list[np.ndarray],
    labels: np.ndarray,
    n_classes: int,
    head: str = "gru",
    rebalancing: str = "instance-balanced",
    cfg: TrainConfig | None = None,
    progress: ProgressFn | None = None,
    head_kwargs: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train temporal head ``head`` on frozen per-frame features.

    ``features[i]`` is clip i's (T_i, D) features. Each epoch draws its samples with the
    sampling of the ``rebalancing`` recipe and optimises its loss; every batch uses one K
    from ``cfg.train_frames`` and segment-random frames. ``decoupled-crt``: phase 1 as
    above (instance-balanced, CE), phase 2 re-initialises ``head.classifier`` and trains
    only it with class-balanced sampling for ``cfg.crt_epochs``. Early stopping on
    validation UAR in each phase. Returns the head (CPU, eval mode) and a history dict
    (per-epoch lists with a ``phase`` entry each, plus a summary of the last phase).
    """
    cfg = cfg or TrainConfig()
    recipe = get_rebalancing(rebalancing)
    if head not in HEADS:
        build_head(head, 1, 2)  # raises the registry's clear error
    d_in = _check_features(features)
    labels = check_labels(labels, len(features), n_classes)
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    history: dict[str, Any] = {
        "epoch": [], "phase": [], "train_loss": [], "val_uar": [], "val_acc": [],
        "val_loss": [], "head": head, "rebalancing": rebalancing,
    }  # fmt: skip

    with seeded(cfg.seed, device):
        rng = np.random.default_rng(cfg.seed)
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
        store = _FlatFeatures(list(features), device)
        model = build_head(head, d_in, n_classes, **(head_kwargs or {})).to(device)
        counts = class_counts(labels[train_idx], n_classes)
        common = dict(
            store=store, labels=labels, train_idx=train_idx, val_idx=val_idx,
            n_classes=n_classes, cfg=cfg, rng=rng, history=history, progress=progress,
        )  # fmt: skip
        stopper = _fit_head(
            model,
            list(model.parameters()),
            sampling=recipe.sampling,
            loss_fn=make_loss(recipe.loss, counts, recipe.params),
            epochs=cfg.epochs,
            phase="train",
            **common,
        )
        if recipe.decoupled:
            history["phase1_best_val_uar"] = stopper.best
            model.classifier.reset_parameters()
            for p in model.parameters():
                p.requires_grad_(False)
            for p in model.classifier.parameters():
                p.requires_grad_(True)
            stopper = _fit_head(
                model,
                list(model.classifier.parameters()),
                sampling=recipe.crt_sampling,
                loss_fn=make_loss("ce", counts),
                epochs=cfg.crt_epochs,
                phase="crt",
                frozen_body=True,
                **common,
            )
            model.requires_grad_(True)

    history.update(run_summary(stopper, history, started, train_idx, val_idx))
    return model.cpu().eval(), history


def predict_head(
    head: nn.Module,
    feats: list[np.ndarray],
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Logits (B, C) float32 of ``head`` for clips given as (K_i, D) features; clips of equal
    length are batched together (no padding), results come back in input order."""
    from emobench.models.device import run_with_oom_backoff

    dev = resolve_device(device)
    head.to(dev).eval()
    n_classes = head.classifier.out_features
    if len(feats) == 0:
        return np.zeros((0, n_classes), dtype=np.float32)
    _check_features(feats)
    lengths = np.array([len(f) for f in feats])

    def run(bs: int) -> np.ndarray:
        out = np.zeros((len(feats), n_classes), dtype=np.float32)
        with torch.inference_mode(), autocast(dev):
            for length in np.unique(lengths):
                members = np.flatnonzero(lengths == length)
                for start in range(0, len(members), bs):
                    sel = members[start : start + bs]
                    x = torch.from_numpy(np.stack([feats[i] for i in sel]).astype(np.float32))
                    out[sel] = head(x.to(dev)).float().cpu().numpy()
        return out

    return run_with_oom_backoff(run, max(1, int(batch_size)))


def train_probe(
    features: list[np.ndarray],
    labels: np.ndarray,
    n_classes: int,
    rebalancing: str = "instance-balanced",
    cfg: TrainConfig | None = None,
    progress: ProgressFn | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Linear probe on frozen per-frame features: the ``mean`` head with no hidden layer
    (LayerNorm → temporal mean → linear), trained by :func:`train_head` with the named
    re-balancing recipe (``decoupled-crt`` re-trains the linear layer class-balanced)."""
    return train_head(
        features,
        labels,
        n_classes,
        "mean",
        rebalancing,
        cfg,
        progress=progress,
        head_kwargs={"hidden": 0, "dropout": 0.0, "spread": False},
    )


__all__ = [
    "ProgressFn",
    "TrainConfig",
    "TrainConfigError",
    "TrainDataError",
    "predict_head",
    "stratified_split",
    "train_head",
    "train_probe",
    "uar",
]
