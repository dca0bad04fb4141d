"""The ``auto`` video backend: decord where its frames are bit-identical to PyAV's, else PyAV.

Decoders that agree "within a tolerance" are not interchangeable: a trained head flips
labels on a few grey levels. So ``auto`` is a faster way to get **PyAV's exact frames**, and
never anything else (:func:`frame_identity` is ``"pyav"`` for both: stamps, checkpoints and
caches made with one serve the other).

Per process, a table of (source ``WxH``, output size) pairs: the first :data:`CHECK_CLIPS`
clips of a new pair are decoded by both backends and compared pixel for pixel; PyAV's
frames are returned meanwhile. A pair whose checked clips were all **bit-identical** uses
decord from then on; a pair with any differing pixel, a different shape or a decord error
uses PyAV for good. The rule never looks at timing, so two runs on one machine make the
same decision for every pair. Why a few clips decide a whole pair: H.264 decoding is
bit-exact by the standard, and the colour conversion and scaling are fixed functions of
the decoded picture, so two FFmpeg builds either agree on every picture of a (source,
size) pair or differ on nearly every one. Measured here (decord2 3.4.0, PyAV 18.1): synth
clips decoded at their native 112 px are identical in every pixel; scaled to 64 or 224 px
they differ by up to 28 / 47 grey levels (the builds' bicubic scalers), so those pairs
decode with PyAV. A decord error on a clip of a decord pair falls back to PyAV for that
clip (the same pixels).

What was decoded how is counted here and reported by :func:`decode_stats` (for the run
manifest and each result part). :mod:`emobench.video.frames` re-exports all of it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emobench.video._common import FrameReadError
from emobench.video.decord_source import DecordVideoSource
from emobench.video.pyav_source import PyAVVideoSource

#: Clips of a (source size, output size) pair that ``auto`` decodes with both backends
#: before it trusts decord for the pair (each must be bit-identical).
CHECK_CLIPS = 3

#: Fallback reasons kept in :class:`DecodeStats` (the first ones).
MAX_FALLBACK_REASONS = 20


def frame_identity(backend: str) -> str:
    """Whose pixels a backend's frames are: ``auto`` gives PyAV's exactly (see above), so
    ``auto`` and ``pyav`` share stamps, checkpoints and caches; ``decord`` has its own."""
    return "decord" if backend == "decord" else "pyav"


@dataclass
class DecodeStats:
    """How this process decoded clips: what the engine puts in a run manifest.

    ``clips``: clips read per backend (``pyav``, ``decord``; ``images`` for frame folders).
    ``fallbacks``: clips decord failed on that PyAV then decoded (``auto`` only), with the
    first :data:`MAX_FALLBACK_REASONS` ``{"clip", "reason"}`` in ``fallback_reasons``.
    ``checks``: one entry per (source size, output size) pair ``auto`` checked:
    ``{"source": "112x112", "size": 64 (None: native), "result": "decord bit-identical" |
    "checking" | "mismatch: ..." | "decord error: ...", "clips": clips compared,
    "mean_diff", "p99_diff", "max_diff": the worst seen}``.
    """

    clips: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    fallback_reasons: list[dict[str, str]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


@dataclass
class _Pair:
    """What ``auto`` knows about one (source WxH, output size) pair."""

    source: str
    size: int | None
    clips: int = 0  # clips compared
    failed: str | None = None  # the result once a check failed
    worst: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mean, p99, max

    @property
    def passed(self) -> bool:
        """Every checked clip was bit-identical: ``auto`` uses decord for the pair."""
        return self.failed is None and self.clips >= CHECK_CLIPS

    @property
    def pending(self) -> bool:
        return self.failed is None and self.clips < CHECK_CLIPS

    def as_check(self) -> dict[str, Any]:
        result = self.failed or ("decord bit-identical" if self.passed else "checking")
        mean, p99, top = self.worst
        return {
            "source": self.source,
            "size": self.size,
            "result": result,
            "clips": self.clips,
            "mean_diff": round(mean, 3),
            "p99_diff": round(p99, 1),
            "max_diff": round(top, 1),
        }


_lock = threading.Lock()
_counts: dict[str, int] = {}
_fallbacks: list[int] = [0]
_fallback_reasons: list[dict[str, str]] = []
_pairs: dict[tuple[int, int, int | None], _Pair] = {}


def _count(backend: str) -> None:
    with _lock:
        _counts[backend] = _counts.get(backend, 0) + 1


def _note_fallback(clip: str, reason: str) -> None:
    with _lock:
        _fallbacks[0] += 1
        if len(_fallback_reasons) < MAX_FALLBACK_REASONS:
            _fallback_reasons.append({"clip": clip, "reason": reason})


def decode_stats() -> DecodeStats:
    """A snapshot of this process's decode statistics since the last reset."""
    with _lock:
        return DecodeStats(
            clips=dict(_counts),
            fallbacks=_fallbacks[0],
            fallback_reasons=[dict(r) for r in _fallback_reasons],
            checks=[p.as_check() for p in _pairs.values()],
        )


