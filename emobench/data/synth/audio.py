"""The synth benchmark's optional audio track: a tone whose pitch follows the expression.

``SynthConfig.audio`` picks the track muxed into each clip's mp4:

- ``none`` (default): no audio stream; the file is byte for byte what the generator wrote
  before the option existed.
- ``tone``: a pure sine at 16 kHz whose pitch is the subject's *base pitch* (a fixed
  speaking-voice F0 per identity, 110-220 Hz, drawn from its own generator so that the
  faces do not change) raised or lowered by the label's *shift* (:data:`SEMITONES`) scaled
  by the clip's expression strength at that moment (intensity × the timeline's envelope,
  frame by frame, interpolated between frames). A neutral clip, and every clip before its
  onset, sounds at the base pitch; a macro clip glides to ``base · 2^(shift · intensity /
  12)`` at its apex and back; a micro clip chirps during its flash only.
- ``silence``: a track of zeros (a clip *with* audio that carries no information).

Tracks are FLAC (lossless, integer: the decoded samples are the written ones, the bytes
are the same on every CPU, and the sample count is exact, so the timing against the
frames is exact too). The weak distractor expression, blinks and speech-like mouth motion
do not sound; there is no voice, formant, loudness or noise model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from emobench.data.synth.timeline import ClipTimeline

#: Sample rate of the generated tracks (HiCMAE's and the DFER codebases' rate).
RATE = 16000
#: Codec of the generated tracks (mp4 accepts it; PyAV encodes it offline).
CODEC = "flac"
#: Peak amplitude of the tone (full scale is 1).
AMPLITUDE = 0.3
#: Range of the per-subject base pitch, Hz.
BASE_PITCH = (110.0, 220.0)
#: Fade in and out at the ends of a track, seconds (no click at the cut).
FADE = 0.005

#: Pitch shift of each class at full expression strength, in semitones. Arousing classes
#: go up (surprise and fear most), low-arousal ones down; close pairs of the face model
#: (fear/surprise, disgust/anger, the MAFW extras with sadness) stay close in pitch too.
SEMITONES: dict[str, float] = {
    "neutral": 0.0,
    "happiness": 5.0,
    "surprise": 10.0,
    "fear": 8.0,
    "anger": 3.0,
    "disgust": -3.0,
    "contempt": -1.5,
    "sadness": -6.0,
    "anxiety": 6.5,
    "helplessness": -4.5,
    "disappointment": -5.0,
}


def base_pitch(seed: int, subject: int) -> float:
    """The subject's base pitch in Hz (log-uniform in :data:`BASE_PITCH`), from a
    generator of its own (the identity's and the clips' draws are untouched)."""
    rng = np.random.default_rng([seed, 2, subject])
    lo, hi = np.log2(BASE_PITCH[0]), np.log2(BASE_PITCH[1])
    return float(2.0 ** rng.uniform(lo, hi))


def frame_pitch(label: str, tl: ClipTimeline, base: float) -> np.ndarray:
    """Pitch in Hz of each frame: ``base · 2^(shift · intensity · envelope / 12)``."""
    shift = SEMITONES.get(label, 0.0) * tl.intensity
    return base * 2.0 ** (shift * tl.envelope.astype(np.float64) / 12.0)


def tone(pitch: np.ndarray, fps: float, rate: int = RATE) -> np.ndarray:
    """A sine whose pitch follows the per-frame ``pitch`` (frame ``i`` spans ``i / fps``
    to ``(i + 1) / fps``; the pitch is linear between frame centres), phase-continuous,
    faded at both ends: float32 samples of the clip's exact length."""
    n = int(round(len(pitch) / fps * rate))
    t = np.arange(n) / rate
    centres = (np.arange(len(pitch)) + 0.5) / fps
    f = np.interp(t, centres, pitch)
    phase = 2.0 * np.pi * np.cumsum(f) / rate
    wave = AMPLITUDE * np.sin(phase)
    k = min(int(FADE * rate), n // 2)
    if k:
        ramp = np.linspace(0.0, 1.0, k)
        wave[:k] *= ramp
        wave[n - k :] *= ramp[::-1]
    return wave.astype(np.float32)


def clip_track(
    kind: str, label: str, tl: ClipTimeline, base: float, fps: float
) -> np.ndarray | None:
    """The samples of one clip's track for ``SynthConfig.audio == kind``, or None."""
    if kind == "none":
        return None
    if kind == "silence":
        return np.zeros(int(round(tl.n_frames / fps * RATE)), np.float32)
    if kind == "tone":
        return tone(frame_pitch(label, tl, base), fps)
    raise ValueError(f"unknown synth audio {kind!r}; use none, tone or silence")


def add_audio_stream(container: Any) -> Any:
    """Add the mono :data:`CODEC` stream at :data:`RATE` to an open PyAV output."""
    stream = container.add_stream(CODEC, rate=RATE)
    stream.layout = "mono"
    return stream


def mux_audio(container: Any, stream: Any, samples: np.ndarray) -> None:
    """Encode float samples in ``[-1, 1]`` as 16-bit FLAC frames and mux them."""
    import av

    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    step = stream.codec_context.frame_size or 1152
    for start in range(0, len(pcm), step):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + step], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def audio_info(kind: str) -> dict[str, Any] | None:
    """What the manifest records about the tracks (None without audio)."""
    if kind == "none":
        return None
    return {"audio": kind, "codec": CODEC, "rate": RATE, "channels": 1, "sample_fmt": "s16"}


__all__ = [
    "AMPLITUDE",
    "BASE_PITCH",
    "CODEC",
    "RATE",
    "SEMITONES",
    "add_audio_stream",
    "audio_info",
    "base_pitch",
    "clip_track",
    "frame_pitch",
    "mux_audio",
    "tone",
]
