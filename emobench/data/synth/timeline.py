"""Per-frame action-unit trajectories of one synth clip, with its ground-truth window.

Two kinds of clip:

- **macro**: neutral → onset ramp → apex hold → offset ramp back to neutral, or a hold to
  the end of the clip;
- **micro**: a neutral face or a weak *distractor* expression of another class, with one
  flash of the target emotion lasting 0.25–0.5 s (onset → apex → offset inside it) at a
  random time. The label is the flashed emotion.

``neutral`` clips have no window (onset/apex/offset are ``None``) and sometimes carry a
faint distractor expression. Nuisances carry no label: a per-clip intensity (0.4–1.0) and
per-AU jitter, small head motion (shift and roll), blinks (AU45), speech-like mouth motion
(small AU25/AU26), illumination drift and a sensor-noise level (the encoder adds H.264
compression). Frame numbers are 0-based; ``offset`` is inclusive; the expression envelope
is positive exactly on ``onset..offset``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emobench.data.synth.aus import AU_INDEX, N_AUS, prototype_vector

#: Range of the per-clip expression intensity.
INTENSITY = (0.4, 1.0)
#: Range of a distractor expression's intensity (kept weak).
DISTRACTOR_INTENSITY = (0.12, 0.25)
#: Duration range of a micro-expression flash, in seconds.
MICRO_SECONDS = (0.25, 0.5)


@dataclass(frozen=True, eq=False)
class ClipTimeline:
    """Everything the renderer needs for one clip, plus its ground truth."""

    aus: np.ndarray  # (T, 17) float32 in [0, 1]
    poses: np.ndarray  # (T, 3) float32: dx, dy (image fractions), roll (degrees)
    illums: np.ndarray  # (T,) float32 brightness factors
    noise: float  # sensor noise, grey levels
    onset: int | None
    apex: int | None
    offset: int | None
    micro: bool
    intensity: float
    distractor: str | None  # the weak background expression's class, if any
    envelope: np.ndarray  # (T,) float32 in [0, 1]: the target expression's share per frame

    @property
    def n_frames(self) -> int:
        return int(self.aus.shape[0])


def micro_frames(fps: float) -> tuple[int, int]:
    """Smallest and largest flash length in frames whose duration lies in 0.25–0.5 s."""
    lo = math.ceil(MICRO_SECONDS[0] * fps - 1e-9)
    hi = math.floor(MICRO_SECONDS[1] * fps + 1e-9)
    if lo < 3 or hi < lo:
        raise ValueError(f"fps {fps} is too low for 0.25–0.5 s micro-expressions (need >= 9)")
    return lo, hi


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _macro_envelope(
    nf: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, int, int, int]:
    """Envelope for a macro expression: ramp up, hold, then ramp down or hold to the end."""
    env = np.zeros(nf, dtype=np.float64)
    onset = int(rng.integers(max(1, round(0.05 * nf)), max(2, round(0.35 * nf)) + 1))
    ramp = int(np.clip(round(rng.uniform(0.2, 0.6) * fps), 2, max(2, nf - onset - 1)))
    peak = min(onset + ramp - 1, nf - 1)  # first frame at full intensity
    env[onset : peak + 1] = _smooth(np.arange(1, peak - onset + 2) / (peak - onset + 1))
    hold = round(rng.uniform(0.3, 1.0) * fps)
    fall = round(rng.uniform(0.2, 0.5) * fps)
    if rng.random() < 0.5 or peak + hold + fall > nf - 2:  # hold to the end
        env[peak:] = 1.0
        offset = nf - 1
        apex = peak + (offset - peak) // 2
    else:
        env[peak : peak + hold + 1] = 1.0
        start = peak + hold + 1
        env[start : start + fall] = _smooth(np.arange(fall, 0, -1) / (fall + 1))
        offset = start + fall - 1
        apex = peak + hold // 2
    return env, onset, apex, offset


def _micro_envelope(
    nf: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, int, int, int]:
    """Envelope of one 0.25–0.5 s flash at a random time: rise to the apex, then fall."""
    lo, hi = micro_frames(fps)
    n = int(rng.integers(lo, hi + 1))
    if nf < n + 4:
        raise ValueError(f"a clip of {nf} frames is too short for a {n}-frame micro-expression")
    onset = int(rng.integers(2, nf - n - 2 + 1))
    j = int(np.clip(round(n * rng.uniform(0.3, 0.55)), 1, n - 2))  # apex position in window
    env = np.zeros(nf, dtype=np.float64)
    i = np.arange(n)
    rise = _smooth((i + 1) / (j + 1))
    fall = _smooth((n - i) / (n - j))
    env[onset : onset + n] = np.where(i <= j, rise, fall)
    return env, onset, onset + j, onset + n - 1


def _expression(label: str, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """A label's prototype scaled by ``intensity`` with per-AU jitter, clipped to [0, 1]."""
    jitter = rng.uniform(0.8, 1.1, N_AUS)
    return np.clip(prototype_vector(label) * intensity * jitter, 0.0, 1.0)


