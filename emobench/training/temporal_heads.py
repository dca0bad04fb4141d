"""Temporal heads: per-frame features (B, T, D) → class logits (B, C).

Registry ``HEADS``: ``mean`` (order-agnostic pooling), ``gru`` (order-aware recurrent),
``transformer`` (order-aware self-attention with positional embeddings). All accept
variable T (2..64) through an optional ``lengths`` tensor (B,): frames at positions
≥ ``lengths[b]`` are padding and are ignored. Each head ends in ``.classifier``, a plain
``nn.Linear``: decoupled training (cRT) re-initialises and re-trains only that layer.

Identity-cancelling inputs (``delta`` / ``spread``, on by default). A frame's features
are dominated by *who* is in the clip (face shape, skin, hair, lighting); the expression
is a small change on top, and a micro-expression is a change in a few frames only. The
baseline's encoder is trained for exactly that signal (its training probe reads the change
since the clip's first sampled frame, :mod:`emobench.models.baseline.train`), but heads
that saw only absolute features had to re-learn the subtraction from ~1000 clips and did
not: on the quickstart the GRU predicted 51% of happiness clips as neutral (a smile is a
small change of the mouth corners next to large identity differences) and the mean head
averaged a 0.25–0.5 s flash away. So the order-aware heads also get each frame's change
since the sequence's first frame (:func:`with_delta`), and the mean head pools each
feature's range within the clip next to its mean (:func:`masked_range`): identity cancels
in both, a brief flash moves the range as much as a held expression, and the mean head
stays order-agnostic. ``delta=False`` / ``spread=False`` give the plain heads (a linear
probe, ``hidden=0``, pools the plain mean unless ``spread=True`` is asked for).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from emobench.errors import EmobenchError

#: Longest sequence a learned positional table covers.
MAX_FRAMES = 64
#: Version of the heads' architecture (2: identity-cancelling inputs on by default); part
#: of the baseline's head checkpoint recipe, so heads saved by older code are not reused.
HEAD_VERSION = 2


class UnknownHeadError(EmobenchError):
    """A head name that is not in ``HEADS``."""


def length_mask(
    lengths: torch.Tensor | None, batch: int, t: int, device: torch.device
) -> torch.Tensor:
    """(B, T) bool mask, True on real frames; all True when ``lengths`` is None."""
    if lengths is None:
        return torch.ones((batch, t), dtype=torch.bool, device=device)
    lengths = lengths.to(device)
    if lengths.min() < 1 or lengths.max() > t:
        raise ValueError(f"lengths must lie in [1, {t}], got {lengths.tolist()}")
    return torch.arange(t, device=device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, T, H) using only positions where ``mask`` (B, T) is True."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_range(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """max − min over dim 1 of (B, T, H) using only positions where ``mask`` is True: how
    far each feature moves within the clip (0 for a static clip or a single frame)."""
    valid = mask.unsqueeze(-1)
    hi = x.masked_fill(~valid, float("-inf")).amax(1)
    lo = x.masked_fill(~valid, float("inf")).amin(1)
    return hi - lo


def with_delta(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H) → (B, T, 2H): each frame's features and their change since the
    sequence's first frame (always a real frame: ``lengths`` ≥ 1)."""
    return torch.cat([x, x - x[:, :1]], dim=-1)


class _Head(nn.Module):
    """Shared bits: the registry name and constructor arguments (for saving)."""

    name = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._kwargs = kwargs

    @property
    def spec(self) -> dict[str, Any]:
        """Name and constructor arguments, stored next to saved weights."""
        return {"kind": "head", "name": self.name, "kwargs": dict(self._kwargs)}


class MeanHead(_Head):
    """Order-agnostic. ``spread`` (default when ``hidden`` > 0): LayerNorm, each feature's
    masked mean and range (max − min) over time, optional projection (``hidden`` > 0,
    Linear + GELU), dropout, linear classifier. ``spread=False``: LayerNorm, optional
    per-frame projection, masked average over time, dropout, linear classifier; with
    ``hidden=0`` that is exactly average pooling + linear (the linear probe)."""

    name = "mean"

    def __init__(
        self,
        d_in: int,
        n_classes: int,
        hidden: int = 128,
        dropout: float = 0.1,
        spread: bool | None = None,
    ):
        # None: on for the head (hidden > 0), off for a linear probe (hidden = 0), so that
        # probes saved before ``spread`` existed load as what they were
        spread = bool(hidden) if spread is None else bool(spread)
        super().__init__(
            d_in=d_in, n_classes=n_classes, hidden=hidden, dropout=dropout, spread=spread
        )
        self.spread = spread
        width = 2 * d_in if self.spread else d_in
        self.norm = nn.LayerNorm(d_in)
        self.proj = nn.Sequential(nn.Linear(width, hidden), nn.GELU()) if hidden else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden or width, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = length_mask(lengths, x.shape[0], x.shape[1], x.device)
        z = self.norm(x)
        if self.spread:
            pooled = self.proj(torch.cat([masked_mean(z, mask), masked_range(z, mask)], dim=-1))
        else:
            pooled = masked_mean(self.proj(z), mask)
        return self.classifier(self.drop(pooled))


