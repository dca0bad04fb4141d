"""MAE-DFER's fine-tuned network: a VideoMAE-style ViT with LGI-Former blocks.

Written from the description of the released model (Sun et al., ACM MM 2023; the
fine-tuning configuration of ``sunlicai/MAE-DFER``), not copied from it. Parameter names
follow the released checkpoints, so their state dicts load with ``strict=True``.

* Tubelet embedding: a ``Conv3d`` with kernel = stride = (tubelet, patch, patch) turns a
  normalised ``(B, 3, T, H, W)`` clip into ``T/tubelet × H/patch × W/patch`` tokens in
  (time, row, column) order; the fixed sinusoid table
  (:func:`emobench.models.videovit.sinusoid_table`) is added.
* Local regions: the token grid is cut into ``region_size = (t, h, w)`` boxes
  (``N = nt·nh·nw`` regions of ``R = t·h·w`` tokens, region order (nt, nh, nw), token order
  inside a region (t, h, w)); each region gets a learned *region token*
  (``lg_region_tokens``) in front: ``(B, N, 1 + R, D)``.
* An LGI-Former block (pre-norm residuals): (1) self-attention inside each region (its
  region token and its local tokens); (2) self-attention among the ``N`` region tokens of a
  clip; (3) every local token of the clip attends (cross-attention) to the clip's region
  tokens; (4) an MLP (GELU) on every token. Attention layers have separate ``q`` and ``kv``
  projections without bias and the VideoMAE bias scheme: ``q_bias`` on the queries, no bias
  on the keys, ``v_bias`` on the values.
* Head: mean of the chosen tokens (``region``: the region tokens, as the released
  fine-tuning scripts do; ``org``: the local tokens; ``all``), ``fc_norm`` (LayerNorm),
  a linear ``head``.

:class:`LGIFormer` takes uint8 ``(B, T, H, W, 3)`` frames (ImageNet-normalised inside) and
offers what :mod:`emobench.models.hfvideo.train` drives: ``classifier``, ``features`` and
``layer_ids`` for layer-wise learning-rate decay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emobench.models.videovit import imagenet_pixels, sinusoid_table

#: which tokens are averaged for the head
POOLING = ("region", "org", "all")


@dataclass(frozen=True)
class LGIConfig:
    """Shapes of one network (read from a checkpoint by :mod:`.checkpoint`)."""

    dim: int = 512
    depth: int = 16
    heads: int = 8
    mlp_hidden: int = 2048
    patch: int = 16
    tubelet: int = 2
    image_size: int = 160
    frames: int = 16
    region_size: tuple[int, int, int] = (2, 5, 10)
    num_classes: int = 7
    qkv_bias: bool = True
    pooling: str = "region"
    eps: float = 1e-6
    drop_path: float = 0.0

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (time, rows, columns)."""
        side = self.image_size // self.patch
        return self.frames // self.tubelet, side, side

    @property
    def regions(self) -> tuple[int, int, int]:
        """Regions along (time, rows, columns)."""
        return tuple(g // r for g, r in zip(self.grid, self.region_size, strict=True))  # type: ignore[return-value]

    def describe(self) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a whole sample's residual branch with probability ``p``."""
    if p <= 0.0 or not training:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
    return x * keep.bernoulli_(1 - p) / (1 - p)


class Attention(nn.Module):
    """Multi-head attention with separate ``q`` / ``kv`` projections (self-attention when
    no ``context`` is given)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        src = x if context is None else context
        kv_bias = None
        if self.v_bias is not None:
            kv_bias = torch.cat([torch.zeros_like(self.v_bias), self.v_bias])
        q = F.linear(x, self.q.weight, self.q_bias)
        k, v = F.linear(src, self.kv.weight, kv_bias).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        return self.proj(out.transpose(1, 2).reshape(x.shape))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LGIBlock(nn.Module):
    """One local-global interaction block on ``(B, N, 1 + R, D)`` (module docstring)."""

    def __init__(self, cfg: LGIConfig, drop_path: float) -> None:
        super().__init__()
        d = cfg.dim

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(d, eps=cfg.eps)

        self.first_attn_norm0 = norm()
        self.first_attn = Attention(d, cfg.heads, cfg.qkv_bias)
        self.second_attn_norm0 = norm()
        self.second_attn = Attention(d, cfg.heads, cfg.qkv_bias)
        self.third_attn_norm0 = norm()
        self.third_attn_norm1 = norm()
        self.third_attn = Attention(d, cfg.heads, cfg.qkv_bias)
        self.norm2 = norm()
        self.mlp = Mlp(d, cfg.mlp_hidden)
        self.drop_path = drop_path

    def _dp(self, x: torch.Tensor) -> torch.Tensor:
        return _drop_path(x, self.drop_path, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, s, d = x.shape
        # (1) inside each region: its region token and its local tokens
        flat = x.reshape(b * n, s, d)
        flat = flat + self._dp(self.first_attn(self.first_attn_norm0(flat)))
        x = flat.reshape(b, n, s, d)
        # (2) among the clip's region tokens
        region = x[:, :, 0]
        region = region + self._dp(self.second_attn(self.second_attn_norm0(region)))
        # (3) every local token of the clip attends to the clip's region tokens
        local = x[:, :, 1:].reshape(b, n * (s - 1), d)
        ctx = self.third_attn_norm1(region)
        local = local + self._dp(self.third_attn(self.third_attn_norm0(local), context=ctx))
        x = torch.cat([region[:, :, None], local.reshape(b, n, s - 1, d)], dim=2)
        # (4) MLP on every token
        return x + self._dp(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: LGIConfig) -> None:
        super().__init__()
        k = (cfg.tubelet, cfg.patch, cfg.patch)
        self.proj = nn.Conv3d(3, cfg.dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class LGIFormer(nn.Module):
    """The whole classifier on uint8 frames (module docstring)."""

    def __init__(self, cfg: LGIConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        nt, nh, nw = cfg.grid
        self.register_buffer("pos_embed", sinusoid_table(nt * nh * nw, cfg.dim), persistent=False)
        n_regions = cfg.regions[0] * cfg.regions[1] * cfg.regions[2]
        self.lg_region_tokens = nn.Parameter(torch.zeros(n_regions, cfg.dim))
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth else []
        self.blocks = nn.ModuleList(LGIBlock(cfg, r) for r in rates)
        self.fc_norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    @property
    def classifier(self) -> nn.Linear:
        return self.head

    def _regions(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, nt·nh·nw grid tokens, D)`` → ``(B, N, R, D)`` region partition."""
        b, _, d = tokens.shape
        (gt, gh, gw), (rt, rh, rw) = self.cfg.grid, self.cfg.region_size
        x = tokens.reshape(b, gt // rt, rt, gh // rh, rh, gw // rw, rw, d)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)
        return x.reshape(b, -1, rt * rh * rw, d)

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, 3, T, H, W)`` → the head's input ``(B, D)``."""
        tokens = self.patch_embed(pixels) + self.pos_embed.to(pixels.dtype)
        x = self._regions(tokens)
        b, n, _, d = x.shape
        region = self.lg_region_tokens.to(x.dtype).expand(b, n, d)[:, :, None]
        x = torch.cat([region, x], dim=2)
        for block in self.blocks:
            x = block(x)
        if self.cfg.pooling == "region":
            pooled = x[:, :, 0].mean(1)
        elif self.cfg.pooling == "org":
            pooled = x[:, :, 1:].reshape(b, -1, d).mean(1)
        else:
            pooled = x.reshape(b, -1, d).mean(1)
        return self.fc_norm(pooled)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, T, H, W, 3)`` → pooled clip features ``(B, D)``."""
        return self.pooled(imagenet_pixels(frames))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, T, H, W, 3)`` → logits ``(B, num_classes)`` in head order."""
        return self.head(self.features(frames))

    def layer_ids(self) -> dict[str, int]:
        """Depth of each parameter for layer-wise lr decay, as the released fine-tuning
        assigns it: 0 for the tubelet embedding, ``i + 1`` for block ``i``, ``L + 1`` for
        everything else (region tokens, ``fc_norm``, ``head``)."""
        top = len(self.blocks) + 1
        out = {}
        for name, _ in self.named_parameters():
            if name.startswith("patch_embed."):
                out[name] = 0
            elif name.startswith("blocks."):
                out[name] = int(name.split(".")[1]) + 1
            else:
                out[name] = top
        return out

    def reset_head(self, seed: int, init_scale: float = 1e-3) -> None:
        """A new head (and ``fc_norm``) for fine-tuning, as the released recipe starts
        it: truncated normal (std 0.02) weights scaled by ``init_scale``, zero bias."""
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            self.head.weight.mul_(init_scale)
            self.head.bias.zero_()
            self.fc_norm.reset_parameters()


__all__ = ["POOLING", "LGIConfig", "LGIFormer"]
