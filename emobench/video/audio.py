"""A video's own audio track, decoded with PyAV: mono float32 at a chosen rate.

:func:`read_audio` decodes the first audio stream of a file and resamples it with
libswresample (PyAV's ``AudioResampler``, the library ``ffmpeg -ac 1 -ar 16000`` uses, which
is how the DFER codebases extract their wav files) to mono float samples in ``[-1, 1]``.
A file without an audio stream gives None (a folder of frame images too); an unreadable
one raises :class:`AudioError` with one line.

:func:`clip_window` cuts the samples that a set of presented frames spans: from the first
presented frame's time to one sampling step after the last (frame ``i`` starts at
``i / fps``), whatever order the frames are presented in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emobench.errors import EmobenchError


class AudioError(EmobenchError):
    """An audio track that cannot be decoded."""


def read_audio(path: str | Path, rate: int = 16000) -> np.ndarray | None:
    """Mono float32 samples at ``rate`` Hz of the file's first audio stream, or None when
    it has none (module docstring)."""
    import av

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise AudioError(f"{path}: cannot decode its audio track: {reason}") from None
    if not parts:
        return np.zeros(0, np.float32)
    return np.concatenate(parts).astype(np.float32)


def clip_window(samples: np.ndarray, indices: np.ndarray, fps: float, rate: int) -> np.ndarray:
    """The samples the presented frames ``indices`` span (module docstring); the whole
    track when the span is empty."""
    idx = np.sort(np.asarray(indices, np.int64).reshape(-1))
    if idx.size == 0 or fps <= 0:
        return samples
    step = int(np.median(np.diff(idx))) if idx.size > 1 else 1
    start = int(round(idx[0] / fps * rate))
    end = int(round((idx[-1] + max(step, 1)) / fps * rate))
    part = samples[start:end]
    return part if part.size else samples


__all__ = ["AudioError", "clip_window", "read_audio"]
