"""Fine-tuning an ``hfvideo:`` classifier on one fold, with emobench's re-balancing recipes.

Protocol (the shared parts are :mod:`emobench.training.loop`'s; the schedule and layer-wise
learning rates :mod:`emobench.training.schedule`'s):

* A stratified validation split (``[train] val_fraction``) is carved from the fold's
  training clips; early stopping watches validation UAR and restores the best weights.
* Every training sample is ``num_frames`` TSN segment-random frames of the whole clip
  (:func:`~emobench.video.sampling.segment_random`, new frames every epoch); validation
  uses the segment centres. The model's frame count is fixed, so what varies between
  samples is *which* frames, as in MAE-DFER / HiCMAE fine-tuning.
* Re-balancing (:func:`~emobench.longtail.rebalance.get_rebalancing`): each epoch's clips
  are drawn with the recipe's sampling (:func:`draw_epoch`) and scored with its loss
  (:func:`make_loss`). ``decoupled-crt`` (Kang et al. 2020) fine-tunes instance-balanced,
  then re-initialises the classifier and re-trains only it, class-balanced, on the frozen
  network's pooled features (computed once per clip at the segment centres, eval mode: the
  representation no longer changes, so re-computing it every epoch would only add cost).
* AdamW with a cosine schedule (:func:`make_optimizer`; optional linear warm-up:
  :func:`warmup_cosine`), optional layer-wise learning-rate
  decay (:func:`param_groups`), no weight decay on biases, norms and embeddings tokens;
  no augmentation beyond the TSN frame draws (no flips: some expressions are one-sided);
  ``grad_accum`` forward passes of
  ``batch_size`` clips per optimizer step; bf16 autocast on CUDA (fp32 master weights).
* Determinism: numpy and torch are seeded from the run's seed inside a forked RNG
  (:func:`seeded`); on CPU the same seed gives bit-identical weights.

Frames come from a :class:`ClipStore`: the training clips are decoded once and kept in
memory when they fit in ``preload_max_gb`` (a few hundred synth or CASME clips), else each
batch decodes its own clips (DFEW at 224 px is ~100 GB of frames: it cannot be held;
``[cache] frames = true`` then keeps decoded clips on disk between epochs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from emobench.longtail.rebalance import class_counts, draw_epoch, get_rebalancing, make_loss
from emobench.models.device import autocast, resolve_device, run_with_oom_backoff
from emobench.models.hfvideo.loading import HFVideoError
from emobench.training.loop import (
    EarlyStopper,
    ProgressFn,
    TrainConfig,
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
from emobench.training.schedule import layer_ids, param_groups, warmup_cosine  # noqa: F401
from emobench.video.sampling import segment_centres, segment_random

#: Optimizer steps taken in this process, per phase (tests check that a reused checkpoint
#: trains nothing; benchmarks count steps).
OPTIMIZER_STEPS = {"finetune": 0, "classifier": 0}

#: (rows) → (uint8 frames of every decoded clip, their row positions)
LoadFn = Callable[[pl.DataFrame], tuple[list[np.ndarray], list[int]]]


@dataclass(frozen=True)
class FinetuneSettings:
    """The family's own training settings (the rest is the run's :class:`TrainConfig`)."""

    num_frames: int
    batch_size: int = 4
    grad_accum: int = 1
    #: learning rate of the whole-network phase
    lr: float = 5e-5
    epochs: int = 20
    #: bf16 autocast on CUDA
    autocast: bool = True
    #: layer-wise learning-rate decay (1: off; MAE-DFER / VideoMAE fine-tune with 0.75)
    layer_decay: float = 1.0
    #: epochs of linear learning-rate warm-up before the cosine decay
    warmup_epochs: int = 0


@contextlib.contextmanager
def maybe_autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """bf16 autocast on CUDA when ``enabled`` (:func:`emobench.models.device.autocast`)."""
    if enabled:
        with autocast(device):
            yield
    else:
        yield


class ClipStore:
    """The frames of a fold's training clips, by row position (module docstring).

    ``preload``: decode every clip once now and keep it; else decode per :meth:`get` call.
    Clips that fail to decode are left out (the engine counts and reports them) and never
    asked for again.
    """

    def __init__(self, rows: pl.DataFrame, load: LoadFn, preload: bool) -> None:
        self.rows = rows
        self.load = load
        self.preload = preload
        self.frames: dict[int, np.ndarray] = {}
        self.failed: set[int] = set()
        self.decoded = 0
        if preload:
            self._decode(np.arange(rows.height))

    def _decode(self, positions: np.ndarray) -> dict[int, np.ndarray]:
        want = [int(p) for p in dict.fromkeys(positions.tolist()) if int(p) not in self.failed]
        if not want:
            return {}
        frames, kept = self.load(self.rows[want])
        got = {want[k]: f for k, f in zip(kept, frames, strict=True)}
        self.failed.update(p for p in want if p not in got)
        self.decoded += len(got)
        if self.preload:
            self.frames.update(got)
        return got

    def check(self, positions: np.ndarray, chunk: int = 32) -> np.ndarray:
        """Decode ``positions`` a chunk at a time (frames not kept when streaming) and
        return those that decode: a streaming store learns its validation clips' failures
        before training, so validation UAR is over the same clips every epoch."""
        for start in range(0, len(positions), chunk):
            if not self.preload:
                self._decode(np.asarray(positions[start : start + chunk]))
        return np.array([p for p in positions if int(p) not in self.failed], np.int64)

    def usable(self) -> np.ndarray:
        """Positions that are not known to fail (all of them when streaming)."""
        return np.array([p for p in range(self.rows.height) if p not in self.failed], np.int64)

    def get(self, positions: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Frames of ``positions`` (repeats allowed) that decode, and those positions."""
        have = self.frames if self.preload else self._decode(np.asarray(positions))
        kept = np.array([p for p in positions if int(p) in have], dtype=np.int64)
        return [have[int(p)] for p in kept], kept


