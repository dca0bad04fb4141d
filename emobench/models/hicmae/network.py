"""HiCMAE's fine-tuning network (Sun et al., Information Fusion 2024), written from the
description in the authors' ``modeling_finetune_av.py``, with the released key layout.

* **Video encoder** (``encoder.*``): tubelet embedding (Conv3d, ``tubelet × patch × patch``,
  stride = kernel) of ``(B, 3, T, H, W)`` clips, the fixed sinusoid table added, ``depth``
  pre-norm transformer blocks; *every* block's output goes through one shared final
  LayerNorm (``encoder.norm``), giving ``(B, N, L, D)``.
* **Audio encoder** (``encoder_audio.*``): the same over a log-mel spectrogram ``(B, 1,
  frames, mel bins)`` cut into ``patch × patch`` squares (Conv2d, time-major token order).
* **Hierarchical pooling**: each encoder's per-layer token means are mixed by a softmax over
  learned layer weights (``video_layer_weights`` / ``audio_layer_weights``).
* **Cross-modal fusion** (``encoder_fusion.*``): ``fusion_depth`` pairs of blocks that each
  first cross-attend to the other modality's tokens (the last encoder layer, after the
  final norm) and then self-attend; both streams update from the *previous* step's tokens.
* **Head**: ``fc_norm`` over ``[video, audio, fused video, fused audio]`` (``2 (D + D_a)``)
  and a linear layer.

Attention projections have no bias of their own; with ``qkv_bias`` the query and value
get learned biases (``q_bias``, ``v_bias``) and the key none, as released. LayerNorm eps
is 1e-6. Stochastic depth (``drop_path``) is active only in training.

``modality = "visual"`` keeps only the video encoder and its hierarchical pooling:
``fc_norm`` over ``D`` and a head over it. It is emobench's vision-only variant (the
authors released audio-visual heads only), so it needs fine-tuning, from the VoxCeleb2
pre-trained encoder or from an emobench fine-tune of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emobench.models.videovit import sinusoid_table

#: LayerNorm epsilon of the released models
LN_EPS = 1e-6


@dataclass(frozen=True)
class HiCMAEConfig:
    """The shape of a HiCMAE network (read from a checkpoint: :mod:`.checkpoint`)."""

    num_classes: int
    modality: str = "visual"  # "visual" | "audio-visual"
    dim: int = 512
    depth: int = 10
    heads: int = 8
    mlp_hidden: int = 2048
    image_size: int = 160
    patch_size: int = 16
    num_frames: int = 16
    tubelet: int = 2
    dim_audio: int = 512
    depth_audio: int = 10
    heads_audio: int = 8
    mlp_hidden_audio: int = 2048
    audio_frames: int = 256
    mel_bins: int = 128
    audio_patch: int = 16
    fusion_depth: int = 2
    fusion_heads: int = 8
    qkv_bias: bool = True
    drop_path: float = 0.0

    @property
    def audio_visual(self) -> bool:
        return self.modality == "audio-visual"


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if p <= 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _QVBias(nn.Module):
    """Learned query / value biases (key bias fixed at zero) when ``qkv_bias``."""

    def __init__(self, inner: int, qkv_bias: bool) -> None:
        super().__init__()
        self.q_bias = nn.Parameter(torch.zeros(inner)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(inner)) if qkv_bias else None

    def _kv_bias(self) -> torch.Tensor | None:
        if self.v_bias is None:
            return None
        return torch.cat([torch.zeros_like(self.v_bias), self.v_bias])


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax attention of ``(B, N, H·d)`` projections, heads split and merged again."""
    b, n, _ = q.shape
    m = k.shape[1]
    q = q.reshape(b, n, heads, -1).transpose(1, 2)
    k = k.reshape(b, m, heads, -1).transpose(1, 2)
    v = v.reshape(b, m, heads, -1).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, n, -1)


class SelfAttention(_QVBias):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__(dim, qkv_bias)
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, self._kv_bias()])
        q, k, v = F.linear(x, self.qkv.weight, bias).chunk(3, dim=-1)
        return self.proj(_attend(q, k, v, self.heads))


class CrossAttention(_QVBias):
    def __init__(self, dim: int, context_dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__(dim, qkv_bias)
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = F.linear(x, self.q.weight, self.q_bias)
        k, v = F.linear(context, self.kv.weight, self._kv_bias()).chunk(2, dim=-1)
        return self.proj(_attend(q, k, v, self.heads))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, hidden: int, qkv_bias: bool, drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, hidden)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _drop_path(self.attn(self.norm1(x)), self.drop, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop, self.training)


