"""What every frame source shares: the two error types and small argument checks.

Re-exported by :mod:`emobench.video.frames` (the public import path); the decoder modules
(:mod:`~emobench.video.pyav_source`, :mod:`~emobench.video.decord_source`) import from here
so that they do not depend on the dispatcher.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from emobench.errors import EmobenchError


class FrameReadError(EmobenchError):
    """Frames of a clip could not be read; names the clip, its path and the reason."""

    def __init__(self, clip_id: str | None, path: str, reason: str) -> None:
        self.clip_id = clip_id
        self.path = str(path)
        self.reason = reason
        name = clip_id if clip_id is not None else os.path.basename(self.path.rstrip("/"))
        super().__init__(f"cannot read frames of clip {name!r} ({self.path}): {reason}")


class FrameSourceError(EmobenchError):
    """A frame source cannot be built: unknown media kind, backend or a bad option."""


def check_size(size: int | None) -> int | None:
    """``size`` as an int (a positive square side) or None; FrameSourceError otherwise."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise FrameSourceError(f"frame size must be a positive integer or None, got {size!r}")
    return int(size)


def as_indices(indices: Sequence[int] | np.ndarray, clip_id: str | None, path: str) -> np.ndarray:
    """Frame indices as a 1-D int64 array; FrameReadError for anything else."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise FrameReadError(clip_id, path, "frame indices must be a 1-D list of integers")
    return idx.astype(np.int64, copy=False)


def range_reason(idx: np.ndarray, n: int) -> str | None:
    """Why ``idx`` does not fit a clip of ``n`` frames, or None when it does."""
    if idx.size == 0:
        return None
    lo, hi = int(idx.min()), int(idx.max())
    if lo >= 0 and hi < n:
        return None
    bad = lo if lo < 0 else hi
    return f"frame index {bad} out of range (clip has {n} frames: 0..{n - 1})"


def count_reason(expected: int | None, n: int) -> str | None:
    """Why a video of ``n`` frames is not the clip an annotation of ``expected`` describes."""
    if expected is None or int(expected) == n:
        return None
    return f"annotation says {int(expected)} frames, the video has {n}"


_LOG_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (decord's ``[hh:mm:ss]`` log stamp removed)."""
    text = _LOG_PREFIX.sub("", " ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_file(path: str, clip_id: str | None) -> None:
    """Reject missing, non-file and empty paths with a precise reason before decoding."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FrameReadError(clip_id, path, "missing file") from None
    except OSError as exc:
        raise FrameReadError(clip_id, path, f"cannot access file ({describe(exc)})") from None
    if not os.path.isfile(path):
        raise FrameReadError(clip_id, path, "expected a video file, found a folder or device")
    if st.st_size == 0:
        raise FrameReadError(clip_id, path, "empty file (0 bytes)")


def gather(batch: np.ndarray, uniq: np.ndarray, inverse: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Frames decoded for the sorted unique ``uniq``, in the requested order ``idx``."""
    if uniq.size == idx.size and np.array_equal(uniq, idx):
        return batch  # already sorted and unique: no gather copy
    return batch[inverse.reshape(-1)]
