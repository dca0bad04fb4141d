"""Stage 1 of the pre-training: the tiny CLIP's image embedding distilled into the vision
tower and merger (the teacher, the loss and the loop)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import PretrainError
from emobench.models.openclip.weights import (
    SHIPPED,
    WEIGHTS_DIR,
    load_openclip,
    pixel_normalisation,
)
from emobench.pretrain.synth_vlm.config import PretrainConfig
from emobench.pretrain.synth_vlm.corpus import Corpus
from emobench.progress import ProgressFn


def _pooled(merged: Any, grid_thw: Any) -> Any:
    """Mean of each visual item's merged tokens: ``(items, hidden)`` from the vision
    tower's ``pooler_output`` (tokens of all items, in order) and its ``grid_thw``."""
    import torch

    sizes = (grid_thw.prod(-1) // 4).tolist()
    return torch.stack([t.mean(0) for t in torch.split(merged, sizes)])


class Teacher:
    """The tiny CLIP (``openclip:emobench-tiny@synth-web`` or ``weights``) as a frozen
    image encoder: L2-normalised embeddings of uint8 faces, preprocessed as the
    ``openclip:`` family does (resize to its image size, CLIP mean / std)."""

    def __init__(self, weights: str | None = None) -> None:
        path = weights or str(WEIGHTS_DIR / SHIPPED[("emobench-tiny", "synth-web")])
        if not Path(path).is_file():
            raise PretrainError(f"distillation teacher {path}: no such file")
        self.model, _ = load_openclip("emobench-tiny", path)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.size, self.mean, self.std = pixel_normalisation(self.model, 64)
        #: embedding width
        self.dim = int(self.embed(np.zeros((1, self.size, self.size, 3), np.uint8)).shape[1])

    def embed(self, faces: np.ndarray) -> Any:
        """``(n, embed_dim)`` unit embeddings of uint8 faces ``(n, H, W, 3)``."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size,) * 2, mode="bilinear", antialias=True)
        with torch.no_grad():
            return F.normalize(self.model.encode_image((x - self.mean) / self.std), dim=-1)


def distill_loss(student: Any, teacher: Any, group: int) -> Any:
    """Cosine distance between student and teacher embeddings plus the squared error of
    the same embeddings centred per identity group (rows ``[k·group, (k+1)·group)``
    show one identity), relative to the teacher's centred energy.

    The first term alone is matched within a few dozen steps by copying what every face
    shares (identity, lighting) and leaves the expression directions, a small part of
    the teacher's variance, unlearnt (a probe on the student stayed at chance); the
    centred term is the expression part alone."""
    import torch.nn.functional as F

    s = F.normalize(student, dim=-1)
    cos = (1.0 - (s * teacher).sum(-1)).mean()
    sc = s.view(-1, group, s.shape[-1])
    tc = teacher.view(-1, group, teacher.shape[-1])
    sc = sc - sc.mean(1, keepdim=True)
    tc = tc - tc.mean(1, keepdim=True)
    rel = ((sc - tc) ** 2).sum(-1).mean() / (tc**2).sum(-1).mean().clamp(min=1e-8)
    return cos + rel


def distill_vision(
    model: Any,
    processor: Any,
    corpus: Corpus,
    cfg: PretrainConfig,
    progress: ProgressFn | None = None,
) -> dict[str, list[float]]:
    """Stage 1: the vision tower and merger learn the tiny CLIP's image embedding (through
    a linear map of their mean-pooled outputs, discarded afterwards) on still web faces,
    ``distill_groups`` identities × ``distill_group`` expressions per step
    (:meth:`Corpus.still_group`), loss :func:`distill_loss`. The LM is untouched.

    This is how real VLMs get their eyes: Qwen-VL's and LLaVA's vision towers start from
    CLIP-style encoders pre-trained on web captions, so the tiny CLIP's word-frequency
    skew comes along. A from-scratch tower trained by the LM's answer loss (the first
    shipped model) or by a classifier on caption words learnt identities, not
    expressions (probe UAR 0.16–0.18 on the quickstart, chance 0.14)."""
    import torch

    teacher = Teacher(cfg.teacher or None)
    visual = model.model.visual
    head = torch.nn.Linear(cfg.arch.hidden_size, teacher.dim)
    params = list(visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.distill_lr, betas=(0.9, 0.98), weight_decay=0.01)
    hist: dict[str, list[float]] = {"step": [], "loss": []}
    run: list[float] = []
    k = 0
    for step in range(cfg.distill_steps):
        faces: list[np.ndarray] = []
        for _ in range(cfg.distill_groups):
            group, _ = corpus.still_group(k, cfg.distill_group)
            k += 1
            faces += group
        target = teacher.embed(np.stack(faces))
        px = processor.image_processor(images=faces, return_tensors="pt")
        out = visual(px["pixel_values"], grid_thw=px["image_grid_thw"])
        loss = distill_loss(
            head(_pooled(out.pooler_output, px["image_grid_thw"])), target, cfg.distill_group
        )
        t = (step + 1) / cfg.distill_steps  # warm-up over 10%, cosine to 0
        for g in opt.param_groups:
            g["lr"] = cfg.distill_lr * min(1.0, 10 * t) * 0.5 * (1 + math.cos(math.pi * t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        run.append(float(loss.detach()))
        if (step + 1) % 10 == 0 or step + 1 == cfg.distill_steps:
            hist["step"].append(step + 1)
            hist["loss"].append(float(np.mean(run)))
            run = []
            if progress is not None:
                progress(
                    step + 1, cfg.distill_steps, {"phase": "distill", "loss": hist["loss"][-1]}
                )
    return hist


__all__ = ["Teacher", "distill_loss", "distill_vision"]
