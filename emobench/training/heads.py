"""Temporal heads (and linear probes) on frozen per-frame features, trained by the shared
epoch loop parts of :mod:`emobench.training.loop` with the re-balancing recipes of
:mod:`emobench.longtail.rebalance`, and head prediction.

The head module is passed in (``build(d_in, n_classes)`` makes it): this module names no
model family. :func:`train_probe` is the linear probe every family with frozen features
uses (the ``mean`` head of :mod:`emobench.training.temporal_heads` with no hidden layer);
the baseline family's named heads are :mod:`emobench.models.baseline.train`'s
``train_head``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from emobench.longtail.rebalance import class_counts, draw_epoch, get_rebalancing, make_loss
from emobench.models.device import autocast, resolve_device, run_with_oom_backoff
from emobench.progress import ProgressFn
from emobench.training.loop import (
    EarlyStopper,
    TrainConfig,
    TrainDataError,
    batches,
    check_labels,
    last_metrics,
    make_optimizer,
    optimizer_step,
    record_epoch,
    run_summary,
    seeded,
    stratified_split,
    validate,
)
from emobench.training.temporal_heads import build_head
from emobench.video.sampling import segment_centres, segment_random

#: ``build(d_in, n_classes)`` → the head module to train
HeadFactory = Callable[[int, int], nn.Module]


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
    build: HeadFactory,
    head: str,
    rebalancing: str = "instance-balanced",
    cfg: TrainConfig | None = None,
    progress: ProgressFn | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the head ``build(d_in, n_classes)`` makes (recorded as ``head``) on frozen
    per-frame features.

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
        model = build(d_in, n_classes).to(device)
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
    re-balancing recipe (``decoupled-crt`` re-trains the linear layer class-balanced). An
    unknown recipe is one clear error before anything is built."""
    get_rebalancing(rebalancing)
    kw = {"hidden": 0, "dropout": 0.0, "spread": False}

    def build(d_in: int, n: int) -> nn.Module:
        return build_head("mean", d_in, n, **kw)

    return train_head(features, labels, n_classes, build, "mean", rebalancing, cfg, progress)


def predict_head(
    head: nn.Module,
    feats: list[np.ndarray],
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Logits (B, C) float32 of ``head`` for clips given as (K_i, D) features; clips of equal
    length are batched together (no padding), results come back in input order."""
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
