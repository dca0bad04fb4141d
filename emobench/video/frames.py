"""Frame sources: decode the frames a sampler picked, as uint8 RGB arrays ``(T, H, W, 3)``.

Two media kinds, one interface (:class:`FrameSource`), chosen by name through
:func:`open_source` (the clip index's ``media`` column):

- ``video`` -> :class:`VideoFrameSource`: video files, decoded by a backend (below).
- ``frames`` -> :class:`FolderFrameSource`: a folder of JPEG/PNG images in frame-number order.

Video backends (:data:`BACKENDS`, the ``backend`` option):

- ``pyav`` (:mod:`~emobench.video.pyav_source`): PyAV, the FFmpeg bundled in its wheel. The
  reference: it decodes every size on every CPU tried.
- ``decord`` (:mod:`~emobench.video.decord_source`): decord2, a fast path that fails on some
  CPUs (``DECORDArrayCopyFromTo`` for some sizes) and is not trusted blindly.
- ``auto`` (default): decord where it was seen to agree with PyAV and to be faster, else
  PyAV. Per process, a table of (source ``WxH``, output size) pairs: the first
  :data:`CHECK_CLIPS` clips of a new pair are decoded by both, compared
  (:data:`MAX_MEAN_DIFF`, :data:`MAX_DIFF`, :data:`MAX_P99_DIFF`) and timed; PyAV's frames
  are returned meanwhile. A pair whose checks all passed and where decord (plus the PyAV
  open that finds a clip's pair) took less time than PyAV uses decord from then on; one
  that failed (decord error or mismatch) or where PyAV was as fast uses PyAV. A decord
  error on a clip of a decord pair falls back to PyAV for that clip.

What was decoded how is counted in :func:`decode_stats` (for the run manifest).

Indices may repeat and be unsorted: each source decodes the sorted unique set once and
gathers, so the result follows the requested order. Frame ``i`` is the ``i``-th decoded
frame (presentation order) in every backend. Any failure (missing file, empty or corrupt
video, unreadable image, index out of range, fewer frames than the container or the
annotation says) becomes one :class:`FrameReadError` that names the clip and the reason (a
video reason names the decoder, e.g. ``pyav: corrupt or undecodable video (...)``), never a
raw decoder/PIL traceback.

``size`` (optional) resizes every frame to ``size x size`` (square; the aspect ratio is not
kept). Face datasets ship square face-aligned crops and models take square inputs, so a
square resize during decoding (FFmpeg's scaler, bicubic) is both what the pipeline needs
and the cheapest way to get it.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emobench.video._common import (
    FrameReadError,
    FrameSourceError,
    as_indices,
    check_size,
    describe,
    gather,
    range_reason,
)
from emobench.video.decord_source import DecordVideoSource
from emobench.video.pyav_source import PyAVVideoSource

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")

#: Values of the ``backend`` option: ``auto`` and the concrete decoders.
BACKENDS = ("auto", "pyav", "decord")

#: Clips of a (source size, output size) pair that ``auto`` decodes with both backends
#: before it trusts decord for the pair.
CHECK_CLIPS = 3
#: ``auto`` uses decord for a pair only when it was also faster than PyAV in the checks
#: (tests switch this off to exercise the agreement logic alone).
REQUIRE_FASTER = True
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


@functools.cache
def _installed() -> tuple[str, ...]:
    return tuple(
        name
        for name, module in (("pyav", "av"), ("decord", "decord"))
        if importlib.util.find_spec(module) is not None
    )


def available_backends() -> list[str]:
    """The concrete backends installed here, reference first: ``["pyav", "decord"]``
    (``["pyav"]`` without decord)."""
    return list(_installed())


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise FrameSourceError(f"unknown video backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend != "auto" and backend not in available_backends():
        raise FrameSourceError(
            f"video backend {backend!r} is not installed here; "
            f"available: {', '.join(['auto', *available_backends()])}"
        )
    return backend


# ------------------------------------------------------------------ decode statistics


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

    @property
    def passed(self) -> bool:
        """decord agrees with PyAV and is faster: ``auto`` uses decord for this pair."""
        return self.agrees and (not REQUIRE_FASTER or self.decord_s < self.pyav_s)

    @property
    def pending(self) -> bool:
        return self.failed is None and self.clips < CHECK_CLIPS

    def as_check(self) -> dict[str, Any]:
        if self.failed:
            result = self.failed
        elif not self.agrees:
            result = "checking"
        else:
            result = "decord ok" if self.passed else "decord ok, pyav faster"
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


@runtime_checkable
class FrameSource(Protocol):
    """Reads frames of one clip stored at ``path``."""

    def read(
        self, path: str, indices: Sequence[int] | np.ndarray, *, clip_id: str | None = None
    ) -> np.ndarray:
        """Frames at ``indices`` (requested order) as uint8 ``(T, H, W, 3)`` RGB."""
        ...

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of frames in the clip."""
        ...


