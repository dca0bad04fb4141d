"""Position ids of ``loglik``'s label continuations, exact for every architecture.

``scoring = "loglik"`` runs one prefill of the (left-padded) prompts, then one forward of
every label's answer tokens over the prefill's KV cache. The continuation of a row must
carry the positions the model would give those tokens if the row were alone: one past the
last position of the row's own prompt. For 1-D rope that is the row's real length; for
Qwen-style 3-D rope (Qwen2.5-VL, Qwen3-VL, Qwen2.5-Omni) it is one past the largest
position the vision grids gave the prompt, which transformers keeps as ``rope_deltas``
whose reference (padded or real length) differs between models and versions.

So nothing is derived from ``rope_deltas``: :func:`prefill_inputs` hooks the decoder so the
position ids the language model itself receives in the prefill are recorded
(:class:`PrefillState`), and :func:`continuation_inputs` continues each row from the
largest position among its real tokens. A model whose decoder received no position ids
(it counted them itself from 0) continues from its real length. The same code serves every
architecture; a scored clip no longer depends on the lengths of its batch neighbours
(tests/test_hf_arch.py, 1e-5).
"""

from __future__ import annotations

from typing import Any


def decoder_of(model: Any) -> Any:
    """The module that embeds positions: the model's language model (``get_decoder``)."""
    get = getattr(model, "get_decoder", None)
    try:
        dec = get() if callable(get) else None
    except (AttributeError, NotImplementedError):
        dec = None
    return dec if dec is not None else model


class PrefillState:
    """What the continuation of a prefill needs: the model, and the position ids its
    decoder received in the prefill (recorded once by a forward pre-hook that removes
    itself; None when the decoder received none)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.position_ids: Any = None
        self.seen = False
        self._handle = decoder_of(model).register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.position_ids = kwargs.get("position_ids")
        self.seen = True
        self.release()

    def release(self) -> None:
        """Remove the hook (done by the first decoder call; safe to repeat)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def mrope_dims(model: Any) -> int:
    """3 for a model with Qwen-style multimodal rope (its inner model keeps
    ``rope_deltas``), else 0."""
    inner = getattr(model, "model", None)
    return 3 if inner is not None and hasattr(inner, "rope_deltas") else 0


def next_positions(captured: Any, mask: Any) -> Any:
    """Per row, the first position after its prompt: one past the largest position among
    the row's real tokens in the prefill's ``captured`` ids ((B, L), (3, B, L) or
    (4, B, L): text positions first), or the row's real length when none were captured."""
    import torch

    real = mask.bool()
    if captured is None:
        return mask.long().sum(-1)
    pos = captured.to(mask.device).long()
    if pos.ndim == 2:
        pos = pos[None]
    pos = pos.expand(-1, real.shape[0], -1) if pos.shape[1] == 1 else pos
    masked = pos.masked_fill(~real[None], torch.iinfo(torch.long).min)
    return masked.amax(dim=(0, 2)) + 1


def continuation_positions(model: Any, start: Any, n_rows_each: int, n_cont: int) -> Any:
    """Position ids of ``n_cont`` continuation tokens, every prompt repeated
    ``n_rows_each`` times (one per label), counting from ``start`` (:func:`next_positions`);
    3-D (the same position on every axis, as text has) for multimodal-rope models."""
    import torch

    first = start.repeat_interleave(n_rows_each, 0)[:, None]
    pos = first + torch.arange(n_cont, device=first.device)[None, :]
    dims = mrope_dims(model)
    return pos[None].expand(dims, -1, -1) if dims else pos


def prefill_inputs(model: Any, enc: Any) -> tuple[dict[str, Any], PrefillState]:
    """Keyword arguments for the prefill of left-padded prompts ``enc``, and the state
    that records the positions it used (:class:`PrefillState`): 1-D rope models
    get positions that count real tokens only (as ``generate`` gives them); a multimodal-
    rope model derives its own from the vision grids (stale ``rope_deltas`` cleared), or
    gets the text positions when the prompts hold no image or video."""
    mask = enc["attention_mask"]
    kw = dict(enc)
    text_pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    if not mrope_dims(model):
        kw["position_ids"] = text_pos
    else:
        model.model.rope_deltas = None
        if not any(k in enc for k in ("image_grid_thw", "video_grid_thw")):
            kw["position_ids"] = text_pos[None].expand(3, -1, -1)
    return kw, PrefillState(model)


def continuation_inputs(enc: Any, state: PrefillState, n_c: int, n_cont: int) -> tuple[Any, Any]:
    """The attention mask and position ids of ``n_cont`` continuation tokens after the
    prefill of ``enc`` (run since :func:`prefill_inputs` gave ``state``), each prompt
    repeated ``n_c`` times (one per label): the prompt's mask extended by ones, positions
    continuing each row's own (:func:`next_positions`)."""
    import torch

    state.release()
    mask = enc["attention_mask"]
    n_b = mask.shape[0]
    ones = torch.ones((n_b * n_c, n_cont), dtype=mask.dtype, device=mask.device)
    full_mask = torch.cat([mask.repeat_interleave(n_c, 0), ones], dim=1)
    start = next_positions(state.position_ids, mask)
    return full_mask, continuation_positions(state.model, start, n_c, n_cont)
