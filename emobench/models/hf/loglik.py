"""``scoring = "loglik"`` of the ``hf:`` family: every label's answer log-probability.

One prefill of the prompts, then one forward of all label continuations over the prefill's
KV cache repeated per label; 3-D rope models (Qwen-VL) get the positions their vision grids
imply. Equal to a direct per-label forward (tests/test_hf.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.models.hf.adapter import MODEL_CALLS

if TYPE_CHECKING:
    from emobench.models.hf.adapter import HFModel
    from emobench.models.hf.options import Request


@dataclass
class RopeState:
    """What the continuation of a prefill needs to place its positions: whether the model
    uses 3-D rope (Qwen-VL), the module holding its ``rope_deltas``, and the deltas known
    before the prefill (text-only prompts; else read from the module after it)."""

    mrope: bool
    inner: Any
    deltas: Any = None


def prefill_inputs(model: Any, enc: Any) -> tuple[dict[str, Any], RopeState]:
    """The prefill's keyword arguments for left-padded prompts ``enc``: positions count
    real tokens only (as generate does); a 3-D rope model derives them from its vision
    grids (its stale ``rope_deltas`` are cleared), or gets text positions when the prompts
    hold no image or video."""
    mask = enc["attention_mask"]
    inner = getattr(model, "model", None)
    rope = RopeState(inner is not None and hasattr(inner, "rope_deltas"), inner)
    kw = dict(enc)
    text_pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    if not rope.mrope:
        kw["position_ids"] = text_pos
    else:
        inner.rope_deltas = None
        if "image_grid_thw" not in enc and "video_grid_thw" not in enc:  # text only
            kw["position_ids"] = text_pos[None].expand(3, -1, -1)
            rope.deltas = mask.long().sum(-1, keepdim=True) - mask.shape[1]
    return kw, rope


def continuation_inputs(enc: Any, rope: RopeState, n_c: int, n_cont: int) -> tuple[Any, Any]:
    """The attention mask and positions of ``n_cont`` continuation tokens after the
    prefill of ``enc``, each prompt repeated ``n_c`` times (one per label): the prompt's
    mask extended by ones, positions continuing each prompt's own (3-D for rope models,
    shifted by the deltas the prefill set)."""
    import torch

    mask = enc["attention_mask"]
    dev = enc["input_ids"].device
    n_b = mask.shape[0]
    full_mask = torch.cat(
        [
            mask.repeat_interleave(n_c, 0),
            torch.ones((n_b * n_c, n_cont), dtype=mask.dtype, device=dev),
        ],
        dim=1,
    )
    if rope.mrope:
        p = enc["input_ids"].shape[1]
        text = torch.arange(p, p + n_cont, device=dev)[None, :]
        deltas = rope.deltas if rope.deltas is not None else rope.inner.rope_deltas
        pos = (text + deltas.to(dev).repeat_interleave(n_c, 0))[None].expand(3, -1, -1)
    else:
        start = mask.long().sum(-1).repeat_interleave(n_c, 0)[:, None]
        pos = start + torch.arange(n_cont, device=dev)[None, :]
    return full_mask, pos


def label_loglik(model: HFModel, reqs: list[Request]) -> list[dict[str, Any]]:
    """Sum (or mean) log-probability of every label's answer after each prompt: one
    prefill of the prompts, then one forward of all label continuations over the
    prefill's KV cache repeated per label."""
    import torch

    enc, stats = model.encode(reqs)
    answers = model.answer_ids()
    n_b, n_c = enc["input_ids"].shape[0], len(answers)
    lengths = torch.tensor([len(a) for a in answers], dtype=torch.float64)
    kw, rope = prefill_inputs(model._model, enc)
    cache_kw = model._cache_kw()
    with torch.inference_mode():
        out = model._model(**kw, use_cache=True, logits_to_keep=1)
        MODEL_CALLS["forward"] += 1
        model._stats["model_calls"] += 1
        first = out.logits[:, -1].float().log_softmax(-1).cpu()
        dev = first.new_tensor([a[0] for a in answers], dtype=torch.long)
        total = first[:, dev].double()  # (B, C)
        longest = max(len(a) for a in answers)
        if longest > 1:
            pad = 0
            ids = torch.full((n_c, longest - 1), pad, dtype=torch.long)
            tgt = torch.full((n_c, longest - 1), pad, dtype=torch.long)
            valid = torch.zeros((n_c, longest - 1), dtype=torch.bool)
            for c, a in enumerate(answers):
                ids[c, : len(a) - 1] = torch.tensor(a[:-1])
                tgt[c, : len(a) - 1] = torch.tensor(a[1:])
                valid[c, : len(a) - 1] = True
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            cache.batch_repeat_interleave(n_c)
            dev_ = enc["input_ids"].device
            full_mask, pos = continuation_inputs(enc, rope, n_c, longest - 1)
            out2 = model._model(
                input_ids=ids.to(dev_).repeat(n_b, 1),
                attention_mask=full_mask,
                position_ids=pos,
                use_cache=True,
                **{cache_kw: cache},
            )
            MODEL_CALLS["forward"] += 1
            lp = out2.logits.float().log_softmax(-1).cpu()
            got = lp.gather(-1, tgt.repeat(n_b, 1)[..., None])[..., 0]
            got = (got * valid.repeat(n_b, 1)).double().sum(-1).view(n_b, n_c)
            total = total + got
    if model.opts.length_norm:
        total = total / lengths[None, :]
    # an answer the model cannot produce (log-prob -inf, e.g. in bf16) stays finite in JSON
    rows = np.nan_to_num(total.numpy(), nan=-1e30, neginf=-1e30).tolist()
    return [{**s, "scores": [float(x) for x in r]} for s, r in zip(stats, rows, strict=True)]
