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
- ``auto`` (default): PyAV's exact pixels, decoded by decord where its frames were
  bit-identical to PyAV's on the first :data:`CHECK_CLIPS` clips of a (source ``WxH``,
  output size) pair, else by PyAV; no timing enters the decision
  (:mod:`~emobench.video.auto`, re-exported here).

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emobench.registry import Registry, unknown_message
from emobench.video import auto
from emobench.video._common import (
    FrameReadError,
    FrameSourceError,
    as_indices,
    check_size,
    describe,
    gather,
    range_reason,
)
from emobench.video.auto import (  # noqa: F401  (re-exported: the auto backend's checks)
    CHECK_CLIPS,
    MAX_FALLBACK_REASONS,
    DecodeStats,
    _count,
    _note_fallback,
    compare_frames,
    decode_stats,
    frame_identity,
    reset_decode_stats,
)
from emobench.video.decord_source import DecordVideoSource
from emobench.video.pyav_source import PyAVVideoSource

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")

#: Values of the ``backend`` option: ``auto`` and the concrete decoders.
BACKENDS = ("auto", "pyav", "decord")


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
        raise FrameSourceError(unknown_message("video backend", backend, BACKENDS))
    if backend != "auto" and backend not in available_backends():
        raise FrameSourceError(
            f"video backend {backend!r} is not installed here; "
            f"available: {', '.join(['auto', *available_backends()])}"
        )
    return backend


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


#: Frame sources by media kind (the clip index's ``media`` column).
FRAME_SOURCES: Registry[Callable[..., FrameSource]] = Registry("media kind", error=FrameSourceError)


def register_frame_source(name: str) -> Callable[[type], type]:
    """Class decorator: make a frame source available to :func:`open_source` by media name."""
    return FRAME_SOURCES.register(name)


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
            idx = as_indices(indices, clip_id, path)
            return auto.read_auto(
                self._pyav,
                self._decord,
                self.size,
                path,
                idx,
                clip_id,
                n_frames,
            )
        source = self._decord if self.backend == "decord" else self._pyav
        assert source is not None
        frames = source.read(path, indices, clip_id=clip_id, n_frames=n_frames)
        _count(source.backend)
        return frames

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


#: Frame folders decode images on a thread pool when a read needs at least this many
#: (fewer do not pay for the hand-off; see ``benchmarks/bench_frames.py``).
PARALLEL_MIN_FRAMES = 4
#: Threads of that pool when ``FolderFrameSource(threads=None)``: the CPUs, at most 4.
MAX_IMAGE_THREADS = 4
_POOLS: dict[tuple[int, int], Any] = {}


def _image_pool(threads: int | None) -> Any:
    """The shared image-decoding thread pool of this process (None: one thread).

    Keyed by process id too: a pool inherited through ``fork`` has no threads behind it.
    """
    n = min(MAX_IMAGE_THREADS, os.cpu_count() or 1) if threads is None else threads
    if n <= 1:
        return None
    key = (os.getpid(), n)
    pool = _POOLS.get(key)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = _POOLS[key] = ThreadPoolExecutor(n, thread_name_prefix="emobench-images")
    return pool


@register_frame_source("frames")
class FolderFrameSource:
    """Folders of JPEG/PNG frames ordered by the frame number in each file name.

    Frame index ``i`` is the ``i``-th image in that order (0-based); :meth:`frame_numbers`
    maps indices back to the numbers in the file names, for datasets (CASME II, SAMM)
    whose annotations use them. Images are converted to RGB, so greyscale frames come out
    with 3 channels. ``backend`` (a video option) is accepted and ignored: images are read
    by PIL whatever the video backend.

    Only the requested frames are decoded. With ``size``, a JPEG is decoded at the smallest
    DCT scale (1/2, 1/4, 1/8) that is still at least ``size`` (PIL's ``draft``) and then
    resized exactly (bilinear), which is both faster and within a few grey levels of
    resizing the full decode. A read of :data:`PARALLEL_MIN_FRAMES` frames or more decodes
    them on a small shared thread pool (``threads``: its size; None: the CPUs, at most
    :data:`MAX_IMAGE_THREADS`; 1: no pool).
    """

    def __init__(
        self, size: int | None = None, backend: str = "auto", threads: int | None = None
    ) -> None:
        self.size = check_size(size)
        _check_backend(backend)
        if threads is not None and threads < 1:
            raise FrameSourceError(f"threads must be >= 1 (or None: automatic), got {threads}")
        self.threads = threads

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
                if self.size is not None and im.format == "JPEG":
                    # decode at the smallest DCT scale (1/2, 1/4, 1/8) still >= size
                    im.draft("RGB", (self.size, self.size))
                im.load()
                rgb = im if im.mode == "RGB" else im.convert("RGB")  # no copy when RGB
                if self.size is not None and rgb.size != (self.size, self.size):
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
        names = [files[i][1] for i in uniq.tolist()]
        # frames go straight into one preallocated batch (np.stack of many fresh arrays
        # costs about a third of the decode time here)
        first = self._load(path, names[0], clip_id)
        batch = np.empty((len(names), *first.shape), dtype=np.uint8)
        batch[0] = first
        shapes = {first.shape}

        def load(ks: Sequence[int]) -> None:
            for k in ks:
                frame = self._load(path, names[k], clip_id)
                if frame.shape == first.shape:
                    batch[k] = frame
                else:
                    shapes.add(frame.shape)

        rest = range(1, len(names))
        pool = _image_pool(self.threads) if len(names) >= PARALLEL_MIN_FRAMES else None
        if pool is None:
            load(rest)
        else:  # PIL releases the GIL while decoding; one chunk per thread, this one included
            n = pool._max_workers
            futures = [pool.submit(load, rest[j::n]) for j in range(1, n)]
            load(rest[0::n])
            for future in futures:
                future.result()
        if len(shapes) > 1:
            raise FrameReadError(
                clip_id, path, f"frames differ in size {sorted(shapes)}; pass size= to resize"
            )
        _count("images")
        return gather(batch, uniq, inverse, idx)

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
    return FRAME_SOURCES[media](size=size, backend=backend, **options)


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
        raise FrameReadError(clip_id, str(path), FRAME_SOURCES.message(media))
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
    "frame_identity",
    "frame_number",
    "open_source",
    "read_clip",
    "register_frame_source",
    "reset_decode_stats",
]
