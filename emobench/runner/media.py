"""Decoding clips for the engine: the frame cache, the backend, counted skips.

:class:`MediaReader` reads a clip's frames with the run's decoding backend through the
frame cache; a clip that cannot be read is recorded in the group's skip list (id →
reason) and left out. When more than :data:`MAX_FAILED_SHARE` of a split's clips fail,
:meth:`MediaReader.check_failures` stops the run with one line naming the backend and the
first failing clip, instead of training or scoring on what is left.

Decoding runs ahead of its consumer (:meth:`MediaReader.decode_ahead`, the engine's
feature and clip loops and :meth:`MediaReader.whole_clips`): :attr:`MediaReader.workers`
worker threads (:mod:`emobench.runner.prefetch`) decode the next clips while the model
encodes the current ones; the frame cache is consulted and filled in the caller's thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.provenance import code_version
from emobench.runner.cache import FrameCache, clip_key
from emobench.runner.prefetch import Decoded, DecodeJob, Prefetcher, default_workers
from emobench.runner.work import WorkProgress
from emobench.video.auto import frame_identity
from emobench.video.frames import FrameReadError, read_clip

#: A split whose clips fail to decode beyond this share stops the run.
MAX_FAILED_SHARE = 0.2


class DecodeFailureError(EmobenchError):
    """Too many clips of one split could not be decoded."""


class MediaReader:
    """Frames of clip-index rows at a given size, cached, with failures counted.

    ``workers``: decode workers ahead of the consumer (None:
    :func:`~emobench.runner.prefetch.default_workers`; 0: decode in the caller's thread, one
    clip at a time); ``ahead``: most clips decoded ahead (None: twice the workers);
    ``kind``: ``thread`` or ``process`` (:data:`~emobench.runner.prefetch.POOL_KINDS`).
    """

    def __init__(
        self,
        frames: FrameCache,
        backend: str,
        progress: WorkProgress,
        *,
        workers: int | None = None,
        ahead: int | None = None,
        kind: str = "thread",
        fingerprint: str = "stat",
    ) -> None:
        self.frames = frames
        self.backend = backend
        #: whose pixels the frames are (``auto`` gives PyAV's exactly): part of every key
        self.identity = frame_identity(backend)
        #: how media files are told apart (``[cache] fingerprint``: stat or content)
        self.fingerprint = fingerprint
        self.code = code_version()["source"]
        self.progress = progress
        #: None: :func:`~emobench.runner.prefetch.default_workers` when decoding starts
        #: (the model, and torch with it, is loaded by then: a GPU run gets more workers)
        self.workers = workers
        self.ahead = ahead
        self.kind = kind
        #: the most clips pending ahead of a consumer in any one pass (see Prefetcher.peak)
        self.peak = 0

    def clip_key(self, r: dict[str, Any]) -> str:
        """A clip's media key (its id, path and media fingerprint)."""
        return clip_key(r, self.fingerprint)

    def artefact_key(self, name: str) -> str:
        """``name`` keyed further by whose pixels the frames are and emobench's code version:
        the key of anything computed from decoded frames."""
        return f"{name}-{self.identity}-{self.code}"

    def cache_key(self, r: dict[str, Any]) -> str:
        """Frame-cache key of a clip: its media, whose pixels (the decoder) and the code."""
        return self.artefact_key(self.clip_key(r))

    def read(self, r: dict[str, Any], indices: np.ndarray, size: int | None) -> np.ndarray:
        """Frames ``indices`` of a clip (from its cached whole clip when there is one).

        Raises :class:`~emobench.video.frames.FrameReadError` when it cannot be read.
        """

        job = DecodeJob(r, np.asarray(indices), size, self.backend)
        hit = self._from_cache(job)
        if hit is None:
            return read_clip(r, indices, size=size, backend=self.backend)
        if not hit.ok:
            raise FrameReadError(r["clip_id"], str(r["path"]), str(hit.reason))
        return hit.frames

    def _from_cache(self, job: DecodeJob) -> Decoded | None:
        """:meth:`read`'s cache step: the job's frames from its cached whole clip, or None."""
        if job.size is None:
            return None
        full = self.frames.get(self.cache_key(job.row), job.size)
        if full is None:
            return None
        try:
            return Decoded(job, full[job.indices], cached=True)
        except IndexError as exc:
            return Decoded(job, None, str(exc), cached=True)

    def decode_ahead(
        self,
        wanted: Iterable[tuple[dict[str, Any], np.ndarray]],
        size: int | None,
        *,
        whole: bool = False,
    ) -> Iterator[Decoded]:
        """:meth:`read` for each (row, indices), in order, decoded ahead in the workers.

        A clip that cannot be read comes back with its reason (``Decoded.reason``).
        ``whole``: the indices are all the clip's frames, kept in the frame cache (the
        cache is looked up first and filled as clips arrive).
        """
        jobs = (DecodeJob(r, np.asarray(idx), size, self.backend) for r, idx in wanted)
        workers = default_workers() if self.workers is None else self.workers
        pre = Prefetcher(workers, self.ahead, self.kind)
        lookup = self._whole_from_cache if whole else self._from_cache
        try:
            for d in pre.run(jobs, lookup):
                if whole and d.ok and not d.cached:
                    self.frames.put(self.cache_key(d.job.row), size, d.frames)
                yield d
        finally:
            self.peak = max(self.peak, pre.peak)

    def _whole_from_cache(self, job: DecodeJob) -> Decoded | None:
        arr = self.frames.get(self.cache_key(job.row), job.size)
        return Decoded(job, arr, cached=True) if arr is not None else None

    def whole_clips(
        self, rows: pl.DataFrame, size: int, skips: dict[str, str], what: str
    ) -> tuple[list[np.ndarray], list[int]]:
        """All frames of each clip (kept in the frame cache); failures go to ``skips``.

        Returns the frames of the clips that were read and their row positions.
        """
        frames, kept = [], []
        bad: dict[str, str] = {}
        self.progress.start(f"decoding {what} clips", rows.height)
        wanted = ((r, np.arange(r["n_frames"])) for r in rows.iter_rows(named=True))
        for i, d in enumerate(self.decode_ahead(wanted, size, whole=True)):
            if d.ok:
                frames.append(d.frames)
                kept.append(i)
            else:
                bad[d.job.row["clip_id"]] = d.reason
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
