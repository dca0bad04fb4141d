"""Decoding clips for the engine: the frame cache, the backend, counted skips.

:class:`MediaReader` reads a clip's frames with the run's decoding backend through the
frame cache; a clip that cannot be read is recorded in the group's skip list (id →
reason) and left out. When more than :data:`MAX_FAILED_SHARE` of a split's clips fail,
:meth:`MediaReader.check_failures` stops the run with one line naming the backend and the
first failing clip, instead of training or scoring on what is left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.runner.cache import FrameCache, clip_key
from emobench.runner.work import WorkProgress

#: A split whose clips fail to decode beyond this share stops the run.
MAX_FAILED_SHARE = 0.2


class DecodeFailureError(EmobenchError):
    """Too many clips of one split could not be decoded."""


class MediaReader:
    """Frames of clip-index rows at a given size, cached, with failures counted."""

    def __init__(self, frames: FrameCache, backend: str, progress: WorkProgress) -> None:
        self.frames = frames
        self.backend = backend
        self.progress = progress

    def cache_key(self, r: dict[str, Any]) -> str:
        """Frame-cache key of a clip: its media and the decoding backend."""
        return f"{clip_key(r)}-{self.backend}"

    def read(self, r: dict[str, Any], indices: np.ndarray, size: int | None) -> np.ndarray:
        """Frames ``indices`` of a clip (from its cached whole clip when there is one).

        Raises :class:`~emobench.video.frames.FrameReadError` when it cannot be read.
        """
        from emobench.video.frames import FrameReadError, read_clip

        full = self.frames.get(self.cache_key(r), size) if size is not None else None
        if full is not None:
            try:
                return full[indices]
            except IndexError as exc:
                raise FrameReadError(r["clip_id"], str(r["path"]), str(exc)) from None
        return read_clip(r, indices, size=size, backend=self.backend)

    def whole_clips(
        self, rows: pl.DataFrame, size: int, skips: dict[str, str], what: str
    ) -> tuple[list[np.ndarray], list[int]]:
        """All frames of each clip (kept in the frame cache); failures go to ``skips``.

        Returns the frames of the clips that were read and their row positions.
        """
        from emobench.video.frames import FrameReadError, read_clip

        frames, kept = [], []
        bad: dict[str, str] = {}
        self.progress.start(f"decoding {what} clips", rows.height)
        for i, r in enumerate(rows.iter_rows(named=True)):
            key = self.cache_key(r)
            arr = self.frames.get(key, size)
            if arr is None:
                try:
                    arr = read_clip(r, np.arange(r["n_frames"]), size=size, backend=self.backend)
                except FrameReadError as exc:
                    bad[r["clip_id"]] = exc.reason
                    self.progress.advance()
                    continue
                self.frames.put(key, size, arr)
            frames.append(arr)
            kept.append(i)
            self.progress.advance()
        record_skips(skips, bad, what)
        self.check_failures(bad, rows, what)
        return frames, kept

    def check_failures(self, bad: dict[str, str], rows: pl.DataFrame, what: str) -> None:
        """Stop when more than :data:`MAX_FAILED_SHARE` of a split's clips failed to decode."""
        if not bad or len(bad) <= MAX_FAILED_SHARE * rows.height:
            return
        first = min(bad)
        where = f" of fold {rows['fold'][0]}" if "fold" in rows.columns else ""
        hint = "" if self.backend == "pyav" else ", or try --backend pyav"
        raise DecodeFailureError(
            f"{len(bad)} of {rows.height} {what} clips{where} could not be read (decoding "
            f"backend {self.backend!r}); first: clip {first!r}: {bad[first]}. Check the "
            f"media files{hint}"
        )


def record_skips(skips: dict[str, str], bad: dict[str, str], what: str) -> None:
    """Add failed clips to a group's skip list; training failures are marked as such."""
    prefix = "" if what == "test" else "train: "
    for cid, reason in bad.items():
        skips[cid] = f"{prefix}{reason}"
