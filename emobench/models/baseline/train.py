"""Training the vision-only baselines on in-memory arrays: a frame encoder end to end, then
temporal heads on frozen per-frame features, with the re-balancing recipes of
``emobench.longtail.rebalance``; plus prediction and safetensors save/load.

Protocol (recorded here because the study publishes none):

* A stratified validation split (``val_fraction`` of each class, at least one clip of every
  class with ≥ 2 clips) is carved from the *training* clips the caller passes; the trainer
  never sees test clips. Early stopping watches validation UAR (mean per-class recall, the
  usual DFER metric and the one that does not reward head-class collapse) and restores the
  best weights.
* TSN-style sampling: every training sample is K frames, one at a random position inside
  each of K equal segments of the clip. For heads K is drawn per batch from
  ``train_frames`` (default 4, 8, 16) so that one head serves the whole density sweep
  (2..64 frames at test time) instead of only the density it was trained at. Validation
  uses the segment centres at ``eval_frames``.
* The encoder learns its representation on the natural (instance-balanced) distribution, as
  in decoupled long-tail training (Kang et al. 2020); re-balancing acts on the heads.
* The encoder's training probe (``encoder_probe``): ``delta`` (default) is a linear
  read-out of the mean-pooled features *plus* a linear read-out of the mean change of the
  features since the clip's first sampled frame. With the plain mean-pool probe (``mean``)
  the CNN did not leave the class-prior plateau on the synth faces within a CPU budget
  (identity dominates absolute features, and many frames of a clip carry no expression);
  the change since the first frame cancels identity and gave val UAR ≈ 0.3-0.4 instead of
  chance at the same cost. The probe is discarded: the encoder stays per-frame.
* Augmentation for the encoder: small random translations (edge-replicated shift by up to
  ``crop_pad`` pixels) and optional brightness/contrast ``jitter`` (off by default: the
  encoder's per-frame input standardisation cancels it), the same for all frames of a
  clip. No horizontal flips: the contempt prototype is a one-sided action unit, so
  mirroring is not label-preserving.
* Determinism: ``seed`` seeds numpy and torch (inside ``torch.random.fork_rng``, so the
  caller's global RNG is untouched); on CPU the same seed gives bit-identical weights. On
  CUDA, cuDNN/atomics may differ in the last bits between runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from emobench.config import Seed, TrainSettings, describe_validation_error
from emobench.errors import EmobenchError
from emobench.longtail.rebalance import (
    class_counts,
    draw_epoch,
    get_rebalancing,
    make_loss,
)
from emobench.models.baseline.encoder import FrameEncoder, check_frames
from emobench.models.baseline.heads import HEADS, MeanHead, build_head
from emobench.models.device import autocast, resolve_device

#: ``progress(epoch, n_epochs, metrics)``: called after every epoch (1-based epoch).
ProgressFn = Callable[[int, int, dict[str, Any]], None]


class TrainConfigError(EmobenchError):
    """A training setting of the wrong type, out of range or unknown."""


class TrainDataError(EmobenchError):
    """Training inputs that do not fit together (shapes, lengths, label range)."""


class ModuleFileError(EmobenchError):
    """A saved module that cannot be read back (missing sidecar, unknown kind, bad weights)."""


class TrainConfig(TrainSettings):
    """Settings of one training run (encoder or head).

    ``batch_size`` counts clips; ``train_frames`` are the K values drawn per batch when
    training heads (see the module docstring); ``encoder_frames`` is the fixed K per clip
    when training the encoder (cost grows linearly with it); ``eval_frames`` is the K of
    validation. ``crt_epochs`` bounds the classifier re-training of ``decoupled-crt``.
    ``crop_pad`` (pixels) and ``jitter`` (relative) set the encoder augmentation;
    ``encoder_probe`` (``delta`` or ``mean``) the encoder's training read-out (module
    docstring).

    The settings, their types and ranges are :class:`emobench.config.TrainSettings` (the
    ``[train]`` table of a run config, checked at config load); ``seed`` and ``device``
    are the run's. A bad value is a :class:`TrainConfigError` naming the setting.
    """

    seed: Seed = 0
    device: str = "auto"

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


def segment_random(lengths: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """TSN sampling for a batch: (B,) clip lengths → (B, k) sorted int64 frame indices, one
    uniformly random frame in each of k equal segments.

    Same convention as ``emobench.video.sampling``'s ``segment-random:K`` (segment i is
    ``[i·n//k, (i+1)·n//k)``; an empty segment, when n < k, yields its start frame), but
    vectorised over a batch and drawing from the caller's ``rng`` stream.
    """
    n = np.asarray(lengths, dtype=np.int64)[:, None]
    bounds = (np.arange(k + 1, dtype=np.int64)[None, :] * n) // k
    start = bounds[:, :-1]
    width = np.maximum(bounds[:, 1:] - start, 1)
    return np.minimum(start + rng.integers(0, width), n - 1)


def segment_centres(lengths: np.ndarray, k: int) -> np.ndarray:
    """Deterministic counterpart: the centre frame ``((2i+1)·n) // (2k)`` of each segment
    (the ``uniform:K`` sampler of ``emobench.video.sampling``), for a batch of lengths."""
    n = np.asarray(lengths, dtype=np.int64)[:, None]
    i = np.arange(k, dtype=np.int64)[None, :]
    return np.minimum(((2 * i + 1) * n) // (2 * k), n - 1)


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
    """Unweighted average recall: mean over the classes present in ``y_true`` of recall."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _check_labels(labels: np.ndarray, n_items: int, n_classes: int) -> np.ndarray:
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
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch inside a forked RNG, so the caller's global RNG state is left untouched.

    ``torch.use_deterministic_algorithms`` is not switched on: importing it pulls in
    torch._inductor (≈3 s), and the CPU kernels used here are deterministic already (the
    tests check bit-identical weights for the same seed).
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class _EarlyStopper:
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


def _optimizer(
    params: Sequence[nn.Parameter], cfg: TrainConfig, epochs: int, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a cosine decay over the planned number of steps."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    return opt, sched


def _batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# --------------------------------------------------------------------------- encoder


def _shifted_frames(
    frames: list[np.ndarray],
    clips: np.ndarray,
    idx: np.ndarray,
    pad: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(B, K, H, W, 3) uint8 frames, each clip translated by one random offset in
    [-pad, pad]² with edge replication (index arithmetic on uint8: cheap)."""
    out = []
    for c, i in zip(clips, idx, strict=True):
        clip = frames[c]
        h, w = clip.shape[1:3]
        dy, dx = rng.integers(-pad, pad + 1, size=2)
        rows = np.clip(np.arange(h) + dy, 0, h - 1)
        cols = np.clip(np.arange(w) + dx, 0, w - 1)
        out.append(clip[i[:, None, None], rows[None, :, None], cols[None, None, :]])
    return np.stack(out)


def _photometric(
    x: torch.Tensor, b: int, k: int, jitter: float, rng: np.random.Generator
) -> torch.Tensor:
    """Per-clip brightness/contrast jitter on normalised (B·K, 3, H, W) input."""
    gain = torch.from_numpy(1.0 + rng.uniform(-jitter, jitter, b)).float().to(x.device)
    bias = torch.from_numpy(rng.uniform(-jitter, jitter, b) * 2.0).float().to(x.device)
    return x * gain.repeat_interleave(k).view(-1, 1, 1, 1) + bias.repeat_interleave(k).view(
        -1, 1, 1, 1
    )


def _gather_frames(frames: list[np.ndarray], clips: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B, K, H, W, 3) uint8 from clip ids and per-clip frame indices."""
    return np.stack([frames[c][i] for c, i in zip(clips, idx, strict=True)])


def _encoder_logits(
    encoder: nn.Module,
    probe: nn.Module,
    frames: list[np.ndarray],
    clips: np.ndarray,
    k: int,
    device: torch.device,
    frame_batch: int = 512,
) -> np.ndarray:
    """Eval-mode logits of encoder + probe for ``clips`` at k segment-centre frames."""
    encoder.eval()
    probe.eval()
    lengths = np.array([len(frames[c]) for c in clips])
    idx = segment_centres(lengths, k)
    per = max(1, frame_batch // k)
    out: list[np.ndarray] = []
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(clips), per):
            sel = slice(start, start + per)
            x = torch.from_numpy(_gather_frames(frames, clips[sel], idx[sel])).to(device)
            b = x.shape[0]
            feats = encoder(x.view(b * k, *x.shape[2:])).float().view(b, k, -1)
            out.append(probe(feats).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train_encoder(
    frames: list[np.ndarray],
    labels: np.ndarray,
    n_classes: int,
    cfg: TrainConfig | None = None,
    progress: ProgressFn | None = None,
    encoder: nn.Module | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a ``FrameEncoder`` end to end with a linear probe (``cfg.encoder_probe``).

    ``frames[i]`` is clip i's uint8 (T_i, H, W, 3) at encoder resolution, ``labels[i]`` its
    class index in ``[0, n_classes)``. Instance-balanced sampling (representation learning on
    the natural distribution), K = ``cfg.encoder_frames`` segment-random frames per clip,
    light augmentation, early stopping on validation UAR with the best weights restored.
    ``encoder`` picks the architecture (default: ``FrameEncoder()`` with ``side`` set to the
    frame size); its weights are re-initialised from ``cfg.seed`` so that the result depends
    on the seed only. Returns the encoder (CPU, eval mode) and a history dict.
    """
    cfg = cfg or TrainConfig()
    if not isinstance(frames, (list, tuple)):
        raise TrainDataError("frames must be a list of per-clip (T, H, W, 3) uint8 arrays")
    labels = _check_labels(labels, len(frames), n_classes)
    sizes = set()
    for i, clip in enumerate(frames):
        check_frames(clip, f"clip {i}")
        if len(clip) == 0:
            raise TrainDataError(f"clip {i} has no frames")
        sizes.add(clip.shape[1:3])
    if len(sizes) != 1:
        raise TrainDataError(f"all clips must share one frame size, got {sorted(sizes)}")
    (side_h, side_w) = sizes.pop()
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    history: dict[str, Any] = {
        "epoch": [], "train_loss": [], "val_uar": [], "val_acc": [], "val_loss": [],
    }  # fmt: skip
    k = cfg.encoder_frames

    with _seeded(cfg.seed, device):
        rng = np.random.default_rng(cfg.seed)
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
        if encoder is None:
            encoder = FrameEncoder(side=max(side_h, side_w))
        torch.manual_seed(cfg.seed)  # same weights whether or not the caller built it
        _reinit(encoder)
        encoder = encoder.to(device)
        if cfg.encoder_probe == "delta":
            probe = _DeltaProbe(encoder.out_dim, n_classes).to(device)
        else:
            probe = MeanHead(encoder.out_dim, n_classes, hidden=0, dropout=0.0).to(device)
        steps = -(-len(train_idx) // cfg.batch_size)
        opt, sched = _optimizer(
            [*encoder.parameters(), *probe.parameters()], cfg, cfg.epochs, steps
        )
        loss_fn = make_loss("ce", class_counts(labels[train_idx], n_classes))
        pair = nn.ModuleDict({"encoder": encoder, "probe": probe})
        stopper = _EarlyStopper(pair, cfg.patience)
        train_lengths = np.array([len(f) for f in frames])

        for epoch in range(1, cfg.epochs + 1):
            encoder.train()
            probe.train()
            order = train_idx[
                draw_epoch(
                    "instance-balanced", labels[train_idx], n_classes, epoch - 1, cfg.epochs, rng
                )
            ]
            losses = []
            for clips in _batches(order, cfg.batch_size):
                b = len(clips)
                idx = segment_random(train_lengths[clips], k, rng)
                if cfg.crop_pad > 0:
                    batch = _shifted_frames(frames, clips, idx, cfg.crop_pad, rng)
                else:
                    batch = _gather_frames(frames, clips, idx)
                x = torch.from_numpy(batch).to(device)
                x = FrameEncoder.to_input(x.view(b * k, *x.shape[2:]))
                if cfg.jitter > 0:
                    x = _photometric(x, b, k, cfg.jitter, rng)
                y = torch.from_numpy(labels[clips]).to(device)
                with autocast(device):
                    feats = encoder(x).float().view(b, k, -1)
                    loss = loss_fn(probe(feats), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            metrics = _validate(
                lambda clips: _encoder_logits(
                    encoder, probe, frames, clips, cfg.eval_frames, device
                ),
                labels,
                val_idx,
            )
            stop = _record(history, epoch, float(np.mean(losses)), metrics, stopper)
            if progress is not None:
                progress(epoch, cfg.epochs, {"phase": "encoder", **_last(history, stopper)})
            if stop:
                break
        stopper.restore()

    history.update(_summary(stopper, history, started, train_idx, val_idx))
    return encoder.cpu().eval(), history


class _DeltaProbe(nn.Module):
    """Encoder-training probe: with z_t = LayerNorm(f_t), a linear read-out of mean_t z_t
    plus one of mean_t (z_t − z_0), the change since the first sampled frame (identity
    cancels in the difference; a static clip gives ≈ 0)."""

    def __init__(self, d: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, n_classes)
        self.delta = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x)
        base = self.classifier(z.mean(1))
        if z.shape[1] < 2:
            return base
        return base + self.delta((z[:, 1:] - z[:, :1]).mean(1))


def _reinit(module: nn.Module) -> None:
    """Re-initialise every sub-module that knows how (seeded by the caller's RNG state)."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


def _validate(
    logits_fn: Callable[[np.ndarray], np.ndarray], labels: np.ndarray, val_idx: np.ndarray
) -> dict[str, float]:
    if len(val_idx) == 0:
        return {"val_uar": float("nan"), "val_acc": float("nan"), "val_loss": float("nan")}
    logits = logits_fn(val_idx).astype(np.float64)
    pred = logits.argmax(1)
    y = labels[val_idx]
    # class-balanced CE: mean over classes of the mean per-clip CE (consistent with UAR)
    shifted = logits - logits.max(1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(y)), y]
    balanced = float(np.mean([nll[y == c].mean() for c in np.unique(y)]))
    return {"val_uar": uar(y, pred), "val_acc": float(np.mean(pred == y)), "val_loss": balanced}


def _record(
    history: dict[str, Any],
    epoch: int,
    loss: float,
    metrics: dict[str, float],
    stopper: _EarlyStopper,
    phase: str | None = None,
) -> bool:
    history["epoch"].append(epoch)
    history["train_loss"].append(loss)
    history["val_uar"].append(metrics["val_uar"])
    history["val_acc"].append(metrics["val_acc"])
    history["val_loss"].append(metrics["val_loss"])
    if phase is not None:
        history["phase"].append(phase)
    return stopper.update(epoch, metrics["val_uar"], metrics["val_loss"])


def _last(history: dict[str, Any], stopper: _EarlyStopper) -> dict[str, Any]:
    return {
        "loss": history["train_loss"][-1],
        "val_uar": history["val_uar"][-1],
        "val_acc": history["val_acc"][-1],
        "val_loss": history["val_loss"][-1],
        "best_val_uar": stopper.best,
    }


def _summary(
    stopper: _EarlyStopper,
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
) -> _EarlyStopper:
    """One training phase of a head; restores the phase's best weights before returning."""
    device = store.flat.device
    steps = -(-len(train_idx) // cfg.batch_size)
    opt, sched = _optimizer(params, cfg, epochs, steps)
    stopper = _EarlyStopper(head, cfg.patience)
    frames = np.asarray(cfg.train_frames)
    for epoch in range(1, epochs + 1):
        # cRT: the representation is fixed, so the body runs in eval mode (no dropout).
        head.train(not frozen_body)
        order = train_idx[
            draw_epoch(sampling, labels[train_idx], n_classes, epoch - 1, epochs, rng)
        ]
        losses = []
        for clips in _batches(order, cfg.batch_size):
            k = int(rng.choice(frames))
            x = store.gather(clips, segment_random(store.lengths[clips], k, rng))
            y = torch.from_numpy(labels[clips]).to(device)
            with autocast(device):
                loss = loss_fn(head(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        metrics = _validate(
            lambda clips: _head_logits(head, store, clips, cfg.eval_frames), labels, val_idx
        )
        stop = _record(history, epoch, float(np.mean(losses)), metrics, stopper, phase)
        if progress is not None:
            progress(epoch, epochs, {"phase": phase, **_last(history, stopper)})
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
    labels = _check_labels(labels, len(features), n_classes)
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    history: dict[str, Any] = {
        "epoch": [], "phase": [], "train_loss": [], "val_uar": [], "val_acc": [],
        "val_loss": [], "head": head, "rebalancing": rebalancing,
    }  # fmt: skip

    with _seeded(cfg.seed, device):
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

    history.update(_summary(stopper, history, started, train_idx, val_idx))
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


# --------------------------------------------------------------------------- save / load

_FORMAT = "emobench-module/1"


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a weights file: ``x.safetensors`` → ``x.json``."""
    return Path(path).with_suffix(".json")


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_module(module: nn.Module, path: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Write ``module``'s weights to ``path`` (safetensors) and ``<stem>.json`` with its
    architecture (``module.spec``) and the caller's ``config``. Atomic; no pickle."""
    from safetensors.torch import save_file

    spec = getattr(module, "spec", None)
    if not isinstance(spec, dict):
        raise ModuleFileError(f"{path}: only emobench encoders and heads can be saved")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    meta = {"format": _FORMAT, "module": spec, "config": config or {}}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": _FORMAT}))

    def write_json(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")

    _atomic_write(sidecar_path(path), write_json)
    return path


def read_module_config(path: str | Path) -> dict[str, Any]:
    """The sidecar of a saved module: ``{"format", "module": spec, "config": ...}``."""
    side = sidecar_path(path)
    if not side.is_file():
        raise ModuleFileError(f"{path}: sidecar {side} not found")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ModuleFileError(f"{side}: not valid JSON ({exc})") from None
    if meta.get("format") != _FORMAT or "module" not in meta:
        raise ModuleFileError(f"{side}: not an emobench module sidecar ({_FORMAT})")
    return meta


def load_module(path: str | Path) -> nn.Module:
    """Rebuild a module saved by ``save_module`` (CPU, eval mode). The sidecar's ``config``
    is attached as ``module.emobench_config``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModuleFileError(f"{path}: weights file not found")
    meta = read_module_config(path)
    spec = meta["module"]
    kwargs = dict(spec.get("kwargs", {}))
    if spec.get("kind") == "encoder" and spec.get("name") == "frame-cnn":
        module: nn.Module = FrameEncoder(**kwargs)
    elif spec.get("kind") == "head":
        module = build_head(spec.get("name", ""), **kwargs)
    else:
        raise ModuleFileError(f"{path}: unknown module kind {spec.get('kind')!r}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError for truncated files
        reason = " ".join(str(exc).split())
        raise ModuleFileError(f"{path}: unreadable weights ({reason})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except (RuntimeError, OSError) as exc:
        raise ModuleFileError(f"{path}: weights do not match {spec}: {exc}") from None
    module.emobench_config = meta.get("config", {})
    return module.eval()


def load_checkpoint(path: str | Path, warn: Callable[[str], None]) -> nn.Module | None:
    """A checkpoint written by :func:`save_module`, or None when there is none to reuse.

    A damaged checkpoint (truncated or empty weights, unreadable sidecar) is reported
    through ``warn`` in one line and removed, so the caller trains it again.
    """
    path = Path(path)
    if not path.exists() and not sidecar_path(path).exists():
        return None
    try:
        return load_module(path)
    except ModuleFileError as exc:
        warn(f"damaged checkpoint {path.name} ({exc}): removed, it is trained again")
        for p in (path, sidecar_path(path)):
            p.unlink(missing_ok=True)
        return None


__all__ = [
    "ModuleFileError",
    "ProgressFn",
    "TrainConfig",
    "TrainConfigError",
    "TrainDataError",
    "load_checkpoint",
    "load_module",
    "predict_head",
    "read_module_config",
    "save_module",
    "segment_centres",
    "segment_random",
    "sidecar_path",
    "stratified_split",
    "train_encoder",
    "train_head",
    "uar",
]
