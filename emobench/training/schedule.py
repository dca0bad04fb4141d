"""Optimisation schedules shared by the training loops beyond
:func:`emobench.training.loop.make_optimizer`'s cosine: linear warm-up then cosine
(:func:`warmup_cosine`), and AdamW parameter groups with layer-wise learning-rate decay
(:func:`param_groups`, depths from :func:`layer_ids`)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

#: a transformer block's parameters: ``<backbone>.encoder.layer.<i>.`` (VideoMAE,
#: TimeSformer, V-JEPA 2) or ``<backbone>.layers.<i>.`` (ViViT)
_BLOCK = re.compile(r"(?:encoder\.)?layers?\.(\d+)\.")
#: the backbone's embeddings: ``<backbone>.embeddings.`` or ``<backbone>.encoder.embeddings.``
_EMBEDDINGS = re.compile(r"(?:encoder\.)?embeddings\.")
#: parameters without weight decay besides biases and norms (ViT fine-tuning practice)
_NO_DECAY = ("cls_token", "position_embeddings", "time_embeddings", "mask_token", "region_tokens")


def warmup_cosine(
    opt: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Step ``t`` uses ``lr · (t + 1) / warmup`` for ``t < warmup``, then
    ``lr · ½(1 + cos(π (t − warmup) / (total − warmup)))``: linear warm-up, cosine decay."""
    import math

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (t - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def layer_ids(net: nn.Module) -> dict[str, int]:
    """Depth of every parameter of a VideoClassifier for layer-wise lr decay: 0 for the
    backbone's embeddings, ``i + 1`` for its block ``i``, ``L + 1`` for everything after
    the ``L`` blocks (final norm, pooler, classifier); a network's own ``layer_ids()`` wins."""
    if callable(getattr(net, "layer_ids", None)):  # e.g. maedfer:'s LGI-Former
        return net.layer_ids()
    hf = net.hf
    prefix = f"hf.{hf.base_model_prefix}."
    n = int(getattr(hf.config, "num_hidden_layers", 0))
    out = {}
    for name, _ in net.named_parameters():
        depth = n + 1
        if name.startswith(prefix):  # (V-JEPA 2's unused predictor counts as the top)
            rest = name[len(prefix) :]
            block = _BLOCK.match(rest)
            if block is not None:
                depth = int(block.group(1)) + 1
            elif _EMBEDDINGS.match(rest):
                depth = 0
        out[name] = min(depth, n + 1)
    return out


def param_groups(
    net: nn.Module, lr: float, layer_decay: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups: learning rate ``lr · layer_decay^(L + 1 − depth)``
    (:func:`layer_ids`), no weight decay for biases, norms, tokens and position
    embeddings."""
    depth = layer_ids(net)
    top = max(depth.values(), default=0)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        no_wd = p.ndim <= 1 or name.endswith(_NO_DECAY)
        group = groups.setdefault(
            (depth[name], no_wd),
            {"params": [], "lr": lr * layer_decay ** (top - depth[name]),
             "weight_decay": 0.0 if no_wd else weight_decay},
        )  # fmt: skip
        group["params"].append(p)
    return [groups[k] for k in sorted(groups)]
