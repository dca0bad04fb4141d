"""The HiCMAE network as the clip classifier that :mod:`emobench.models.hfvideo.train`
fine-tunes and runs: it takes uint8 frame batches ``(B, T, H', W, 3)``.

The fine-tuning loop moves clips as uint8 frame arrays only. So that an audio-visual clip
travels through it unchanged, its log-mel input rides *under* the frames: the float32
spectrogram's bytes, bit for bit, fill ``R`` extra rows of every frame (:func:`pack`),
and :class:`HiCMAEClassifier` splits them off again before the network (:func:`unpack`).
:class:`AVClip` gives the loop a clip whose ``clip[idx]`` is such a packed array, the audio
cut to the span of exactly the frames drawn (the authors' window: first frame drawn to
one step past the last). Visual clips are plain frame arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emobench.models.hicmae.fbank import SAMPLE_RATE, hicmae_input
from emobench.models.hicmae.network import HiCMAE
from emobench.models.videovit import imagenet_pixels
from emobench.video.audio import clip_window


def audio_rows(cfg_frames: int, side: int, audio_frames: int, mel_bins: int) -> int:
    """Extra rows per frame that hold the spectrogram's bytes."""
    nbytes = audio_frames * mel_bins * 4
    per_row = cfg_frames * side * 3
    return -(-nbytes // per_row)


def pack(frames: np.ndarray, audio: np.ndarray, rows: int) -> np.ndarray:
    """``(T, S, S, 3)`` uint8 frames + float32 spectrogram → ``(T, S + rows, S, 3)``."""
    t, s, w, c = frames.shape
    raw = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1).view(np.uint8)
    extra = np.zeros(t * rows * w * c, np.uint8)
    extra[: raw.size] = raw
    return np.concatenate([frames, extra.reshape(t, rows, w, c)], axis=1)


def unpack(
    x: torch.Tensor, side: int, audio_shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack` on a batch: frames ``(B, T, S, S, 3)`` and the
    spectrogram ``(B, 1, frames, mel bins)`` float32."""
    b = x.shape[0]
    n = audio_shape[0] * audio_shape[1] * 4
    raw = x[:, :, side:].reshape(b, -1)[:, :n].contiguous()
    audio = raw.view(torch.float32).reshape(b, 1, *audio_shape)
    return x[:, :, :side], audio


class AVClip:
    """A decoded clip and its audio track, indexable like a frame array (module
    docstring): ``len(clip)`` frames; ``clip[idx]`` the packed frames ``idx``."""

    def __init__(
        self, frames: np.ndarray, samples: np.ndarray, fps: float, rows: int,
        audio_frames: int, mel_bins: int,
    ) -> None:  # fmt: skip
        self.frames, self.samples, self.fps = frames, samples, fps
        self.rows, self.audio_frames, self.mel_bins = rows, audio_frames, mel_bins

    def __len__(self) -> int:
        return len(self.frames)

    def spectrogram(self, idx: np.ndarray) -> np.ndarray:
        wave = clip_window(self.samples, idx, self.fps, SAMPLE_RATE)
        return hicmae_input(wave, self.audio_frames, self.mel_bins)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        return pack(self.frames[idx], self.spectrogram(idx), self.rows)

    def pack_at(self, indices: np.ndarray) -> np.ndarray:
        """All of :attr:`frames` (already the presented ones) packed with the audio of the
        source frames ``indices`` they were taken from."""
        return pack(self.frames, self.spectrogram(indices), self.rows)


class HiCMAEClassifier(nn.Module):
    """uint8 ``(B, T, H', W, 3)`` → logits (or, :meth:`features`, the pooled clip feature),
    with ImageNet normalisation; ``classifier`` is the head the loop may re-train."""

    def __init__(self, net: HiCMAE) -> None:
        super().__init__()
        self.net = net

    @property
    def classifier(self) -> nn.Linear:
        return self.net.head

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.net.cfg
        audio = None
        if cfg.audio_visual:
            x, audio = unpack(x, cfg.image_size, (cfg.audio_frames, cfg.mel_bins))
        video = imagenet_pixels(x)
        if audio is not None and torch.is_autocast_enabled():
            audio = audio.to(video.dtype)
        return video, audio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(*self._inputs(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(*self._inputs(x))

    def layer_ids(self) -> dict[str, int]:
        return {f"net.{k}": v for k, v in self.net.layer_ids().items()}


__all__ = ["AVClip", "HiCMAEClassifier", "audio_rows", "pack", "unpack"]