def reset_decode_stats(*, forget_checks: bool = False) -> None:
    """Zero the clip and fallback counts. The checked pairs stay (they still decide which
    backend ``auto`` uses, and :func:`decode_stats` keeps reporting them) unless
    ``forget_checks``, which makes ``auto`` check every pair again."""
    with _lock:
        _counts.clear()
        _fallbacks[0] = 0
        _fallback_reasons.clear()
        if forget_checks:
            _pairs.clear()


def compare_frames(
    decord_frames: np.ndarray, pyav_frames: np.ndarray
) -> tuple[str | None, tuple[float, float, float]]:
    """``(why decord's frames are not bit-identical to PyAV's or None, (mean, p99, max)
    absolute difference)``."""
    if decord_frames.shape != pyav_frames.shape:
        return (
            f"mismatch: decord gave shape {decord_frames.shape}, pyav {pyav_frames.shape}",
            (math.inf, math.inf, math.inf),
        )
    if decord_frames.size == 0 or np.array_equal(decord_frames, pyav_frames):
        return None, (0.0, 0.0, 0.0)
    diff = np.abs(decord_frames.astype(np.int16) - pyav_frames.astype(np.int16))
    mean, top = float(diff.mean()), float(diff.max())
    p99 = float(np.percentile(diff, 99))
    share = float(np.count_nonzero(diff)) / diff.size
    reason = f"mismatch: {share:.1%} of values differ (mean {mean:.2f}, max {top:.0f})"
    return reason, (mean, p99, top)


def read_auto(
    pyav: PyAVVideoSource,
    decord: DecordVideoSource,
    size: int | None,
    path: str,
    idx: np.ndarray,
    clip_id: str | None,
    n_frames: int | None,
) -> np.ndarray:
    """Frames at ``idx`` of the video at ``path``: PyAV's pixels, decoded by decord where
    the clip's (source size, ``size``) pair was bit-identical; checks decord while the pair
    is pending."""
    with pyav.open(path, clip_id) as video:
        key = (video.width, video.height, size)
        with _lock:
            pair = _pairs.setdefault(key, _Pair(f"{video.width}x{video.height}", size))
        if not pair.passed:
            frames = pyav.read_open(video, idx, n_frames)
            if pair.pending and idx.size:
                _check(decord, pair, path, idx, clip_id, n_frames, frames)
            _count("pyav")
            return frames
    try:
        frames = decord.read(path, idx, clip_id=clip_id, n_frames=n_frames)
    except FrameReadError as exc:
        frames = pyav.read(path, idx, clip_id=clip_id, n_frames=n_frames)
        _note_fallback(clip_id if clip_id is not None else path, exc.reason)
        _count("pyav")
        return frames
    _count("decord")
    return frames


def _check(
    decord: DecordVideoSource,
    pair: _Pair,
    path: str,
    idx: np.ndarray,
    clip_id: str | None,
    n_frames: int | None,
    reference: np.ndarray,
) -> None:
    """Decode with decord too; record whether it is bit-identical to PyAV's ``reference``."""
    try:
        got = decord.read(path, idx, clip_id=clip_id, n_frames=n_frames)
    except FrameReadError as exc:
        failed: str | None = f"decord error: {exc.reason}"
        diff = (math.nan, math.nan, math.nan)
    else:
        failed, diff = compare_frames(got, reference)
    with _lock:
        pair.clips += 1
        if all(math.isfinite(d) for d in diff):
            mean, p99, top = pair.worst
            pair.worst = (max(mean, diff[0]), max(p99, diff[1]), max(top, diff[2]))
        if failed and pair.failed is None:
            pair.failed = failed


__all__ = [
    "CHECK_CLIPS",
    "MAX_FALLBACK_REASONS",
    "DecodeStats",
    "compare_frames",
    "decode_stats",
    "frame_identity",
    "read_auto",
    "reset_decode_stats",
]