class CrossBlock(Block):
    """Cross-attention to the other modality, then a pre-norm transformer block."""

    def __init__(
        self, dim: int, context_dim: int, heads: int, hidden: int, qkv_bias: bool, drop: float
    ) -> None:
        super().__init__(dim, heads, hidden, qkv_bias, drop)
        self.cross_attn = CrossAttention(dim, context_dim, heads, qkv_bias)
        self.cross_norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.cross_norm2 = nn.LayerNorm(context_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        cross = self.cross_attn(self.cross_norm1(x), self.cross_norm2(context))
        return super().forward(x + _drop_path(cross, self.drop, self.training))


class _Embed(nn.Module):
    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    """Patch embedding + sinusoid positions + blocks; returns every block's output after
    the shared final norm, ``(B, N, L, D)``."""

    def __init__(
        self, proj: nn.Module, tokens: int, dim: int, depth: int, heads: int, hidden: int,
        qkv_bias: bool, drop_path: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.patch_embed = _Embed(proj)
        self.register_buffer("pos_embed", sinusoid_table(tokens, dim), persistent=False)
        rates = torch.linspace(0, drop_path, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, qkv_bias, r) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if x.shape[1] != self.pos_embed.shape[1]:
            raise ValueError(f"{x.shape[1]} tokens, the model takes {self.pos_embed.shape[1]}")
        x = x + self.pos_embed.to(x.dtype)
        layers = []
        for blk in self.blocks:
            x = blk(x)
            layers.append(x)
        return self.norm(torch.stack(layers, dim=2))


class Fusion(nn.Module):
    def __init__(self, cfg: HiCMAEConfig) -> None:
        super().__init__()
        d, da, h = cfg.dim, cfg.dim_audio, cfg.fusion_heads
        rates = torch.linspace(0, cfg.drop_path, cfg.fusion_depth).tolist()
        qb = cfg.qkv_bias
        self.blocks = nn.ModuleList(CrossBlock(d, da, h, cfg.mlp_hidden, qb, r) for r in rates)
        self.blocks_audio = nn.ModuleList(
            CrossBlock(da, d, h, cfg.mlp_hidden_audio, qb, r) for r in rates
        )
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.norm_audio = nn.LayerNorm(da, eps=LN_EPS)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for blk, blk_a in zip(self.blocks, self.blocks_audio, strict=True):
            v, a = blk(v, a), blk_a(a, v)
        return self.norm(v), self.norm_audio(a)


def _layer_mix(layers: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token means of every layer ``(B, L, D)`` mixed by ``softmax(weights)``."""
    return (layers.mean(dim=1) * weights.softmax(0).view(1, -1, 1)).sum(dim=1)


class HiCMAE(nn.Module):
    """The network (module docstring). ``forward(video, audio)``: video normalised
    ``(B, 3, T, H, W)``, audio the normalised log-mel ``(B, 1, frames, mel bins)`` (None in
    the visual modality) → logits."""

    def __init__(self, cfg: HiCMAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, t = cfg.patch_size, cfg.tubelet
        tokens = (cfg.num_frames // t) * (cfg.image_size // p) ** 2
        conv3d = nn.Conv3d(3, cfg.dim, (t, p, p), stride=(t, p, p))
        self.encoder = Encoder(
            conv3d, tokens, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_hidden, cfg.qkv_bias,
            cfg.drop_path,
        )  # fmt: skip
        self.video_layer_weights = nn.Parameter(torch.ones(cfg.depth) / cfg.depth)
        width = cfg.dim
        if cfg.audio_visual:
            pa = cfg.audio_patch
            tokens_a = (cfg.audio_frames // pa) * (cfg.mel_bins // pa)
            conv2d = nn.Conv2d(1, cfg.dim_audio, pa, stride=pa)
            self.encoder_audio = Encoder(
                conv2d, tokens_a, cfg.dim_audio, cfg.depth_audio, cfg.heads_audio,
                cfg.mlp_hidden_audio, cfg.qkv_bias, cfg.drop_path,
            )  # fmt: skip
            self.audio_layer_weights = nn.Parameter(torch.ones(cfg.depth_audio) / cfg.depth_audio)
            self.encoder_fusion = Fusion(cfg)
            width = 2 * (cfg.dim + cfg.dim_audio)
        self.fc_norm = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, cfg.num_classes)

    def features(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled clip feature the head reads (after ``fc_norm``)."""
        v = self.encoder(video)
        feat = _layer_mix(v, self.video_layer_weights)
        if not self.cfg.audio_visual:
            return self.fc_norm(feat)
        if audio is None:
            raise ValueError("the audio-visual model needs the clip's log-mel spectrogram")
        a = self.encoder_audio(audio)
        feat_a = _layer_mix(a, self.audio_layer_weights)
        fv, fa = self.encoder_fusion(v[:, :, -1], a[:, :, -1])
        return self.fc_norm(torch.cat([feat, feat_a, fv.mean(1), fa.mean(1)], dim=-1))

    def forward(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(video, audio))

    def layer_ids(self) -> dict[str, int]:
        """Depth of each parameter for layer-wise learning-rate decay, as the authors'
        audio-visual assigner counts: 0 for the embeddings, ``i + 1`` for block ``i`` of
        either encoder, ``M + j + 1`` for fusion block ``j`` (``M``: the deeper encoder),
        the top (``M + fusion_depth + 1``) for everything else (final norms, layer weights,
        ``fc_norm``, head)."""
        cfg = self.cfg
        m = max(cfg.depth, cfg.depth_audio if cfg.audio_visual else 0)
        top = m + (cfg.fusion_depth if cfg.audio_visual else 0) + 1
        out = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            depth = top
            if parts[0] in ("encoder", "encoder_audio"):
                if parts[1] == "patch_embed":
                    depth = 0
                elif parts[1] == "blocks":
                    depth = int(parts[2]) + 1
            elif parts[0] == "encoder_fusion":
                depth = m + 1 + int(parts[2]) if parts[1].startswith("blocks") else top
            out[name] = depth
        return out


__all__ = ["LN_EPS", "HiCMAE", "HiCMAEConfig"]
