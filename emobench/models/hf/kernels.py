"""Batched window attention for the Qwen-VL vision towers under sdpa (``pipeline = true``).

Without flash-attention, transformers' Qwen2-VL / Qwen2.5-VL vision attention runs one
``scaled_dot_product_attention`` call per chunk of ``cu_seqlens`` (per frame group in the
full-attention blocks, per window in the windowed ones): for a batch of 32 clips of 32
frames at 224 px that is thousands of tiny kernel launches per block, and the prefill is
launch-bound. The chunks of one size are independent attentions over equal lengths, so
:func:`batched_vision_attention` runs each run of consecutive equal-length chunks as *one*
sdpa call over a batch of chunks (the same attention function, the same inputs, stacked),
then restores the original layout. Installed per module instance for the duration of a
``with`` block only, so a model shared with a naive ``pipeline = false`` scorer is left as
transformers made it.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

#: (transformers module, class name) of the vision attention modules whose forward is replaced
VISION_ATTENTION = {
    ("modeling_qwen2_5_vl", "Qwen2_5_VLVisionAttention"),
    ("modeling_qwen2_vl", "VisionAttention"),
}


def _is_vision_attention(m: Any) -> bool:
    return (type(m).__module__.rsplit(".", 1)[-1], type(m).__name__) in VISION_ATTENTION


def equal_runs(lengths: list[int]) -> list[tuple[int, int, int]]:
    """``(first chunk, chunk count, chunk length)`` of each run of consecutive equal
    lengths, e.g. ``[4, 4, 2, 4] → [(0, 2, 4), (2, 1, 2), (3, 1, 4)]``."""
    runs: list[tuple[int, int, int]] = []
    for i, n in enumerate(lengths):
        if runs and runs[-1][2] == n and runs[-1][0] + runs[-1][1] == i:
            first, count, _ = runs[-1]
            runs[-1] = (first, count + 1, n)
        else:
            runs.append((i, 1, n))
    return runs


def _forward(
    self: Any,
    hidden_states: Any,
    cu_seqlens: Any,
    rotary_pos_emb: Any = None,
    position_embeddings: Any = None,
    **kwargs: Any,
) -> Any:
    """The vision attention's forward with equal-length chunks batched (module docstring)."""
    import torch
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    mod = __import__(type(self).__module__, fromlist=["apply_rotary_pos_emb_vision"])
    kwargs.pop("max_seqlen", None)
    seq = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3)
    q, k = mod.apply_rotary_pos_emb_vision(q, k, *position_embeddings)
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, None)
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    outs, start = [], 0
    for _, count, n in equal_runs(lengths):
        span = slice(start, start + count * n)
        # (count·n, heads, d) → (count, heads, n, d): one attention per chunk, batched
        qs, ks, vs = (
            t[span].reshape(count, n, self.num_heads, -1).transpose(1, 2) for t in (q, k, v)
        )
        out = attend(
            self,
            qs,
            ks,
            vs,
            attention_mask=None,
            scaling=self.scaling,
            dropout=0.0 if not self.training else self.attention_dropout,
            is_causal=False,
            **kwargs,
        )[0]  # (count, n, heads, d)
        outs.append(out.reshape(count * n, -1))
        start += count * n
    return self.proj(torch.cat(outs, 0).contiguous())


def supported(model: Any) -> bool:
    """Whether ``model`` has a Qwen-VL vision tower running under sdpa."""
    cfg = getattr(model, "config", None)
    vision = getattr(cfg, "vision_config", None)
    impl = getattr(vision, "_attn_implementation", None) or getattr(
        cfg, "_attn_implementation", None
    )
    return impl == "sdpa" and any(_is_vision_attention(m) for m in model.modules())


@contextlib.contextmanager
def batched_vision_attention(model: Any, enabled: bool = True) -> Iterator[int]:
    """Within the block, the Qwen-VL vision attention modules of ``model`` (under sdpa)
    batch their equal-length chunks; yields how many modules were patched (0: not a
    supported model, or ``enabled`` false)."""
    patched = []
    if enabled and supported(model):
        for m in model.modules():
            if _is_vision_attention(m) and "forward" not in vars(m):
                m.forward = types.MethodType(_forward, m)
                patched.append(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.forward
