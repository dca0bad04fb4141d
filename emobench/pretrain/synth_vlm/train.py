"""Stage 2 of the pre-training and the run around both stages: tokenizer, processor and
model built for the recipe, the vision distillation (:mod:`.distill`), then the language
model trained on the corpus's answers (AdamW, warm-up, cosine; CPU, seeded)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from emobench.pretrain.synth_vlm.batches import encode_batch
from emobench.pretrain.synth_vlm.build import build_model, build_processor, train_tokenizer
from emobench.pretrain.synth_vlm.config import PretrainConfig
from emobench.pretrain.synth_vlm.corpus import Corpus, Example
from emobench.pretrain.synth_vlm.distill import distill_vision
from emobench.progress import ProgressFn


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: decayed matrices, and norms, biases and
    embeddings without weight decay."""
    groups: dict[bool, list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "embed_tokens" in name or "bias" in name
        groups.setdefault(not skip, []).append(p)
    return [
        {"params": ps, "weight_decay": weight_decay if decay else 0.0}
        for decay, ps in sorted(groups.items())
    ]


def lr_at(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(t, 1.0)))


def train(cfg: PretrainConfig, progress: ProgressFn | None = None) -> tuple[Any, Any, dict]:
    """Tokenizer, processor and a trained model for ``cfg`` (CPU; module docstring).

    Returns ``(model, processor, history)``; ``history`` holds the mean loss per answer
    token every 10 steps (``step``, ``loss``), per kind (``loss_by_kind``: the last 100
    steps' mean per kind), the examples seen per kind and the seconds spent.
    """
    import torch

    started = time.perf_counter()
    corpus = Corpus(cfg.corpus)
    if progress is not None:
        progress(0, cfg.steps, {"phase": "tokenizer"})
    tokenizer = train_tokenizer(corpus.texts(cfg.tokenizer_examples), cfg.arch.vocab_size)
    processor = build_processor(tokenizer, cfg.arch)
    model = build_model(tokenizer, cfg.arch, cfg.seed)
    history: dict[str, Any] = {"step": [], "loss": [], "examples_per_kind": {}}
    recent: dict[str, list[float]] = {}
    seen: dict[str, int] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model.train()
        if cfg.distill_steps:
            history["distill"] = distill_vision(model, processor, corpus, cfg, progress)
        if not cfg.train_vision:
            model.model.visual.requires_grad_(False)
        opt = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8
        )
        running: list[float] = []
        for step in range(cfg.steps):
            first = step * cfg.batch_size
            batch = [corpus.example(first + j) for j in range(cfg.batch_size)]
            enc, _ = encode_batch(processor, batch)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            out = model(**enc)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            running.append(float(out.loss.detach()))
            if step >= cfg.steps - 100:
                _per_kind_loss(out.logits.detach(), enc["labels"], batch, recent)
            for ex in batch:
                seen[ex.kind] = seen.get(ex.kind, 0) + 1
            if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
                history["step"].append(step + 1)
                history["loss"].append(float(np.mean(running)))
                running = []
                if progress is not None:
                    progress(step + 1, cfg.steps, {"phase": "train", "loss": history["loss"][-1]})
        model.model.visual.requires_grad_(True)
    model.eval()
    history["loss_by_kind"] = {k: float(np.mean(v)) for k, v in sorted(recent.items())}
    history["examples_per_kind"] = dict(sorted(seen.items()))
    history["seconds"] = time.perf_counter() - started
    return model, processor, history


def _per_kind_loss(logits: Any, labels: Any, batch: list[Example], acc: dict) -> None:
    """Mean answer-token loss of each example, gathered by kind (for the card)."""
    import torch.nn.functional as F

    lg = logits[:, :-1].float()
    tg = labels[:, 1:]
    nll = F.cross_entropy(lg.transpose(1, 2), tg, ignore_index=-100, reduction="none")
    mask = (tg != -100).float()
    per = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
    for ex, v in zip(batch, per.tolist(), strict=True):
        acc.setdefault(ex.kind, []).append(v)


__all__ = ["lr_at", "train"]
