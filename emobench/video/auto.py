"""The ``auto`` video backend: which decoder to trust for which clip size, and what was
decoded how.

``auto`` uses decord where it was seen to agree with PyAV and to be faster, else PyAV. Per
process, a table of (source ``WxH``, output size) pairs: the first :data:`CHECK_CLIPS`
clips of a new pair are decoded by both, compared (:data:`MAX_MEAN_DIFF`,
:data:`MAX_DIFF`, :data:`MAX_P99_DIFF`, :func:`compare_frames`) and timed; PyAV's frames
are returned meanwhile. A pair whose checks all passed and where decord (plus the PyAV open
that finds a clip's pair) took less time than PyAV uses decord from then on (when the
caller requires it to be faster: :data:`emobench.video.frames.REQUIRE_FASTER`); one that
failed (decord error or mismatch) or where PyAV was as fast uses PyAV. A decord error on a
clip of a decord pair falls back to PyAV for that clip.

What was decoded how is counted here and reported by :func:`decode_stats` (for the run
manifest). :mod:`emobench.video.frames` re-exports all of it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emobench.video._common import FrameReadError
from emobench.video.decord_source import DecordVideoSource
from emobench.video.pyav_source import PyAVVideoSource

#: Clips of a (source size, output size) pair that ``auto`` decodes with both backends
#: before it trusts decord for the pair.
CHECK_CLIPS = 3
#: Largest mean absolute difference (grey levels, over all frames, pixels and channels)
#: between decord and PyAV for a pair to pass.
MAX_MEAN_DIFF = 2.0
#: Largest absolute difference at native size (no scaling: same H.264 decoder and colour
#: conversion, 0 measured on clean runs).
MAX_DIFF = 12
#: Largest 99th percentile of the absolute difference when scaling. The two FFmpeg builds'
#: bicubic scalers differ at sharp edges: measured on synth clips 32..128 px scaled to
#: 64..299 px, mean <= 1.3, 99th percentile <= 17, max up to 41; a frame shifted by one
#: pixel gives a 99th percentile of 34 or more.
MAX_P99_DIFF = 24

#: Fallback reasons kept in :class:`DecodeStats` (the first ones).
MAX_FALLBACK_REASONS = 20


@dataclass
class DecodeStats:
    """How this process decoded clips: what the engine puts in a run manifest.

    ``clips``: clips read per backend (``pyav``, ``decord``; ``images`` for frame folders).
    ``fallbacks``: clips decord failed on that PyAV then decoded (``auto`` only), with the
    first :data:`MAX_FALLBACK_REASONS` ``{"clip", "reason"}`` in ``fallback_reasons``.
    ``checks``: one entry per (source size, output size) pair ``auto`` checked:
    ``{"source": "112x112", "size": 64 (None: native), "result": "decord ok" | "checking" |
    "mismatch: ..." | "decord error: ...", "clips": clips compared, "mean_diff",
    "p99_diff", "max_diff": the worst seen}``.
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
    pyav_s: float = 0.0  # PyAV's open + read time over the compared clips
    decord_s: float = 0.0  # decord's read + the PyAV open that looks the pair up

    @property
    def agrees(self) -> bool:
        return self.failed is None and self.clips >= CHECK_CLIPS

    def passed(self, require_faster: bool = True) -> bool:
        """decord agrees with PyAV (and is faster, if required): ``auto`` uses decord."""
        return self.agrees and (not require_faster or self.decord_s < self.pyav_s)

    @property
    def pending(self) -> bool:
        return self.failed is None and self.clips < CHECK_CLIPS

    def as_check(self, require_faster: bool = True) -> dict[str, Any]:
        if self.failed:
            result = self.failed
        elif not self.agrees:
            result = "checking"
        else:
            result = "decord ok" if self.passed(require_faster) else "decord ok, pyav faster"
        mean, p99, top = self.worst
        per = max(self.clips - 1, 1) / 1000
        return {
            "source": self.source,
            "size": self.size,
            "result": result,
            "clips": self.clips,
            "mean_diff": round(mean, 3),
            "p99_diff": round(p99, 1),
            "max_diff": round(top, 1),
            "pyav_ms": round(self.pyav_s / per, 2),
            "decord_ms": round(self.decord_s / per, 2),
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


def decode_stats(*, require_faster: bool = True) -> DecodeStats:
    """A snapshot of this process's decode statistics since the last reset
    (``require_faster``: the policy the pairs' results are stated under)."""
    with _lock:
        return DecodeStats(
            clips=dict(_counts),
            fallbacks=_fallbacks[0],
            fallback_reasons=[dict(r) for r in _fallback_reasons],
            checks=[p.as_check(require_faster) for p in _pairs.values()],
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
    decord_frames: np.ndarray, pyav_frames: np.ndarray, scaled: bool
) -> tuple[str | None, tuple[float, float, float]]:
    """``(why decord's frames do not match PyAV's or None, (mean, p99, max) difference)``."""
    if decord_frames.shape != pyav_frames.shape:
        return (
            f"mismatch: decord gave shape {decord_frames.shape}, pyav {pyav_frames.shape}",
            (math.inf, math.inf, math.inf),
        )
    if decord_frames.size == 0:
        return None, (0.0, 0.0, 0.0)
    diff = np.abs(decord_frames.astype(np.int16) - pyav_frames.astype(np.int16))
    mean, top = float(diff.mean()), float(diff.max())
    p99 = float(np.percentile(diff, 99))
    bad = mean > MAX_MEAN_DIFF or (p99 > MAX_P99_DIFF if scaled else top > MAX_DIFF)
    reason = f"mismatch: mean {mean:.2f}, p99 {p99:.0f}, max {top:.0f}" if bad else None
    return reason, (mean, p99, top)


def read_auto(
    pyav: PyAVVideoSource,
    decord: DecordVideoSource,
    size: int | None,
    path: str,
    idx: np.ndarray,
    clip_id: str | None,
    n_frames: int | None,
    *,
    require_faster: bool = True,
) -> np.ndarray:
    """Frames at ``idx`` of the video at ``path``, decoded by the backend ``auto`` trusts
    for the clip's (source size, ``size``) pair; checks decord while the pair is pending."""
    t0 = time.perf_counter()
    with pyav.open(path, clip_id) as video:
        t_open = time.perf_counter() - t0
        key = (video.width, video.height, size)
        with _lock:
            pair = _pairs.setdefault(key, _Pair(f"{video.width}x{video.height}", size))
        if not pair.passed(require_faster):
            frames = pyav.read_open(video, idx, n_frames)
            t_pyav = time.perf_counter() - t0
            if pair.pending and idx.size:
                scaled = size is not None and (size, size) != key[:2]
                _check(decord, pair, path, idx, clip_id, n_frames, frames, scaled, (t_open, t_pyav))
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
    scaled: bool,
    times: tuple[float, float],
) -> None:
    """Decode with decord too; record whether it matches PyAV's ``reference`` and the
    time each path takes (``times``: PyAV's open, PyAV's open + read)."""
    t0 = time.perf_counter()
    try:
        got = decord.read(path, idx, clip_id=clip_id, n_frames=n_frames)
        t_decord = time.perf_counter() - t0
    except FrameReadError as exc:
        failed: str | None = f"decord error: {exc.reason}"
        diff = (math.nan, math.nan, math.nan)
    else:
        failed, diff = compare_frames(got, reference, scaled)
    with _lock:
        pair.clips += 1
        if failed is None and pair.clips > 1:  # the first may pay for imports: untimed
            pair.pyav_s += times[1]
            pair.decord_s += times[0] + t_decord
        if all(math.isfinite(d) for d in diff):
            mean, p99, top = pair.worst
            pair.worst = (max(mean, diff[0]), max(p99, diff[1]), max(top, diff[2]))
        if failed and pair.failed is None:
            pair.failed = failed


__all__ = [
    "CHECK_CLIPS",
    "MAX_DIFF",
    "MAX_FALLBACK_REASONS",
    "MAX_MEAN_DIFF",
    "MAX_P99_DIFF",
    "DecodeStats",
    "compare_frames",
    "decode_stats",
    "read_auto",
    "reset_decode_stats",
]
