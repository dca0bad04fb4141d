"""Video frames decoded with decord (decord2): the fast path of the ``auto`` backend.

decord2 3.4 fails on some CPUs (seen on an AMD EPYC with AVX-512): ``get_batch`` raises
``DECORDArrayCopyFromTo: The size must exactly match`` for some source sizes decoded at
native size and for any source scaled to some sizes (32 and 48 px there), and frames it
does return are only trusted after the ``auto`` backend compared them with PyAV's (see
:mod:`emobench.video.frames`). Every failure is a :class:`FrameReadError` whose reason
starts with ``decord:``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
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

NAME = "decord"


def _fail(clip_id: str | None, path: str, reason: str) -> FrameReadError:
    return FrameReadError(clip_id, path, f"{NAME}: {reason}")


@functools.lru_cache(maxsize=1)
def _decord() -> tuple[Any, Any]:
    """decord's VideoReader and a CPU context, imported once on first use.

    torch, when installed, is imported first: decord loaded before torch lets a CUDA BLAS
    library take over torch's CPU matrix multiplies in the same process (segfaults seen
    here). Frame reading almost always precedes a model call, so the cost is not wasted.
    """
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (must precede decord, see above)
    from decord import VideoReader, cpu

    return VideoReader, cpu(0)


class DecordVideoSource:
    """Video files decoded with decord, one batched seek-and-decode per read.

    ``num_threads``: decoder threads (None: 1, measured faster than decord's automatic
    choice for small clips, and no oversubscription when workers decode in parallel; 0:
    decord/FFmpeg choose). ``size`` gives ``size x size`` frames, scaled by FFmpeg.
    """

    backend = NAME

    def __init__(self, size: int | None = None, num_threads: int | None = None) -> None:
        self.size = check_size(size)
        self.num_threads = 1 if num_threads is None else int(num_threads)

    def _open(self, path: str, clip_id: str | None, side: int | None = None) -> Any:
        """A decord reader for ``path`` (frames scaled to ``side x side`` when given)."""
        check_file(path, clip_id)
        try:
            reader_cls, ctx = _decord()
        except Exception as exc:
            raise _fail(clip_id, path, f"cannot be imported ({describe(exc)})") from None
        side = -1 if side is None else side
        try:
            return reader_cls(path, ctx=ctx, width=side, height=side, num_threads=self.num_threads)
        except AssertionError:  # decord asserts a positive frame count
            raise _fail(clip_id, path, "empty video (no frames)") from None
        except Exception as exc:
            raise _fail(clip_id, path, f"corrupt or undecodable video ({describe(exc)})") from None

    def read(
        self,
        path: str,
        indices: Sequence[int] | np.ndarray,
        *,
        clip_id: str | None = None,
        n_frames: int | None = None,
    ) -> np.ndarray:
        """Frames at ``indices`` in the requested order, uint8 ``(T, H, W, 3)`` RGB.

        One open and one batched decode of the sorted unique indices, then a gather.
        ``n_frames``: the frame count the caller expects; another count is an error.
        """
        path = os.fspath(path)
        idx = as_indices(indices, clip_id, path)
        vr = self._open(path, clip_id, self.size)
        n = len(vr)
        for reason in (count_reason(n_frames, n), range_reason(idx, n)):
            if reason:
                raise _fail(clip_id, path, reason)
        uniq, inverse = np.unique(idx, return_inverse=True)
        try:
            if idx.size == 0:
                h, w = (self.size, self.size) if self.size else vr[0].shape[:2]
                return np.empty((0, h, w, 3), dtype=np.uint8)
            batch = vr.get_batch(uniq).asnumpy()
        except Exception as exc:
            raise _fail(clip_id, path, f"decoding failed ({describe(exc)})") from None
        if batch.shape[0] != uniq.size:
            raise _fail(clip_id, path, f"returned {batch.shape[0]} frames for {uniq.size} indices")
        return gather(batch, uniq, inverse, idx)

    def count(self, path: str, *, clip_id: str | None = None) -> int:
        """Number of frames (as FFmpeg reports it)."""
        return len(self._open(os.fspath(path), clip_id))

    def fps(self, path: str, *, clip_id: str | None = None) -> float:
        """Average frames per second of the video."""
        return float(self._open(os.fspath(path), clip_id).get_avg_fps())

    def probe(self, path: str, *, clip_id: str | None = None) -> tuple[int, float]:
        """``(n_frames, fps)`` with one open."""
        vr = self._open(os.fspath(path), clip_id)
        return len(vr), float(vr.get_avg_fps())
