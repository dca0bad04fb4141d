"""Training ``emobench-tiny`` on the web pool: identity-grouped batches, open_clip's
contrastive loss with AdamW and cosine decay (CPU, seeded), and the float16 weights file."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import PretrainError
from emobench.models.openclip.adapter import register_configs
from emobench.models.weights_file import save_safetensors
from emobench.pretrain.synth_web.config import ARCH, PretrainConfig
from emobench.pretrain.synth_web.webpool import WEB_STREAM
from emobench.progress import ProgressFn


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = (
            p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
            or "logit_scale" in name or "embedding" in name or "class_embedding" in name
        )  # fmt: skip
        (no_decay if exclude else decay).append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def batch_indices(cfg: PretrainConfig, rng: np.random.Generator) -> np.ndarray:
    """One batch of pair indices: ``batch_size // per_identity`` random identities with
    ``per_identity`` of their images each (images are stored identity by identity).

    Several faces of one person per batch make hair, clothes and background useless for
    telling those pairs apart, so the contrastive loss has to use the expression (and its
    caption words) rather than only the easier identity attributes.
    """
    k = cfg.images_per_identity
    per = min(cfg.per_identity, k)
    n_ids = max(1, cfg.batch_size // per)
    ids = rng.choice(cfg.n_identities, size=min(n_ids, cfg.n_identities), replace=False)
    picks = np.stack([rng.choice(k, size=per, replace=False) for _ in ids])
    return np.sort((ids[:, None] * k + picks).ravel())


def train_clip(
    images: np.ndarray,
    captions: list[str],
    cfg: PretrainConfig,
    progress: ProgressFn | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Contrastive training of a fresh ``emobench-tiny`` on (image, caption) pairs (CPU).

    Batches come from :func:`batch_indices` (seeded), several faces per identity each.
    Returns the model (eval mode) and a history (loss every 10 steps, seconds).
    """
    import open_clip
    import torch

    if len(images) != len(captions) or len(images) != cfg.n_images:
        raise PretrainError(
            f"need n_identities × images_per_identity = {cfg.n_images} pairs, got "
            f"{len(images)} images and {len(captions)} captions"
        )
    register_configs()
    started = time.perf_counter()
    history: dict[str, Any] = {"step": [], "loss": [], "logit_scale": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng([WEB_STREAM, 2, cfg.seed])
        model = open_clip.create_model(ARCH, pretrained=None)
        model.train()
        tokenizer = open_clip.get_tokenizer(ARCH)
        tokens = tokenizer(captions)
        pcfg = model.visual.preprocess_cfg
        mean = torch.tensor(pcfg["mean"]).view(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(pcfg["std"]).view(1, 3, 1, 1) * 255.0)
        loss_fn = open_clip.ClipLoss()
        opt = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6
        )

        def lr_at(step: int) -> float:
            if step < cfg.warmup:
                return cfg.lr * (step + 1) / cfg.warmup
            t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
            return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * t))

        running = []
        for step in range(cfg.steps):
            idx = batch_indices(cfg, rng)
            x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float()
            x = (x - mean) * inv_std
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            img_f, txt_f, scale = model(x, tokens[idx])
            loss = loss_fn(img_f, txt_f, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running.append(float(loss.detach()))
            if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
                history["step"].append(step + 1)
                history["loss"].append(float(np.mean(running)))
                history["logit_scale"].append(float(model.logit_scale.detach().exp()))
                running = []
                if progress is not None:
                    progress(step + 1, cfg.steps, {"phase": "train", "loss": history["loss"][-1]})
    history["seconds"] = time.perf_counter() - started
    return model.eval(), history


def save_weights(model: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as float16 safetensors (open_clip can load it back with
    ``pretrained=path``; values are cast to the model's dtype on load)."""
    import torch

    tensors = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    return save_safetensors(tensors, path, metadata)


__all__ = ["batch_indices", "save_weights", "train_clip"]
