"""Per-frame encoders for the vision-only baselines: uint8 frames → (N, D) features.

``FrameEncoder`` is a small CNN trained from scratch by ``train.train_encoder``. It is sized
for a 2-core CPU: a stride-2 5×5 stem and max-pooling bring a 64×64 frame to 4×4 before the
last block; with the default channels 16→32→64→128 one frame costs about 5 M multiply-adds
forward (24→48→96→128 costs 9 M and was no better on the synth faces).

Plugging in a frozen external encoder. The temporal heads (``heads.py``) only ever see
per-frame features of shape (T, D); any module that maps a uint8 (N, H, W, 3) tensor to
(N, D) features works with ``encode_frames`` and therefore with ``train_head`` /
``predict_head``. ``FrozenVisualEncoder`` adapts an image tower that expects normalised
float NCHW input, e.g. an open_clip visual tower::

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=path)
    enc = FrozenVisualEncoder(model.visual, image_size=224,
                              mean=model.visual.image_mean, std=model.visual.image_std)
    feats = encode_frames(enc, frames_uint8)          # (N, 512), then per-clip (T, 512)

(the caller decodes frames at any size; the adapter resizes to ``image_size``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emobench.errors import EmobenchError
from emobench.models.device import autocast, resolve_device, run_with_oom_backoff
from emobench.models.transfer import to_device, to_numpy
from emobench.training.checkpoint import register_module

#: Input normalisation of ``FrameEncoder``: (x/255 − 0.5) / 0.25, the same for all channels.
_MEAN, _STD = 0.5, 0.25


class FrameShapeError(EmobenchError):
    """Frames are not a uint8 (N, H, W, 3) array."""


def check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    """Validate a uint8 (N, H, W, 3) array; ``what`` names it in the error."""
    if not isinstance(frames, np.ndarray):
        raise FrameShapeError(f"{what}: expected a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise FrameShapeError(
            f"{what}: expected uint8 (N, H, W, 3) frames, got {frames.dtype} {frames.shape}"
        )
    return frames


class FrameEncoder(nn.Module):
    """Small CNN trained from scratch: 5×5/2 stem, then [max-pool, 3×3 conv] blocks, every
    conv followed by BatchNorm and ReLU, then a readout to D = ``widths[-1]`` features.

    ``input_norm="frame"`` (default) standardises each frame per channel (zero mean, unit
    std over the image) before the CNN: it removes skin, background and lighting offsets
    that dominate raw pixels, and made the CNN learn the synth expressions several times
    faster than a fixed normalisation (``input_norm="fixed"``: (x/255 − 0.5)/0.25).
    ``readout="spatial"`` (default) pools the last map to a ``grid``×``grid`` layout (4×4:
    the native size at 64 px) and maps it linearly to D, keeping *where* things happen in
    an aligned face (brows vs mouth corners), which global pooling throws away;
    ``readout="gap"`` is plain global average pooling. ``side`` records the frame size the
    caller resizes to (default 64); any size ≥ 2**len(widths) works. Weights live in
    channels-last memory, about 1.3-2× faster for these small convolutions on CPU.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128),
        side: int = 64,
        readout: str = "spatial",
        grid: int = 4,
        input_norm: str = "frame",
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be positive, got {widths}")
        if readout not in ("spatial", "gap"):
            raise ValueError(f"readout must be 'spatial' or 'gap', got {readout!r}")
        if input_norm not in ("fixed", "frame"):
            raise ValueError(f"input_norm must be 'fixed' or 'frame', got {input_norm!r}")
        self.widths, self.side, self.readout, self.grid = widths, int(side), readout, int(grid)
        self.input_norm = input_norm
        self.out_dim = widths[-1]
        layers: list[nn.Module] = [
            nn.Conv2d(3, widths[0], 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.MaxPool2d(2),
                nn.Conv2d(w_in, w_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(inplace=True),
            ]
        if readout == "spatial":
            layers += [
                nn.AdaptiveAvgPool2d(self.grid),
                nn.Flatten(),
                nn.Linear(widths[-1] * self.grid**2, self.out_dim),
            ]
        else:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.to(memory_format=torch.channels_last)

    @property
    def spec(self) -> dict[str, Any]:
        """Name and constructor arguments, stored next to saved weights."""
        kwargs = {
            "widths": list(self.widths),
            "side": self.side,
            "readout": self.readout,
            "grid": self.grid,
            "input_norm": self.input_norm,
        }
        return {"kind": "encoder", "name": "frame-cnn", "kwargs": kwargs}

    @staticmethod
    def to_input(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) → normalised float (N, 3, H, W) in channels-last memory."""
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        x = (x / 255.0 - _MEAN) / _STD
        return x.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) frames, or already normalised float (N, 3, H, W) → (N, D)."""
        if x.dtype == torch.uint8:
            x = self.to_input(x)
        if self.input_norm == "frame":
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
            x = (x - mean) / std
        return self.body(x)


class FrozenVisualEncoder(nn.Module):
    """Adapter for a frozen external image tower (float NCHW normalised input → (N, D)) so
    that it accepts uint8 (N, H, W, 3) frames: bilinear resize to ``image_size``, per-channel
    normalisation with ``mean``/``std`` in [0, 1] units (defaults: CLIP's), tower frozen."""

    def __init__(
        self,
        visual: nn.Module,
        image_size: int,
        mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
        std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711),
    ) -> None:
        super().__init__()
        self.visual = visual.eval().requires_grad_(False)
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return self.visual((x - self.mean) / self.std).float()


register_module("encoder", "frame-cnn", FrameEncoder)


def encode_frames(
    encoder: nn.Module,
    frames_uint8: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Per-frame features of uint8 (N, H, W, 3) frames → float32 (N, D).

    Runs under ``torch.inference_mode`` in eval mode (bf16 autocast on CUDA), after moving
    the encoder to ``device``; halves the batch on CUDA out-of-memory. The frames travel as
    uint8 (pinned and asynchronous on CUDA) and are converted on the device; the features
    come back in one copy (:mod:`emobench.models.transfer`).
    """
    frames_uint8 = check_frames(frames_uint8)
    dev = resolve_device(device)
    encoder.to(dev).eval()

    def run(bs: int) -> np.ndarray:
        chunks: list[torch.Tensor] = []
        with torch.inference_mode(), autocast(dev):
            for start in range(0, len(frames_uint8), bs):
                # uint8 to the device (pinned, asynchronous on CUDA); the encoder converts
                chunks.append(encoder(to_device(frames_uint8[start : start + bs], dev)))
            if not chunks:  # no frames: still report the feature width
                probe = torch.zeros((1, *frames_uint8.shape[1:]), dtype=torch.uint8, device=dev)
                return np.zeros((0, encoder(probe).shape[-1]), dtype=np.float32)
        return to_numpy(chunks, 0)  # one copy back at the end

    return run_with_oom_backoff(run, max(1, int(batch_size)))


__all__ = [
    "FrameEncoder",
    "FrameShapeError",
    "FrozenVisualEncoder",
    "check_frames",
    "encode_frames",
]
