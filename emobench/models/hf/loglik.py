"""``scoring = "loglik"`` of the ``hf:`` family: every label's answer log-probability.

One prefill of the prompts, then one forward of all label continuations over the prefill's
KV cache repeated per label; the continuations carry the positions the model gave each
row's own prompt (:mod:`emobench.models.hf.positions`), so a clip's scores do not depend on
its batch. Equal to a direct per-label forward (tests/test_hf.py, tests/test_hf_arch.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.models.hf.lora import FineTuneError
from emobench.models.hf.options import MODEL_CALLS
from emobench.models.hf.positions import (  # noqa: F401  (PrefillState re-exported)
    PrefillState,
    continuation_inputs,
    prefill_inputs,
)

if TYPE_CHECKING:
    import torch

    from emobench.chat.request import Request
    from emobench.models.hf.protocol import ScoringModel as HFModel


def label_loglik(model: HFModel, reqs: list[Request]) -> list[dict[str, Any]]:
    """Sum (or mean) log-probability of every label's answer after each prompt: one
    prefill of the prompts, then one forward of all label continuations over the
    prefill's KV cache repeated per label."""
    import torch

    enc, stats = model.encode(reqs)
    answers = model.answer_ids()
    n_b, n_c = enc["input_ids"].shape[0], len(answers)
    lengths = torch.tensor([len(a) for a in answers], dtype=torch.float64)
    kw, state = prefill_inputs(model._model, enc)
    cache_kw = model._cache_kw()
    try:
        with torch.inference_mode():
            out = model._model(**kw, use_cache=True, logits_to_keep=1)
            MODEL_CALLS["forward"] += 1
            model._stats["model_calls"] += 1
            first = out.logits[:, -1].float().log_softmax(-1).cpu()
            idx = first.new_tensor([a[0] for a in answers], dtype=torch.long)
            total = first[:, idx].double()  # (B, C)
            longest = max(len(a) for a in answers)
            if longest > 1:
                ids = torch.zeros((n_c, longest - 1), dtype=torch.long)
                tgt = torch.zeros((n_c, longest - 1), dtype=torch.long)
                valid = torch.zeros((n_c, longest - 1), dtype=torch.bool)
                for c, a in enumerate(answers):
                    ids[c, : len(a) - 1] = torch.tensor(a[:-1])
                    tgt[c, : len(a) - 1] = torch.tensor(a[1:])
                    valid[c, : len(a) - 1] = True
                cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                cache.batch_repeat_interleave(n_c)
                dev = enc["input_ids"].device
                full_mask, pos = continuation_inputs(enc, state, n_c, longest - 1)
                cont = {"input_ids": ids.to(dev).repeat(n_b, 1)}
                cont.update(_continuation_extras(enc, n_c, longest - 1))
                out2 = model._model(
                    **cont,
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
    finally:
        state.release()
    if model.opts.length_norm:
        total = total / lengths[None, :]
    # an answer the model cannot produce (log-prob -inf, e.g. in bf16) stays finite in JSON
    rows = np.nan_to_num(total.numpy(), nan=-1e30, neginf=-1e30).tolist()
    return [{**s, "scores": [float(x) for x in r]} for s, r in zip(stats, rows, strict=True)]


def _continuation_extras(enc: Any, n_c: int, n_cont: int) -> dict[str, Any]:
    """Per-token side inputs some models need for text continuations: token type ids
    (Gemma 3's ``token_type_ids``, Qwen's ``mm_token_type_ids``), all text (0)."""
    import torch

    out = {}
    for key in ("token_type_ids", "mm_token_type_ids"):
        if key in enc:
            n_rows = enc[key].shape[0] * n_c
            out[key] = torch.zeros((n_rows, n_cont), dtype=enc[key].dtype, device=enc[key].device)
    return out


def answer_logprobs(
    hf: HFModel, enc: Any, answers: list[list[int]], eot: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(z, e)``, both ``(B, C)``: ``z`` the summed log-probability of each
    label's answer tokens after each prompt (what ``scoring = "loglik"`` computes), ``e`` the
    log-probability of the end-of-turn token right after that answer.

    As :func:`emobench.models.hf.loglik.label_loglik`: one prefill of the (left-padded)
    prompts, then one forward of every label's continuation over the prefill's KV cache
    repeated per label; here the continuation holds the whole answer, so that its last
    position predicts the end-of-turn token, and no inference mode is used."""
    import torch

    model = hf._model
    n_b, n_c = enc["input_ids"].shape[0], len(answers)
    kw, rope = prefill_inputs(model, enc)
    out = model(**kw, use_cache=True, logits_to_keep=1)
    dev = out.logits.device
    first = out.logits[:, -1].float().log_softmax(-1)
    z = first[:, torch.tensor([a[0] for a in answers], device=dev)]
    n_cont = max(len(a) for a in answers)
    ids = torch.zeros((n_c, n_cont), dtype=torch.long)
    tgt = torch.zeros((n_c, n_cont), dtype=torch.long)
    is_ans = torch.zeros((n_c, n_cont), dtype=torch.bool)
    is_eot = torch.zeros((n_c, n_cont), dtype=torch.bool)
    for c, a in enumerate(answers):
        ids[c, : len(a)] = torch.tensor(a)
        tgt[c, : len(a)] = torch.tensor([*a[1:], eot])
        is_ans[c, : len(a) - 1] = True
        is_eot[c, len(a) - 1] = True
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    cache.batch_repeat_interleave(n_c)
    dev_in = enc["input_ids"].device
    full_mask, pos = continuation_inputs(enc, rope, n_c, n_cont)
    out2 = model(
        input_ids=ids.to(dev_in).repeat(n_b, 1),
        attention_mask=full_mask,
        position_ids=pos,
        use_cache=True,
        **{hf._cache_kw(): cache},
    )
    lp = out2.logits.float().log_softmax(-1)
    got = lp.gather(-1, tgt.to(dev).repeat(n_b, 1)[..., None])[..., 0]
    z = z + (got * is_ans.to(dev).repeat(n_b, 1)).sum(-1).view(n_b, n_c)
    e = (got * is_eot.to(dev).repeat(n_b, 1)).sum(-1).view(n_b, n_c)
    return z, e


def end_of_turn_id(model: Any, processor: Any) -> int:
    """The token that ends the assistant's turn: the model's first ``eos_token_id``."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    if eos is None:
        eos = getattr(getattr(processor, "tokenizer", processor), "eos_token_id", None)
    if eos is None:
        raise FineTuneError("the model has no end-of-turn (eos) token to train towards")
    return int(eos)
