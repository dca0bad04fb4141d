"""The LoRA fine-tuning loop of a generative VLM (the ``hf:`` family's ``finetune = "lora"``;
what is trained and on what: :mod:`emobench.models.hf.finetune`): one training phase per
call, micro-batches of ``finetune_batch_size`` clips with ``finetune_grad_accum`` of them per
optimizer step, early stopping on the validation UAR of the loglik scores over the
trainable tensors only. The model is any :class:`~emobench.models.hf.protocol.FineTunable`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from emobench.longtail import rebalance
from emobench.models.base import ClipInput, FitContext
from emobench.models.device import autocast, resolve_device
from emobench.models.hf.loglik import answer_logprobs, end_of_turn_id
from emobench.models.hf.lora import FineTuneError
from emobench.models.hf.protocol import FineTunable
from emobench.training.loop import (
    EarlyStopper,
    batches,
    make_optimizer,
    record_epoch,
    stratified_split,
    validate,
)
from emobench.video.sampling import segment_centres, segment_random

#: Optimizer steps taken in this process (tests check that a rerun takes none).
TRAIN_STEPS = {"optimizer": 0}


def _trainable_holder(params: dict[str, Any]) -> Any:
    """A module whose state dict is exactly ``params`` (the same tensors), so that
    :class:`EarlyStopper` copies and restores only the trainable tensors."""
    holder = nn.Module()
    holder.params = nn.ParameterList(list(params.values()))
    return holder


class _Trainer:
    """One fine-tuning run over the fold's training clips (see the module docstring)."""

    def __init__(self, hf: FineTunable, ctx: FitContext, cfg: Any) -> None:
        self.hf, self.ctx, self.cfg = hf, ctx, cfg
        self.device = resolve_device(ctx.device)
        rows = ctx.train_index.sort("clip_id")
        names = rows["label"].to_list()
        unknown = sorted({lb for lb in names if lb not in hf.labels})
        if unknown:
            raise FineTuneError(f"training clips with labels not in the label set: {unknown}")
        self.rows = rows
        self.y = np.array([hf.labels.index(lb) for lb in names], dtype=np.int64)
        if len(self.y) < 2:
            raise FineTuneError(f"need at least 2 training clips, got {len(self.y)}")
        self.train_idx, self.val_idx = stratified_split(self.y, cfg.val_fraction, cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.k = hf.opts.finetune_frames
        self.skipped: set[str] = set()
        self.history: dict[str, Any] = {
            "epoch": [], "train_loss": [], "val_uar": [], "val_acc": [], "val_loss": [],
            "phase": [], "steps": 0,
        }  # fmt: skip
        self._val_frames: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.torch = torch

    # ---------------------------------------------------------------- data

    def _decode(self, positions: np.ndarray) -> dict[int, np.ndarray]:
        """All frames of the clips at ``positions`` (unique), decoded via the engine."""
        uniq = np.unique(positions)
        frames, kept = self.ctx.load_frames(self.hf, self.rows[uniq.tolist()])
        out = {}
        kept_set = set()
        for arr, k in zip(frames, kept, strict=True):
            arr = np.asarray(arr)
            if arr.ndim == 4 and len(arr):
                out[int(uniq[k])] = arr
                kept_set.add(int(uniq[k]))
        for p in uniq:
            if int(p) not in kept_set:
                self.skipped.add(self.rows["clip_id"][int(p)])
        return out

    def _requests(
        self, positions: np.ndarray, frames: dict[int, tuple[np.ndarray, np.ndarray]]
    ) -> tuple[list[Any], np.ndarray]:
        """The evaluation's request for each clip at ``positions`` that has frames, and
        their class indices."""

        reqs, ys = [], []
        fps = self.rows["fps"].to_list()
        ids = self.rows["clip_id"].to_list()
        for p in positions:
            if int(p) not in frames:
                continue
            idx, arr = frames[int(p)]
            clip = ClipInput(clip_id=ids[p], frames=arr, indices=idx, fps=float(fps[p]))
            req, _ = self.hf._clip_request(clip)
            reqs.append(req)
            ys.append(self.y[p])
        return reqs, np.array(ys, dtype=np.int64)

    def _sampled(self, decoded: dict[int, np.ndarray], centres: bool) -> dict[int, Any]:
        """``(indices, frames)`` of K frames per clip: TSN segment-random, or the centres."""

        out = {}
        for p in sorted(decoded):
            arr = decoded[p]
            idx = (
                segment_centres(len(arr), self.k)
                if centres
                else segment_random(len(arr), self.k, self.rng)
            )
            out[p] = (np.asarray(idx, np.int64), arr[idx])
        return out

    # ---------------------------------------------------------------- validation

    def _prepare_val(self) -> None:
        """Decode the validation clips once (K segment centres each); a clip that fails to
        decode leaves the validation set (it is reported as skipped)."""
        if self._val_frames is None:
            self._val_frames = self._sampled(self._decode(self.val_idx), centres=True)
            have = [p for p in self.val_idx if int(p) in self._val_frames]
            self.val_idx = np.asarray(have, dtype=np.int64)

    def val_logits(self, positions: np.ndarray) -> np.ndarray:
        """Loglik scores of validation clips, by the scoring path itself."""
        self._prepare_val()
        assert self._val_frames is not None
        hf = self.hf
        hf._model.eval()
        out = np.full((len(positions), len(hf.labels)), -1e30)
        step = max(hf.opts.batch_size, 1)
        for s in range(0, len(positions), step):
            sel = positions[s : s + step]
            have = [i for i, p in enumerate(sel) if int(p) in self._val_frames]
            reqs, _ = self._requests(sel[have], self._val_frames)
            if reqs:
                scores = [e["scores"] for e in hf._loglik(reqs)]
                out[s + np.array(have)] = np.asarray(scores)
        return out

    # ---------------------------------------------------------------- one phase

    def phase(
        self,
        name: str,
        params: dict[str, Any],
        sampling: str,
        loss_fn: Any,
        epochs: int,
    ) -> Any:
        """One training phase (``train`` or ``crt``) of ``params``; restores the phase's
        best tensors by validation UAR. Out of GPU memory is one error line."""
        try:
            return self._phase(name, params, sampling, loss_fn, epochs)
        except self.torch.cuda.OutOfMemoryError:
            raise FineTuneError(
                f"hf:{self.hf.name}: out of GPU memory while fine-tuning {self.cfg.batch_size} "
                "clips per batch (lower finetune_batch_size and raise finetune_grad_accum, or "
                "lower finetune_frames / max_pixels)"
            ) from None

    def _phase(
        self,
        name: str,
        params: dict[str, Any],
        sampling: str,
        loss_fn: Any,
        epochs: int,
    ) -> Any:

        torch, hf, cfg = self.torch, self.hf, self.cfg
        self._prepare_val()
        accum = hf.opts.finetune_grad_accum
        n_micro = -(-len(self.train_idx) // cfg.batch_size)
        steps = max(1, -(-n_micro // accum))
        opt, sched = make_optimizer(list(params.values()), cfg, epochs, steps)
        stopper = EarlyStopper(_trainable_holder(params), cfg.patience)
        answers = hf.answer_ids()
        lengths = torch.tensor([len(a) for a in answers], dtype=torch.float32)
        eot = end_of_turn_id(hf._model, hf._processor)
        n_c = len(hf.labels)
        lm_w = float(hf.opts.finetune_lm_weight)
        for epoch in range(1, epochs + 1):
            hf._model.train()
            order = self.train_idx[
                rebalance.draw_epoch(
                    sampling, self.y[self.train_idx], n_c, epoch - 1, epochs, self.rng
                )
            ]
            losses: list[float] = []
            opt.zero_grad(set_to_none=True)
            pending = 0
            for clips in batches(order, cfg.batch_size):
                frames = self._sampled(self._decode(clips), centres=False)
                reqs, y = self._requests(clips, frames)
                if not reqs:
                    continue
                enc, _ = hf.encode(reqs)
                with autocast(self.device):
                    z, e = answer_logprobs(hf, enc, answers, eot)
                yt = torch.from_numpy(y).to(z.device)  # the logits' device (device_map)
                lz = z / lengths.to(z.device) if hf.opts.length_norm else z
                loss = loss_fn(lz, yt)
                if lm_w > 0:
                    rows = torch.arange(len(y), device=z.device)
                    nll = -(z[rows, yt] + e[rows, yt]) / (lengths.to(z.device)[yt] + 1)
                    loss = loss + lm_w * nll.mean()
                (loss / accum).backward()
                losses.append(float(loss.detach()))
                pending += 1
                if pending == accum:
                    self._step(opt, sched)
                    pending = 0
            if pending:
                self._step(opt, sched)
            if not losses:
                raise FineTuneError(
                    f"hf:{hf.name}: no training clip of this epoch could be decoded "
                    f"({len(self.skipped)} skipped)"
                )
            hf._model.eval()
            with torch.no_grad():
                metrics = validate(self.val_logits, self.y, self.val_idx)
            mean = float(np.mean(losses)) if losses else float("nan")
            stop = record_epoch(self.history, epoch, mean, metrics, stopper, name)
            self.ctx.progress(f"LoRA fine-tuning hf:{hf.name} ({name})", epoch, epochs)
            if stop:
                break
        stopper.restore()
        hf._model.eval()
        return stopper

    def _step(self, opt: Any, sched: Any) -> None:
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        TRAIN_STEPS["optimizer"] += 1
        self.history["steps"] += 1