def run_batches(
    net: nn.Module,
    clips: list[np.ndarray],
    batch_size: int,
    device: torch.device,
    use_autocast: bool,
    features: bool = False,
) -> np.ndarray:
    """Logits (or pooled features) float32 ``(N, ·)`` of equal-length uint8 clips, in
    inference mode, in batches (halved on CUDA out-of-memory)."""
    net.eval()
    if not clips:
        dim = net.classifier.in_features if features else net.classifier.out_features
        return np.zeros((0, dim), np.float32)

    def run(bs: int) -> np.ndarray:
        out = []
        with torch.inference_mode(), maybe_autocast(device, use_autocast):
            for start in range(0, len(clips), bs):
                x = torch.from_numpy(np.stack(clips[start : start + bs])).to(device)
                y = net.features(x) if features else net(x)
                out.append(y.float().cpu().numpy())
        return np.concatenate(out)

    return run_with_oom_backoff(run, max(1, batch_size))


def centre_clips(frames: list[np.ndarray], num_frames: int) -> list[np.ndarray]:
    """Each clip's ``num_frames`` segment-centre frames (the validation view)."""
    return [f[segment_centres(len(f), num_frames)] for f in frames]


def store_outputs(
    net: nn.Module,
    store: ClipStore,
    positions: np.ndarray,
    s: FinetuneSettings,
    device: torch.device,
    features: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment-centre logits (or features) of store clips, a chunk at a time so that
    streaming never holds more than one chunk's frames; (outputs, kept positions)."""
    outs, kept_all = [], []
    chunk = max(s.batch_size, 32)
    for start in range(0, len(positions), chunk):
        frames, kept = store.get(positions[start : start + chunk])
        clips = centre_clips(frames, s.num_frames)
        outs.append(run_batches(net, clips, s.batch_size, device, s.autocast, features))
        kept_all.append(kept)
    if not outs:
        dim = net.classifier.in_features if features else net.classifier.out_features
        return np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outs), np.concatenate(kept_all)


