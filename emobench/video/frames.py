"""Frame sources: decode the frames a sampler picked, as uint8 RGB arrays ``(T, H, W, 3)``.

Two media kinds, one interface (:class:`FrameSource`), chosen by name through
:func:`open_source` (the clip index's ``media`` column):

- ``video`` -> :class:`VideoFrameSource`: decord, one batched ``get_batch`` per clip.
- ``frames`` -> :class:`FolderFrameSource`: a folder of JPEG/PNG images in frame-number order.

Indices may repeat and be unsorted: each source decodes the sorted unique set once and
gathers, so the result follows the requested order. Any failure (missing file, empty or
corrupt video, unreadable image, index out of range) becomes one :class:`FrameReadError`
that names the clip and the reason, never a raw decord/PIL traceback.

``size`` (optional) resizes every frame to ``size x size`` (square; the aspect ratio is not
kept). Face datasets ship square face-aligned crops and models take square inputs, so a
square resize during decoding (decord's ``width``/``height``, i.e. FFmpeg's scaler) is both
what the pipeline needs and the cheapest way to get it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emobench.errors import EmobenchError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


class FrameReadError(EmobenchError):
    """Frames of a clip could not be read; names the clip, its path and the reason."""

    def __init__(self, clip_id: str | None, path: str, reason: str) -> None:
        self.clip_id = clip_id
        self.path = str(path)
        self.reason = reason
        name = clip_id if clip_id is not None else os.path.basename(self.path.rstrip("/"))
        super().__init__(f"cannot read frames of clip {name!r} ({self.path}): {reason}")


class FrameSourceError(EmobenchError):
    """A frame source cannot be built: unknown media kind or a bad option."""


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


def _check_size(size: int | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise FrameSourceError(f"frame size must be a positive integer or None, got {size!r}")
    return int(size)


def _as_indices(indices: Sequence[int] | np.ndarray, clip_id: str | None, path: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise FrameReadError(clip_id, path, "frame indices must be a 1-D list of integers")
    return idx.astype(np.int64, copy=False)


def _check_range(idx: np.ndarray, n: int, clip_id: str | None, path: str) -> None:
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= n:
        bad = lo if lo < 0 else hi
        raise FrameReadError(
            clip_id, path, f"frame index {bad} out of range (clip has {n} frames: 0..{n - 1})"
        )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_file(path: str, clip_id: str | None) -> None:
    """Reject missing, non-file and empty paths with a precise reason before decoding."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FrameReadError(clip_id, path, "missing file") from None
    except OSError as exc:
        raise FrameReadError(clip_id, path, f"cannot access file ({_describe(exc)})") from None
    if not os.path.isfile(path):
        raise FrameReadError(clip_id, path, "expected a video file, found a folder or device")
    if st.st_size == 0:
        raise FrameReadError(clip_id, path, "empty file (0 bytes)")


@functools.lru_cache(maxsize=1)
def _decord() -> tuple[Any, Any]:
    """decord's VideoReader and a CPU context, imported once on first use.

    torch, when installed, is imported first: decord loaded before torch lets a CUDA BLAS
    library take over torch's CPU matrix multiplies in the same process (segfaults seen
    here). Frame reading almost always precedes a model call, so the cost is not wasted.
    """
    import torch  # noqa: F401  (must precede decord, see above)
    from decord import VideoReader, cpu

    return VideoReader, cpu(0)


# Output widths for which decord's resize fails with "DECORDArrayCopyFromTo: The size must
# exactly match" (decord2 3.4: 1, 2, 3, 4, 6, 8, 12, 16, 24, 48, 72 on every source tried;
# 112 and 224 work). Learned at run time, so a fixed decord simply never lands here.
_DECORD_BAD_SIDES: set[int] = set()