def _blinks(nf: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(nf)
    rate = rng.uniform(0.1, 0.5)  # blinks per second
    n = int(rng.poisson(rate * nf / fps))
    length = max(3, round(0.2 * fps))
    shape = np.sin(np.pi * np.arange(1, length + 1) / (length + 1))
    for start in rng.integers(0, nf, n):
        seg = shape[: nf - start]
        out[start : start + len(seg)] = np.maximum(out[start : start + len(seg)], seg)
    return out


def _speech(nf: int, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Small syllable-rate lip parting (AU25) and jaw motion (AU26), or none."""
    lips, jaw = np.zeros(nf), np.zeros(nf)
    if rng.random() < 0.35:
        s0 = int(rng.integers(0, max(1, nf // 2)))
        s1 = int(rng.integers(s0 + max(1, nf // 4), nf + 1))
        t = np.arange(s1 - s0) / fps
        syll = np.abs(np.sin(2 * np.pi * rng.uniform(2.0, 3.0) * t + rng.uniform(0, np.pi)))
        lips[s0:s1] = rng.uniform(0.08, 0.2) * (0.5 + 0.5 * syll)
        jaw[s0:s1] = rng.uniform(0.08, 0.2) * syll
    return lips, jaw


def _head_motion(nf: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth small head motion: a base offset plus two slow sinusoids per axis."""
    t = np.arange(nf) / fps
    poses = np.empty((nf, 3))
    scales = (0.02, 0.015, 3.0)  # dx, dy as image fractions; roll in degrees
    for axis, scale in enumerate(scales):
        x = np.full(nf, rng.uniform(-1, 1) * scale)
        for _ in range(2):
            f = rng.uniform(0.1, 0.7)
            x += rng.uniform(0, 0.6) * scale * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        poses[:, axis] = x
    return poses


def _illumination(nf: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0.8, 1.12)
    drift = rng.uniform(-0.15, 0.15)
    flicker = rng.uniform(0.0, 0.02) * np.sin(np.arange(nf) * rng.uniform(0.1, 0.5))
    return base * (1.0 + drift * (np.arange(nf) / max(nf - 1, 1) - 0.5) + flicker)


def make_timeline(
    label: str,
    n_frames: int,
    fps: float,
    micro: bool,
    rng: np.random.Generator,
    distractors: Sequence[str] = (),
) -> ClipTimeline:
    """Draw the per-frame AUs, pose, light and ground-truth window of one clip.

    ``distractors`` are the classes a weak background expression may come from (the
    label and ``neutral`` are skipped). ``neutral`` clips are never micro.
    """
    if micro and label == "neutral":
        raise ValueError("a neutral clip cannot be a micro-expression clip")
    nf = int(n_frames)
    pool = [d for d in distractors if d not in (label, "neutral")]
    intensity = float(rng.uniform(*INTENSITY))
    target = _expression(label, intensity, rng)
    background = np.zeros(N_AUS)
    distractor = None
    if pool and rng.random() < (0.5 if micro else 0.3 if label == "neutral" else 0.0):
        distractor = pool[int(rng.integers(len(pool)))]
        background = _expression(distractor, rng.uniform(*DISTRACTOR_INTENSITY), rng)

    if label == "neutral":
        env, onset, apex, offset = np.zeros(nf), None, None, None
    elif micro:
        env, onset, apex, offset = _micro_envelope(nf, fps, rng)
    else:
        env, onset, apex, offset = _macro_envelope(nf, fps, rng)
    aus = (1.0 - env)[:, None] * background[None] + env[:, None] * target[None]

    lips, jaw = _speech(nf, fps, rng)
    aus[:, AU_INDEX[25]] = np.maximum(aus[:, AU_INDEX[25]], lips)
    aus[:, AU_INDEX[26]] = np.maximum(aus[:, AU_INDEX[26]], jaw)
    aus[:, AU_INDEX[45]] = np.maximum(aus[:, AU_INDEX[45]], _blinks(nf, fps, rng))
    poses = _head_motion(nf, fps, rng)
    illums = _illumination(nf, rng)
    noise = float(rng.uniform(0.5, 3.0))
    return ClipTimeline(
        aus=np.clip(aus, 0.0, 1.0).astype(np.float32),
        poses=poses.astype(np.float32),
        illums=illums.astype(np.float32),
        noise=noise,
        onset=onset,
        apex=apex,
        offset=offset,
        micro=micro,
        intensity=intensity,
        distractor=distractor,
        envelope=np.asarray(env, np.float32),
    )