def _val_logits(
    net: nn.Module, store: ClipStore, s: FinetuneSettings, device: torch.device
) -> Callable[[np.ndarray], np.ndarray]:
    def logits(val_idx: np.ndarray) -> np.ndarray:
        out, kept = store_outputs(net, store, val_idx, s, device)
        # (safety net: a validation clip that stopped decoding scores zeros)
        full = np.zeros((len(val_idx), net.classifier.out_features), np.float32)
        where = {int(p): i for i, p in enumerate(kept)}
        for i, p in enumerate(val_idx):
            if int(p) in where:
                full[i] = out[where[int(p)]]
        return full

    return logits


def _finetune_phase(
    net: nn.Module,
    store: ClipStore,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    n_classes: int,
    sampling: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    s: FinetuneSettings,
    rng: np.random.Generator,
    history: dict[str, Any],
    progress: ProgressFn | None,
) -> EarlyStopper:
    """Whole-network training with TSN sampling; restores the best weights."""
    device = next(net.parameters()).device
    per_step = s.batch_size * s.grad_accum
    steps = -(-len(train_idx) // per_step)
    groups = param_groups(net, s.lr, s.layer_decay, cfg.weight_decay)
    opt, sched = make_optimizer(groups, cfg.model_copy(update={"lr": s.lr}), s.epochs, steps)
    if s.warmup_epochs > 0:
        sched = warmup_cosine(opt, min(s.warmup_epochs, s.epochs) * steps, s.epochs * steps)
    stopper = EarlyStopper(net, cfg.patience)
    for epoch in range(1, s.epochs + 1):
        order = train_idx[
            draw_epoch(sampling, labels[train_idx], n_classes, epoch - 1, s.epochs, rng)
        ]
        losses = []
        for step in batches(order, per_step):
            net.train()
            opt.zero_grad(set_to_none=True)
            total, seen = 0.0, 0
            for micro in batches(step, s.batch_size):
                frames, kept = store.get(micro)
                if not frames:
                    continue
                idx = segment_random(np.array([len(f) for f in frames]), s.num_frames, rng)
                x = torch.from_numpy(np.stack([f[i] for f, i in zip(frames, idx, strict=True)]))
                y = torch.from_numpy(labels[kept]).to(device)
                with maybe_autocast(device, s.autocast):
                    logits = net(x.to(device))
                loss = loss_fn(logits, y)
                # the step's loss is the mean over its clips, whatever the micro-batches
                (loss * (len(kept) / len(step))).backward()
                total += float(loss.detach()) * len(kept)
                seen += len(kept)
            if seen == 0:
                continue
            opt.step()
            sched.step()
            OPTIMIZER_STEPS["finetune"] += 1
            losses.append(total / seen)
        metrics = validate(_val_logits(net, store, s, device), labels, val_idx)
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        stop = record_epoch(history, epoch, mean_loss, metrics, stopper, "finetune")
        if progress is not None:
            progress(epoch, s.epochs, {"phase": "finetune", **last_metrics(history, stopper)})
        if stop:
            break
    stopper.restore()
    return stopper


def retrain_classifier(
    net: nn.Module,
    store: ClipStore,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    n_classes: int,
    sampling: str,
    cfg: TrainConfig,
    s: FinetuneSettings,
    history: dict[str, Any],
    progress: ProgressFn | None = None,
) -> EarlyStopper:
    """cRT: re-initialise ``net.classifier`` and train only it with ``sampling`` and plain
    CE on the frozen network's pooled features (``[train] lr``, ``crt_epochs``, batches of
    ``[train] batch_size``); the rest of ``net`` is untouched. Restores the best head."""
    device = next(net.parameters()).device
    positions = np.concatenate([train_idx, val_idx])
    feats, kept = store_outputs(net, store, positions, s, device, features=True)
    n_tr = int(np.isin(kept, train_idx).sum())
    tr_local = np.arange(n_tr)  # train positions come first in ``positions``
    va_local = np.arange(n_tr, len(kept))
    y = labels[kept]
    x = torch.from_numpy(feats).float().to(device)
    head = net.classifier
    head.reset_parameters()
    net.requires_grad_(False)
    head.requires_grad_(True)
    rng = np.random.default_rng(cfg.seed + 1)
    counts = class_counts(y[tr_local], n_classes)
    loss_fn = make_loss("ce", counts)
    steps = -(-n_tr // cfg.batch_size)
    opt, sched = make_optimizer(list(head.parameters()), cfg, cfg.crt_epochs, steps)
    stopper = EarlyStopper(head, cfg.patience)
    yt = torch.from_numpy(y).to(device)

    def head_logits(v: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return head(x[torch.from_numpy(v).to(device)]).float().cpu().numpy()

    try:
        for epoch in range(1, cfg.crt_epochs + 1):
            order = tr_local[
                draw_epoch(sampling, y[tr_local], n_classes, epoch - 1, cfg.crt_epochs, rng)
            ]
            losses = []
            for b in batches(order, cfg.batch_size):
                sel = torch.from_numpy(b).to(device)
                losses.append(optimizer_step(opt, sched, loss_fn(head(x[sel]), yt[sel])))
                OPTIMIZER_STEPS["classifier"] += 1
            metrics = validate(head_logits, y, va_local)
            stop = record_epoch(history, epoch, float(np.mean(losses)), metrics, stopper, "crt")
            if progress is not None:
                progress(epoch, cfg.crt_epochs, {"phase": "crt", **last_metrics(history, stopper)})
            if stop:
                break
        stopper.restore()
    finally:
        net.requires_grad_(True)
    return stopper


@contextlib.contextmanager
def _out_of_memory_is_one_line(s: FinetuneSettings) -> Iterator[None]:
    """A GPU out-of-memory error while training becomes one line saying what to change
    (prediction halves its batch instead: :func:`run_batches`)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        pass
    else:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise HFVideoError(
        f"out of GPU memory fine-tuning with batches of {s.batch_size} clips × "
        f"{s.num_frames} frames: lower options.batch_size (and raise options.grad_accum "
        "to keep the effective batch)"
    )


def finetune(
    net: nn.Module,
    store: ClipStore,
    labels: np.ndarray,
    n_classes: int,
    rebalancing: str,
    cfg: TrainConfig,
    s: FinetuneSettings,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Fine-tune ``net`` (a :class:`~emobench.models.hfvideo.loading.VideoClassifier`) on
    the store's clips (``labels[i]``: class index of row ``i``) with the named re-balancing
    recipe (module docstring); ``net`` ends on the CPU in eval mode with the best weights.
    Returns the history: per-epoch ``train_loss``/``val_*``/``phase`` lists and a summary
    (``best_epoch``, ``best_val_uar``, ``epochs_run``, ``phase1_best_val_uar`` for cRT)."""
    recipe = get_rebalancing(rebalancing)
    labels = check_labels(labels, store.rows.height, n_classes)
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    history: dict[str, Any] = {
        "epoch": [], "train_loss": [], "val_uar": [], "val_acc": [], "val_loss": [], "phase": [],
    }  # fmt: skip
    with seeded(cfg.seed, device), _out_of_memory_is_one_line(s):
        rng = np.random.default_rng(cfg.seed)
        usable = store.usable()
        tr, va = stratified_split(labels[usable], cfg.val_fraction, cfg.seed)
        train_idx, val_idx = usable[tr], store.check(usable[va])
        counts = class_counts(labels[train_idx], n_classes)
        net.to(device)
        stopper = _finetune_phase(
            net,
            store,
            labels,
            train_idx,
            val_idx,
            n_classes,
            recipe.sampling,
            make_loss(recipe.loss, counts, recipe.params),
            cfg,
            s,
            rng,
            history,
            progress,
        )
        if recipe.decoupled:
            history["phase1_best_val_uar"] = stopper.best
            history["phase1_best_epoch"] = stopper.best_epoch
            stopper = retrain_classifier(
                net, store, labels, train_idx, val_idx, n_classes, recipe.crt_sampling,
                cfg, s, history, progress,
            )  # fmt: skip
    history.update(run_summary(stopper, history, started, train_idx, val_idx))
    history["decoded_clips"] = store.decoded
    net.cpu().eval()
    return history


__all__ = [
    "OPTIMIZER_STEPS",
    "ClipStore",
    "FinetuneSettings",
    "centre_clips",
    "finetune",
    "layer_ids",
    "param_groups",
    "retrain_classifier",
    "warmup_cosine",
    "run_batches",
    "store_outputs",
]