def _is_resize_bug(exc: BaseException) -> bool:
    return "DECORDArrayCopyFromTo" in str(exc)


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Bilinear square resize with PIL (fallback when decord cannot scale to ``size``)."""
    from PIL import Image

    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        img = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img)
    return out


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
    """Video files decoded with decord (FFmpeg), one batched seek-and-decode per read.

    ``num_threads=0`` lets decord/FFmpeg choose (decord's default); ``1`` is slightly
    faster for small clips and avoids oversubscription when many workers decode in
    parallel. ``size`` gives ``size x size`` frames, scaled by FFmpeg during decoding (or by
    PIL for the few sizes decord's scaler mishandles, see ``_DECORD_BAD_SIDES``).
    """

    def __init__(self, size: int | None = None, num_threads: int = 0) -> None:
        self.size = _check_size(size)
        self.num_threads = int(num_threads)

    def _open(self, path: str, clip_id: str | None, side: int | None = None) -> Any:
        """A decord reader for ``path`` (frames scaled to ``side x side`` when given)."""
        _check_file(path, clip_id)
        reader_cls, ctx = _decord()
        side = -1 if side is None else side
        try:
            return reader_cls(path, ctx=ctx, width=side, height=side, num_threads=self.num_threads)
        except AssertionError:  # decord asserts a positive frame count
            raise FrameReadError(clip_id, path, "empty video (no frames)") from None
        except Exception as exc:
            raise FrameReadError(
                clip_id, path, f"corrupt or undecodable video ({_describe(exc)})"
            ) from None

    def read(
        self, path: str, indices: Sequence[int] | np.ndarray, *, clip_id: str | None = None
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB.

        One open and one batched decode of the sorted unique indices, then a gather.
        """
        path = os.fspath(path)
        idx = _as_indices(indices, clip_id, path)
        size = self.size
        side = None if size in _DECORD_BAD_SIDES else size  # None: decode at native size
        vr = self._open(path, clip_id, side)
        if idx.size == 0:
            h, w = (size, size) if size is not None else vr[0].shape[:2]
            return np.empty((0, h, w, 3), dtype=np.uint8)
        _check_range(idx, len(vr), clip_id, path)
        uniq, inverse = np.unique(idx, return_inverse=True)
        try:
            batch = vr.get_batch(uniq).asnumpy()
        except Exception as exc:
            if side is None or not _is_resize_bug(exc):
                raise FrameReadError(clip_id, path, f"decoding failed ({_describe(exc)})") from None
            _DECORD_BAD_SIDES.add(side)
            return self.read(path, indices, clip_id=clip_id)  # now at native size + PIL
        if size is not None and side is None:
            batch = _resize_frames(batch, size)
        if batch.shape[0] != uniq.size:
            raise FrameReadError(
                clip_id, path, f"decoder returned {batch.shape[0]} frames for {uniq.size} indices"
            )
        if uniq.size == idx.size and np.array_equal(uniq, idx):
            return batch  # already sorted and unique: no gather copy
        return batch[inverse.reshape(-1)]

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of frames (as FFmpeg reports it)."""
        return len(self._open(os.fspath(path), clip_id))

    def fps(self, path: str, *, clip_id: str | None = None) -> float:
        """Average frames per second of the video."""
        return float(self._open(os.fspath(path), clip_id).get_avg_fps())

    def probe(self, path: str, *, clip_id: str | None = None) -> tuple[int, float]:
        """``(n_frames, fps)`` with one open: what a dataset loader needs for the clip index."""
        vr = self._open(os.fspath(path), clip_id)
        return len(vr), float(vr.get_avg_fps())


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
    with 3 channels.
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = _check_size(size)

    def _files(self, path: str, clip_id: str | None) -> tuple[tuple[int | None, str], ...]:
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FrameReadError(clip_id, path, "missing folder") from None
        except OSError as exc:
            raise FrameReadError(
                clip_id, path, f"cannot access folder ({_describe(exc)})"
            ) from None
        if not os.path.isdir(path):
            raise FrameReadError(clip_id, path, "expected a folder of frame images, found a file")
        try:
            files = _list_images(path, st.st_mtime_ns)
        except OSError as exc:
            raise FrameReadError(clip_id, path, f"cannot list folder ({_describe(exc)})") from None
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
                clip_id, path, f"cannot decode image {name!r} ({_describe(exc)})"
            ) from None

    def read(
        self, path: str, indices: Sequence[int] | np.ndarray, *, clip_id: str | None = None
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB."""
        idx = _as_indices(indices, clip_id, path)
        files = self._files(path, clip_id)
        if idx.size == 0:
            h, w = self._load(path, files[0][1], clip_id).shape[:2]
            return np.empty((0, h, w, 3), dtype=np.uint8)
        _check_range(idx, len(files), clip_id, path)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = [self._load(path, files[i][1], clip_id) for i in uniq.tolist()]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise FrameReadError(
                clip_id, path, f"frames differ in size {sorted(shapes)}; pass size= to resize"
            )
        batch = np.stack(frames)
        if uniq.size == idx.size and np.array_equal(uniq, idx):
            return batch
        return batch[inverse.reshape(-1)]

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of images in the folder."""
        return len(self._files(path, clip_id))

    def frame_numbers(self, path: str, *, clip_id: str | None = None) -> list[int]:
        """The frame number in each image's name, in index order (``[i] -> number``)."""
        return [num for num, _ in self._files(path, clip_id)]  # type: ignore[misc]


def open_source(media: str, *, size: int | None = None, **options: Any) -> FrameSource:
    """A frame source for a media kind (``video`` or ``frames``), by registry name."""
    factory = FRAME_SOURCES.get(media)
    if factory is None:
        raise FrameSourceError(
            f"unknown media kind {media!r}; allowed: {', '.join(sorted(FRAME_SOURCES))}"
        )
    return factory(size=size, **options)


@functools.lru_cache(maxsize=64)
def _shared_source(media: str, size: int | None) -> FrameSource:
    return open_source(media, size=size)


def read_clip(
    row: Mapping[str, Any], indices: Sequence[int] | np.ndarray, size: int | None = None
) -> np.ndarray:
    """Frames of one clip-index row (columns ``path``, ``media``, ``clip_id``)."""
    clip_id = row.get("clip_id")
    path = row.get("path")
    media = row.get("media")
    if path is None or media is None:
        raise FrameReadError(
            None if clip_id is None else str(clip_id),
            str(path),
            "clip-index row lacks a 'path' or 'media' value",
        )
    if media not in FRAME_SOURCES:
        raise FrameReadError(
            None if clip_id is None else str(clip_id),
            str(path),
            f"unknown media kind {media!r}; allowed: {', '.join(sorted(FRAME_SOURCES))}",
        )
    source = _shared_source(str(media), _check_size(size))
    return source.read(str(path), indices, clip_id=None if clip_id is None else str(clip_id))