FRAME_SOURCES: dict[str, Callable[..., FrameSource]] = {}


def register_frame_source(name: str) -> Callable[[type], type]:
    """Class decorator: make a frame source available to :func:`open_source` by media name."""

    def deco(cls: type) -> type:
        FRAME_SOURCES[name] = cls
        return cls

    return deco


def centre_crop(frames: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` × ``side`` pixels of frames (..., H, W, C), as a view.

    Frames no larger than ``side`` in either dimension (or ``side`` 0) come back unchanged.
    """
    h, w = frames.shape[-3:-1]
    if not side or min(h, w) <= side:
        return frames
    top, left = (h - side) // 2, (w - side) // 2
    return frames[..., top : top + side, left : left + side, :]


@register_frame_source("video")
class VideoFrameSource:
    """Video files decoded by ``backend`` (``auto``, ``pyav`` or ``decord``, see above).

    ``size`` gives ``size x size`` frames, scaled by FFmpeg during decoding.
    ``num_threads``: decoder threads (None: 1, measured the fastest for small clips with
    either backend, see ``benchmarks/bench_frames.py``; 0: FFmpeg decides).
    """

    def __init__(
        self, size: int | None = None, backend: str = "auto", num_threads: int | None = None
    ) -> None:
        self.size = check_size(size)
        self.backend = _check_backend(backend)
        self.num_threads = num_threads
        self._pyav = PyAVVideoSource(self.size, num_threads)
        use_decord = backend == "decord" or (backend == "auto" and "decord" in available_backends())
        self._decord = DecordVideoSource(self.size, num_threads) if use_decord else None

    def read(
        self,
        path: str,
        indices: Sequence[int] | np.ndarray,
        *,
        clip_id: str | None = None,
        n_frames: int | None = None,
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB.

        ``n_frames``: the frame count the caller expects (e.g. the clip index's); a video
        with another count is a FrameReadError.
        """
        path = os.fspath(path)
        if self.backend == "auto" and self._decord is not None:
            return self._read_auto(path, indices, clip_id, n_frames)
        source = self._decord if self.backend == "decord" else self._pyav
        assert source is not None
        frames = source.read(path, indices, clip_id=clip_id, n_frames=n_frames)
        _count(source.backend)
        return frames

    def _read_auto(
        self,
        path: str,
        indices: Sequence[int] | np.ndarray,
        clip_id: str | None,
        n_frames: int | None,
    ) -> np.ndarray:
        assert self._decord is not None
        idx = as_indices(indices, clip_id, path)
        t0 = time.perf_counter()
        with self._pyav.open(path, clip_id) as video:
            t_open = time.perf_counter() - t0
            key = (video.width, video.height, self.size)
            with _lock:
                pair = _pairs.setdefault(key, _Pair(f"{video.width}x{video.height}", self.size))
            if not pair.passed:
                frames = self._pyav.read_open(video, idx, n_frames)
                t_pyav = time.perf_counter() - t0
                if pair.pending and idx.size:
                    scaled = self.size is not None and (self.size, self.size) != key[:2]
                    self._check(
                        pair, path, idx, clip_id, n_frames, frames, scaled, (t_open, t_pyav)
                    )
                _count("pyav")
                return frames
        try:
            frames = self._decord.read(path, idx, clip_id=clip_id, n_frames=n_frames)
        except FrameReadError as exc:
            frames = self._pyav.read(path, idx, clip_id=clip_id, n_frames=n_frames)
            _note_fallback(clip_id if clip_id is not None else path, exc.reason)
            _count("pyav")
            return frames
        _count("decord")
        return frames

    def _check(
        self,
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
        assert self._decord is not None
        t0 = time.perf_counter()
        try:
            got = self._decord.read(path, idx, clip_id=clip_id, n_frames=n_frames)
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

    def _info_source(self) -> PyAVVideoSource | DecordVideoSource:
        if self.backend == "decord":
            assert self._decord is not None
            return self._decord
        return self._pyav

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of frames (the container's count; decoded and counted when it has none)."""
        return self._info_source().count(os.fspath(path), clip_id=clip_id)

    def fps(self, path: str, *, clip_id: str | None = None) -> float:
        """Average frames per second of the video."""
        return self._info_source().fps(os.fspath(path), clip_id=clip_id)

    def probe(self, path: str, *, clip_id: str | None = None) -> tuple[int, float]:
        """``(n_frames, fps)`` with one open: what a dataset loader needs for the clip index."""
        return self._info_source().probe(os.fspath(path), clip_id=clip_id)


def frame_number(name: str) -> int | None:
    """The frame number in an image file name: the last integer of its stem, or None.

    ``12.jpg`` -> 12, ``img10.jpg`` -> 10, ``reg_img3.jpg`` -> 3, ``006_1_2_0123.jpg`` -> 123.
    """
    m = _LAST_INT.search(os.path.splitext(name)[0])
    return int(m.group(1)) if m else None


@functools.lru_cache(maxsize=4096)
def _list_images(path: str, mtime_ns: int) -> tuple[tuple[int | None, str], ...]:
    """(frame number, file name) of the images in a folder, in frame-number order.

    Cached by the folder's modification time, which changes when files are added/removed.
    Files without a number sort last (the caller rejects them).
    """
    names = [
        e.name
        for e in os.scandir(path)
        if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
    ]
    items = [(frame_number(n), n) for n in names]
    items.sort(key=lambda t: (t[0] is None, t[0] if t[0] is not None else 0, t[1]))
    return tuple(items)


@register_frame_source("frames")
class FolderFrameSource:
    """Folders of JPEG/PNG frames ordered by the frame number in each file name.

    Frame index ``i`` is the ``i``-th image in that order (0-based); :meth:`frame_numbers`
    maps indices back to the numbers in the file names, for datasets (CASME II, SAMM)
    whose annotations use them. Images are converted to RGB, so greyscale frames come out
    with 3 channels. ``backend`` (a video option) is accepted and ignored: images are read
    by PIL whatever the video backend.
    """

    def __init__(self, size: int | None = None, backend: str = "auto") -> None:
        self.size = check_size(size)
        _check_backend(backend)

    def _files(self, path: str, clip_id: str | None) -> tuple[tuple[int | None, str], ...]:
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FrameReadError(clip_id, path, "missing folder") from None
        except OSError as exc:
            raise FrameReadError(clip_id, path, f"cannot access folder ({describe(exc)})") from None
        if not os.path.isdir(path):
            raise FrameReadError(clip_id, path, "expected a folder of frame images, found a file")
        try:
            files = _list_images(path, st.st_mtime_ns)
        except OSError as exc:
            raise FrameReadError(clip_id, path, f"cannot list folder ({describe(exc)})") from None
        if not files:
            exts = "/".join(sorted(IMAGE_EXTENSIONS))
            raise FrameReadError(clip_id, path, f"no images ({exts}) in folder")
        if files[-1][0] is None:
            raise FrameReadError(
                clip_id, path, f"image {files[-1][1]!r} has no frame number in its name"
            )
        return files

    def _load(self, path: str, name: str, clip_id: str | None) -> np.ndarray:
        from PIL import Image

        fp = os.path.join(path, name)
        try:
            with Image.open(fp) as im:
                rgb = im.convert("RGB")
            if self.size is not None:
                rgb = rgb.resize((self.size, self.size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
        except Exception as exc:
            raise FrameReadError(
                clip_id, path, f"cannot decode image {name!r} ({describe(exc)})"
            ) from None

    def read(
        self, path: str, indices: Sequence[int] | np.ndarray, *, clip_id: str | None = None
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB."""
        idx = as_indices(indices, clip_id, path)
        files = self._files(path, clip_id)
        if idx.size == 0:
            h, w = self._load(path, files[0][1], clip_id).shape[:2]
            return np.empty((0, h, w, 3), dtype=np.uint8)
        reason = range_reason(idx, len(files))
        if reason:
            raise FrameReadError(clip_id, path, reason)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = [self._load(path, files[i][1], clip_id) for i in uniq.tolist()]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise FrameReadError(
                clip_id, path, f"frames differ in size {sorted(shapes)}; pass size= to resize"
            )
        _count("images")
        return gather(np.stack(frames), uniq, inverse, idx)

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of images in the folder."""
        return len(self._files(path, clip_id))

    def frame_numbers(self, path: str, *, clip_id: str | None = None) -> list[int]:
        """The frame number in each image's name, in index order (``[i] -> number``)."""
        return [num for num, _ in self._files(path, clip_id)]  # type: ignore[misc]


def open_source(
    media: str, *, size: int | None = None, backend: str = "auto", **options: Any
) -> FrameSource:
    """A frame source for a media kind (``video`` or ``frames``), by registry name.

    ``backend`` picks the video decoder; frame folders ignore it (images are read by PIL).
    """
    factory = FRAME_SOURCES.get(media)
    if factory is None:
        raise FrameSourceError(
            f"unknown media kind {media!r}; allowed: {', '.join(sorted(FRAME_SOURCES))}"
        )
    return factory(size=size, backend=backend, **options)


@functools.lru_cache(maxsize=64)
def _shared_source(media: str, size: int | None, backend: str) -> FrameSource:
    return open_source(media, size=size, backend=backend)


def _expected_frames(value: Any) -> int | None:
    """The clip index's ``n_frames`` as an int, or None when absent or null."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if math.isnan(value):
            return None
    except TypeError:
        return None
    return int(value)


def read_clip(
    row: Mapping[str, Any],
    indices: Sequence[int] | np.ndarray,
    size: int | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Frames of one clip-index row (columns ``path``, ``media``, ``clip_id`` and, for
    videos, ``n_frames`` when known: a video with another frame count is an error).

    ``backend``: the video decoder (:data:`BACKENDS`); frame folders ignore it.
    """
    clip_id = row.get("clip_id")
    clip_id = None if clip_id is None else str(clip_id)
    path = row.get("path")
    media = row.get("media")
    if path is None or media is None:
        raise FrameReadError(clip_id, str(path), "clip-index row lacks a 'path' or 'media' value")
    if media not in FRAME_SOURCES:
        raise FrameReadError(
            clip_id,
            str(path),
            f"unknown media kind {media!r}; allowed: {', '.join(sorted(FRAME_SOURCES))}",
        )
    source = _shared_source(str(media), check_size(size), _check_backend(backend))
    if isinstance(source, VideoFrameSource):
        n_frames = _expected_frames(row.get("n_frames"))
        return source.read(str(path), indices, clip_id=clip_id, n_frames=n_frames)
    return source.read(str(path), indices, clip_id=clip_id)


__all__ = [
    "BACKENDS",
    "FRAME_SOURCES",
    "DecodeStats",
    "FolderFrameSource",
    "FrameReadError",
    "FrameSource",
    "FrameSourceError",
    "VideoFrameSource",
    "available_backends",
    "centre_crop",
    "decode_stats",
    "frame_number",
    "open_source",
    "read_clip",
    "register_frame_source",
    "reset_decode_stats",
]
