"""Training the baseline's frame encoder end to end on in-memory arrays.

The shared machinery (validation split, early stopping: :mod:`emobench.training.loop`;
heads on frozen features and prediction: :mod:`emobench.training.heads`) and saving and
loading (:mod:`emobench.training.checkpoint`) are the training room's; their names stay
importable from here (the linear probe, :func:`train_probe`, too). :func:`train_head`
trains a named temporal head (:mod:`emobench.training.temporal_heads`) through it.

Protocol of the encoder (the shared protocol is in :mod:`emobench.training.loop`):

* The encoder learns its representation on the natural (instance-balanced) distribution, as
  in decoupled long-tail training (Kang et al. 2020); re-balancing acts on the heads. Each
  clip is K = ``encoder_frames`` segment-random frames.
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
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from emobench.longtail.rebalance import class_counts, draw_epoch, get_rebalancing, make_loss
from emobench.models.baseline.encoder import FrameEncoder, check_frames
from emobench.models.device import autocast, resolve_device
from emobench.models.transfer import to_device
from emobench.training import heads as head_training
from emobench.training.checkpoint import (
    ModuleFileError,
    load_checkpoint,
    load_module,
    read_module_config,
    save_module,
    sidecar_path,
)
from emobench.training.heads import predict_head, train_probe
from emobench.training.loop import (
    EarlyStopper,
    ProgressFn,
    TrainConfig,
    TrainConfigError,
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
    uar,
    validate,
)
from emobench.training.temporal_heads import HEADS, MeanHead, build_head
from emobench.video.sampling import segment_centres, segment_random


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
            x = to_device(_gather_frames(frames, clips[sel], idx[sel]), device)
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
    labels = check_labels(labels, len(frames), n_classes)
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

    with seeded(cfg.seed, device):
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
            probe = MeanHead(encoder.out_dim, n_classes, hidden=0, dropout=0.0, spread=False)
            probe = probe.to(device)
        steps = -(-len(train_idx) // cfg.batch_size)
        opt, sched = make_optimizer(
            [*encoder.parameters(), *probe.parameters()], cfg, cfg.epochs, steps
        )
        loss_fn = make_loss("ce", class_counts(labels[train_idx], n_classes))
        pair = nn.ModuleDict({"encoder": encoder, "probe": probe})
        stopper = EarlyStopper(pair, cfg.patience)
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
            for clips in batches(order, cfg.batch_size):
                b = len(clips)
                idx = segment_random(train_lengths[clips], k, rng)
                if cfg.crop_pad > 0:
                    batch = _shifted_frames(frames, clips, idx, cfg.crop_pad, rng)
                else:
                    batch = _gather_frames(frames, clips, idx)
                x = to_device(batch, device)  # uint8; pinned, asynchronous on CUDA
                x = FrameEncoder.to_input(x.view(b * k, *x.shape[2:]))
                if cfg.jitter > 0:
                    x = _photometric(x, b, k, cfg.jitter, rng)
                y = torch.from_numpy(labels[clips]).to(device)
                with autocast(device):
                    feats = encoder(x).float().view(b, k, -1)
                    loss = loss_fn(probe(feats), y)
                losses.append(optimizer_step(opt, sched, loss))
            metrics = validate(
                lambda clips: _encoder_logits(
                    encoder, probe, frames, clips, cfg.eval_frames, device
                ),
                labels,
                val_idx,
            )
            stop = record_epoch(history, epoch, float(np.mean(losses)), metrics, stopper)
            if progress is not None:
                progress(epoch, cfg.epochs, {"phase": "encoder", **last_metrics(history, stopper)})
            if stop:
                break
        stopper.restore()

    history.update(run_summary(stopper, history, started, train_idx, val_idx))
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
    """Train the named temporal head (:data:`~emobench.training.temporal_heads.HEADS`) on
    frozen per-frame features: :func:`emobench.training.heads.train_head` (its docstring
    gives the protocol). An unknown recipe, then an unknown head, is one clear error."""
    get_rebalancing(rebalancing)
    if head not in HEADS:
        build_head(head, 1, 2)  # raises the registry's clear error
    kw = dict(head_kwargs or {})

    def build(d_in: int, n: int) -> nn.Module:
        return build_head(head, d_in, n, **kw)

    return head_training.train_head(
        features, labels, n_classes, build, head, rebalancing, cfg, progress
    )


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
    "train_probe",
    "uar",
]