class GRUHead(_Head):
    """Order-aware: LayerNorm, per frame the features and (``delta``, default) their change
    since the first frame, one unidirectional GRU layer, last valid hidden state, dropout,
    linear classifier. Padded batches go through ``pack_padded_sequence``."""

    name = "gru"

    def __init__(
        self,
        d_in: int,
        n_classes: int,
        hidden: int = 128,
        dropout: float = 0.1,
        delta: bool = True,
    ):
        super().__init__(
            d_in=d_in, n_classes=n_classes, hidden=hidden, dropout=dropout, delta=delta
        )
        self.delta = bool(delta)
        self.norm = nn.LayerNorm(d_in)
        self.gru = nn.GRU(2 * d_in if self.delta else d_in, hidden, num_layers=1, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if self.delta:
            x = with_delta(x)
        if lengths is not None and bool((lengths.to(x.device) != x.shape[1]).any()):
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, h = self.gru(packed)
        else:
            _, h = self.gru(x)
        return self.classifier(self.drop(h[-1]))


def sinusoid(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoidal embedding of (possibly fractional) positions (...,) → (..., dim)."""
    half = dim // 2
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=pos.device, dtype=torch.float32) / half
    )
    angle = pos.to(torch.float32).unsqueeze(-1) * freq
    emb = torch.cat([angle.sin(), angle.cos()], dim=-1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class TransformerHead(_Head):
    """Order-aware: LayerNorm, linear projection to ``d_model``, positional embedding, a
    2-layer pre-norm transformer encoder, CLS (or masked-mean) pooling, linear classifier.

    ``pos="sinusoidal"`` (default) embeds each frame's *relative* position in its clip,
    ``i / (T − 1) · (MAX_FRAMES − 1)``, so a model trained with 4, 8 and 16 frames sees
    consistent time stamps at any density; ``pos="learned"`` is a learned table indexed by
    frame rank (T ≤ MAX_FRAMES).
    """

    name = "transformer"

    def __init__(
        self,
        d_in: int,
        n_classes: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        ff: int = 128,
        dropout: float = 0.1,
        pos: str = "sinusoidal",
        pool: str = "cls",
        delta: bool = True,
    ):
        if pos not in ("sinusoidal", "learned"):
            raise ValueError(f"pos must be 'sinusoidal' or 'learned', got {pos!r}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        super().__init__(
            d_in=d_in, n_classes=n_classes, d_model=d_model, n_layers=n_layers,
            n_heads=n_heads, ff=ff, dropout=dropout, pos=pos, pool=pool, delta=delta,
        )  # fmt: skip
        self.pos, self.pool, self.delta = pos, pool, bool(delta)
        self.d_model = d_model
        self.norm = nn.LayerNorm(d_in)
        self.proj = nn.Linear(2 * d_in if self.delta else d_in, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.cls, std=0.02)
        if pos == "learned":
            self.pos_table = nn.Parameter(torch.zeros(1, MAX_FRAMES, d_model))
            nn.init.normal_(self.pos_table, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, n_classes)

    def _positions(self, mask: torch.Tensor) -> torch.Tensor:
        b, t = mask.shape
        if self.pos == "learned":
            if t > MAX_FRAMES:
                raise ValueError(f"learned positions cover at most {MAX_FRAMES} frames, got {t}")
            return self.pos_table[:, :t].expand(b, t, self.d_model)
        length = mask.sum(1, keepdim=True).to(torch.float32)
        rank = torch.arange(t, device=mask.device, dtype=torch.float32)[None, :]
        rel = rank / (length - 1.0).clamp_min(1.0) * (MAX_FRAMES - 1)
        return sinusoid(rel, self.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        mask = length_mask(lengths, b, t, x.device)
        z = self.norm(x)
        h = self.proj(with_delta(z) if self.delta else z) + self._positions(mask).to(x.dtype)
        h = torch.cat([self.cls.expand(b, 1, -1).to(h.dtype), h], dim=1)
        pad = torch.cat([torch.zeros((b, 1), dtype=torch.bool, device=x.device), ~mask], dim=1)
        h = self.encoder(h, src_key_padding_mask=pad)
        pooled = h[:, 0] if self.pool == "cls" else masked_mean(h[:, 1:], mask)
        return self.classifier(self.out_norm(pooled))


#: Temporal heads by name.
HEADS: dict[str, type[_Head]] = {
    MeanHead.name: MeanHead,
    GRUHead.name: GRUHead,
    TransformerHead.name: TransformerHead,
}


def build_head(name: str, d_in: int, n_classes: int, **kwargs: Any) -> nn.Module:
    """A fresh head ``name`` for ``d_in``-wide frame features and ``n_classes`` classes."""
    if name not in HEADS:
        raise UnknownHeadError(f"unknown temporal head {name!r}; allowed: {', '.join(HEADS)}")
    return HEADS[name](d_in=d_in, n_classes=n_classes, **kwargs)


__all__ = [
    "HEADS",
    "HEAD_VERSION",
    "MAX_FRAMES",
    "GRUHead",
    "MeanHead",
    "TransformerHead",
    "UnknownHeadError",
    "build_head",
    "length_mask",
    "masked_mean",
    "masked_range",
    "sinusoid",
    "with_delta",
]
