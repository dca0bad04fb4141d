"""Video frames decoded with PyAV (the FFmpeg bundled in its wheel): the reference backend.

One read = one open, a decode loop that stops at the last needed frame, and a conversion
(and scaling, inside FFmpeg's swscale) of only the needed frames. Frame index ``i`` is the
``i``-th frame the decoder outputs (presentation order), as in decord.

Speed choices, measured with ``benchmarks/bench_frames.py`` on small clips (112 px,
50-70 frames): one decoder thread (``num_threads=1``) is about 1.5x faster than FFmpeg's
frame/slice threading, whose start-up and hand-offs cost more than such frames take to
decode, and one swscale thread beats swscale's automatic threading for the same reason.
One :class:`~av.video.reformatter.VideoReformatter` per thread keeps FFmpeg's scaler context
between frames and clips instead of building one per frame.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from emobench.video._common import (
    FrameReadError,
    as_indices,
    check_file,
    check_size,
    count_reason,
    describe,
    gather,
    range_reason,
)

NAME = "pyav"

#: Decoder threads unless told otherwise (1 is fastest for small clips, see the module doc).
DEFAULT_THREADS = 1

#: swscale's algorithm for ``size``: bicubic, FFmpeg's ``scale`` filter default (and so what
#: decord uses); the two backends then differ by rounding only.
INTERPOLATION = "BICUBIC"

_local = threading.local()


def _reformatter() -> Any:
    fmt = getattr(_local, "reformatter", None)
    if fmt is None:
        from av.video.reformatter import VideoReformatter

        fmt = _local.reformatter = VideoReformatter()
    return fmt


def _fail(clip_id: str | None, path: str, reason: str) -> FrameReadError:
    return FrameReadError(clip_id, path, f"{NAME}: {reason}")


@dataclass
class OpenVideo:
    """An open container and its video stream, with what the header says about it."""

    container: Any
    stream: Any
    path: str
    clip_id: str | None
    width: int
    height: int
    header_frames: int  # the container's frame count; 0 when it does not say
    fps: float


class PyAVVideoSource:
    """Video files decoded with PyAV; ``size`` gives ``size x size`` frames (FFmpeg-scaled).

    ``num_threads``: decoder threads (None: :data:`DEFAULT_THREADS`; 0: FFmpeg decides).
    """

    backend = NAME

    def __init__(self, size: int | None = None, num_threads: int | None = None) -> None:
        self.size = check_size(size)
        self.num_threads = DEFAULT_THREADS if num_threads is None else int(num_threads)
        from av.video.reformatter import Interpolation

        self._interpolation = Interpolation[INTERPOLATION]

    @contextmanager
    def open(self, path: str, clip_id: str | None = None) -> Iterator[OpenVideo]:
        """The opened video (FrameReadError naming pyav when it cannot be opened)."""
        import av

        path = os.fspath(path)
        check_file(path, clip_id)
        try:
            container = av.open(path)
        except Exception as exc:
            raise _fail(clip_id, path, f"corrupt or undecodable video ({describe(exc)})") from None
        try:
            if not container.streams.video:
                raise _fail(clip_id, path, "corrupt or undecodable video (no video stream)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.num_threads
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            yield OpenVideo(
                container=container,
                stream=stream,
                path=path,
                clip_id=clip_id,
                width=int(stream.codec_context.width),
                height=int(stream.codec_context.height),
                header_frames=max(int(stream.frames or 0), 0),
                fps=float(rate),
            )
        finally:
            container.close()

    def _convert(self, frame: Any) -> np.ndarray:
        size = self.size
        rgb = _reformatter().reformat(
            frame,
            width=size,
            height=size,
            format="rgb24",
            interpolation=self._interpolation if size is not None else None,
            threads=1,
        )
        return rgb.to_ndarray()

    def _decode(self, video: OpenVideo, wanted: list[int], to_end: bool) -> tuple[list, int]:
        """Frames at the sorted unique ``wanted`` indices, and how many frames were decoded
        (all of them when ``to_end``, else up to the last wanted one)."""
        out: list[np.ndarray] = []
        j, last, n = 0, (wanted[-1] if wanted else -1), 0
        try:
            for frame in video.container.decode(video.stream):
                if j < len(wanted) and n == wanted[j]:
                    out.append(self._convert(frame))
                    j += 1
                n += 1
                if n > last and not to_end:
                    break
        except Exception as exc:
            raise _fail(video.clip_id, video.path, f"decoding failed ({describe(exc)})") from None
        return out, n

    def frame_count(self, video: OpenVideo) -> int:
        """Frames in the video: the container's count, or a decode-and-count when it has none."""
        if video.header_frames:
            return video.header_frames
        n = self._decode(video, [], to_end=True)[1]
        if n == 0:
            raise _fail(video.clip_id, video.path, "empty video (no frames)")
        return n

    def read_open(
        self, video: OpenVideo, idx: np.ndarray, n_frames: int | None = None
    ) -> np.ndarray:
        """Frames at ``idx`` (int64, requested order) of an opened video, uint8 (T, H, W, 3).

        ``n_frames``: the frame count the caller expects (an annotation); a video with
        another count is a FrameReadError.
        """
        n = video.header_frames
        fail = (video.clip_id, video.path)
        for reason in (count_reason(n_frames, n), range_reason(idx, n)) if n else ():
            if reason:
                raise _fail(*fail, reason)
        if idx.size == 0:
            if not n and n_frames is not None:  # count (decode) to check the annotation
                reason = count_reason(n_frames, self.frame_count(video))
                if reason:
                    raise _fail(*fail, reason)
            side = (self.size, self.size) if self.size else (video.height, video.width)
            return np.empty((0, *side, 3), dtype=np.uint8)
        uniq, inverse = np.unique(idx, return_inverse=True)
        wanted = uniq.tolist()
        frames, decoded = self._decode(video, wanted, to_end=not n)
        if not n:  # the container did not say: the decode counted
            if decoded == 0:
                raise _fail(*fail, "empty video (no frames)")
            for reason in (count_reason(n_frames, decoded), range_reason(idx, decoded)):
                if reason:
                    raise _fail(*fail, reason)
        if len(frames) < len(wanted):
            if decoded == 0:
                raise _fail(*fail, "empty video (no frames)")
            raise _fail(
                *fail,
                f"fewer frames decoded than requested: the decoder stopped after {decoded} "
                f"frames (the container says {n}), frame {wanted[len(frames)]} requested",
            )
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise _fail(*fail, f"frames differ in size {sorted(shapes)}; pass size= to resize")
        return gather(np.stack(frames), uniq, inverse, idx)

    def read(
        self,
        path: str,
        indices: Sequence[int] | np.ndarray,
        *,
        clip_id: str | None = None,
        n_frames: int | None = None,
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB."""
        path = os.fspath(path)
        idx = as_indices(indices, clip_id, path)
        with self.open(path, clip_id) as video:
            return self.read_open(video, idx, n_frames)

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of frames (the container's count, else decoded and counted)."""
        with self.open(path, clip_id) as video:
            return self.frame_count(video)

    def fps(self, path: str, *, clip_id: str | None = None) -> float:
        """Average frames per second of the video."""
        with self.open(path, clip_id) as video:
            return video.fps

    def probe(self, path: str, *, clip_id: str | None = None) -> tuple[int, float]:
        """``(n_frames, fps)`` with one open: what a dataset loader needs for the clip index."""
        with self.open(path, clip_id) as video:
            return self.frame_count(video), video.fps

    def dims(self, path: str, *, clip_id: str | None = None) -> tuple[int, int]:
        """``(width, height)`` of the video's frames as stored."""
        with self.open(path, clip_id) as video:
            return video.width, video.height
