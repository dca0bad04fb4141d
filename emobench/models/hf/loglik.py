"""``scoring = "loglik"`` of the ``hf:`` family: every label's answer log-probability.

One prefill of the prompts, then one forward of all label continuations over the prefill's
KV cache repeated per label; 3-D rope models (Qwen-VL) get the positions their vision grids
imply. Equal to a direct per-label forward (tests/test_hf.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.models.hf.adapter import MODEL_CALLS

if TYPE_CHECKING:
    from emobench.models.hf.adapter import HFModel
    from emobench.models.hf.options import Request


def label_loglik(model: HFModel, reqs: list[Request]) -> list[dict[str, Any]]:
    """Sum (or mean) log-probability of every label's answer after each prompt: one
    prefill of the prompts, then one forward of all label continuations over the
    prefill's KV cache repeated per label."""
    import torch

    enc, stats = model.encode(reqs)
    answers = model.answer_ids()
    n_b, n_c = enc["input_ids"].shape[0], len(answers)
    lengths = torch.tensor([len(a) for a in answers], dtype=torch.float64)
    mask = enc["attention_mask"]
    inner = getattr(model._model, "model", None)
    mrope = inner is not None and hasattr(inner, "rope_deltas")
    kw = dict(enc)
    # left padding: positions count real tokens only (as generate does)
    text_pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    deltas = None
    if not mrope:
        kw["position_ids"] = text_pos
    else:  # 3-D rope (Qwen-VL): the model derives positions from the vision grids
        inner.rope_deltas = None
        if "image_grid_thw" not in enc and "video_grid_thw" not in enc:  # text only
            kw["position_ids"] = text_pos[None].expand(3, -1, -1)
            deltas = mask.long().sum(-1, keepdim=True) - mask.shape[1]
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
            n_cont = longest - 1
            full_mask = torch.cat(
                [
                    mask.repeat_interleave(n_c, 0),
                    torch.ones((n_b * n_c, n_cont), dtype=mask.dtype, device=dev_),
                ],
                dim=1,
            )
            p = enc["input_ids"].shape[1]
            if mrope:
                text = torch.arange(p, p + n_cont, device=dev_)[None, :]
                if deltas is None:
                    deltas = inner.rope_deltas
                rep = deltas.to(dev_).repeat_interleave(n_c, 0)
                pos = (text + rep)[None].expand(3, -1, -1)
            else:
                start = mask.long().sum(-1).repeat_interleave(n_c, 0)[:, None]
                pos = start + torch.arange(n_cont, device=dev_)[None, :]
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
