"""Decoding ahead of the model: a bounded, ordered prefetch of clips in worker threads or
processes, so the encoder (the GPU) does not wait for the decoder.

:class:`Prefetcher` takes :class:`DecodeJob` s (a clip-index row, the frame indices wanted,
the decode size and backend) and yields one :class:`Decoded` per job **in the jobs' order**,
while up to ``ahead`` clips are queued or decoded in ``workers`` workers beyond the one the
consumer holds. A clip that cannot be read comes back as a value (its
:class:`~emobench.video.frames.FrameReadError` reason), never as an exception, so skips are
counted exactly as in the serial loop; any other exception is raised at that clip's
position. ``workers=0`` decodes in the consumer's thread, one clip when it is asked for:
the serial behaviour, for debugging and for machines where a worker does not pay.

Worker kinds (:data:`POOL_KINDS`, the ``kind`` argument):

* ``thread`` (default): PyAV and PIL release the GIL while decoding and scaling, so threads
  decode in parallel; they share this process's decode statistics and ``auto`` backend
  checks, and the frames need no copy between processes.
* ``process``: a pool of spawned processes (:mod:`concurrent.futures`), for decoders that
  hold the GIL. Frames are pickled back; each worker's clip counts and fallbacks are merged
  into this process's decode statistics (its ``auto`` per-pair checks stay in the worker).

How many workers by default: :func:`default_workers` (more with a GPU than on a CPU).

The caller consults and fills its caches: ``lookup`` (run in the consumer's thread when a
job is queued) may answer a job from memory; such a clip never reaches a worker.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from emobench.errors import EmobenchError
from emobench.lifecycle import die_with_parent
from emobench.registry import Registry
from emobench.video import auto
from emobench.video import frames as video
from emobench.video.frames import decode_stats, reset_decode_stats


class PrefetchError(EmobenchError):
    """A prefetcher was configured with a bad number of workers or queue length."""


@dataclass(frozen=True)
class DecodeJob:
    """One clip to decode: its clip-index row, the frame indices (any order, repeats
    allowed: the result follows them), the square decode size (None: native) and the
    video backend."""

    row: dict[str, Any]
    indices: np.ndarray
    size: int | None
    backend: str


@dataclass(frozen=True)
class Decoded:
    """The outcome of a :class:`DecodeJob`: the frames, or the reason they could not be read."""

    job: DecodeJob
    frames: np.ndarray | None
    #: the FrameReadError reason when the clip could not be read
    reason: str | None = None
    #: answered by the caller's ``lookup`` (a cache) without decoding
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.frames is not None


#: A cache consulted before decoding: a job → its outcome, or None (decode it).
Lookup = Callable[[DecodeJob], Decoded | None]


def decode_job(job: DecodeJob) -> Decoded:
    """Decode one job in this thread; a :class:`FrameReadError` becomes the result's reason."""

    try:
        arr = video.read_clip(job.row, job.indices, size=job.size, backend=job.backend)
    except video.FrameReadError as exc:
        return Decoded(job, None, exc.reason)
    return Decoded(job, arr)


def _decode_in_process(job: DecodeJob) -> tuple[Decoded, dict[str, Any]]:
    """:func:`decode_job` in a worker process, with what it added to the decode statistics."""

    reset_decode_stats()
    out = decode_job(job)
    stats = decode_stats()
    return out, {"clips": stats.clips, "fallback_reasons": stats.fallback_reasons,
                 "fallbacks": stats.fallbacks}  # fmt: skip


def _merge_stats(delta: dict[str, Any]) -> None:
    """Add a worker process's clip counts and fallbacks to this process's decode statistics."""

    for backend, n in delta["clips"].items():
        for _ in range(n):
            auto._count(backend)
    reasons = delta["fallback_reasons"]
    for i in range(delta["fallbacks"]):
        r = reasons[i] if i < len(reasons) else {"clip": "?", "reason": "?"}
        auto._note_fallback(r["clip"], r["reason"])


@dataclass(frozen=True)
class PoolKind:
    """How to start a worker pool and run a job in it."""

    make: Callable[[int], Executor]
    #: the function the pool runs on a job
    task: Callable[[DecodeJob], Any]
    #: turns the task's return value into a Decoded (in the consumer's thread)
    finish: Callable[[Any], Decoded]


def _threads(n: int) -> Executor:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(n, thread_name_prefix="emobench-decode")


def _processes(n: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fork of a process running torch/decoder threads is not safe; the workers
    # die with this process, even under SIGKILL
    return ProcessPoolExecutor(
        n,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def _finish_process(value: tuple[Decoded, dict[str, Any]]) -> Decoded:
    out, delta = value
    _merge_stats(delta)
    return out


#: Worker kinds by name (module docstring).
POOL_KINDS: Registry[PoolKind] = Registry(
    "prefetch worker kind",
    {
        "thread": PoolKind(_threads, decode_job, lambda d: d),
        "process": PoolKind(_processes, _decode_in_process, _finish_process),
    },
    error=PrefetchError,
)


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Most decode workers chosen automatically for a GPU.
MAX_AUTO_WORKERS = 4
#: Decode workers chosen automatically for a CPU-only run (where the encoder shares the
#: cores): one thread ahead, measured faster than in-process on a 2-core CPU
#: (``benchmarks/bench_pipeline.py``) and never slower.
CPU_AUTO_WORKERS = 1


def cuda_in_use() -> bool:
    """Whether this process has torch loaded and a CUDA device (no torch import here: a
    run that has not loaded torch encodes nothing on a GPU)."""
    import sys

    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available())


def default_workers(cuda: bool | None = None) -> int:
    """Decode workers when the run does not say. With a GPU (``cuda``; None: whether
    :func:`cuda_in_use`) the host has nothing else to do: min(4, CPUs − 1), one core left
    to the consumer. On a CPU the encoder needs the cores: :data:`CPU_AUTO_WORKERS`
    (0 on a single core)."""
    if cuda is None:
        cuda = cuda_in_use()
    cap = MAX_AUTO_WORKERS if cuda else CPU_AUTO_WORKERS
    return max(0, min(cap, cpu_count() - 1))


class Prefetcher:
    """Decode :class:`DecodeJob` s ahead of the consumer, in order (module docstring).

    ``workers``: worker threads/processes (0: decode in the consumer's thread when asked);
    ``ahead``: most clips queued or decoded beyond the one the consumer holds (default
    ``2 × workers``); ``kind``: a :data:`POOL_KINDS` name. :attr:`peak` records the most
    clips that were ever pending at once (queued, decoding or decoded, not yet taken by
    the consumer), for tests and benchmarks: it never exceeds ``ahead`` (0 when serial).
    """

    def __init__(self, workers: int = 0, ahead: int | None = None, kind: str = "thread") -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise PrefetchError(f"decode workers must be an integer >= 0, got {workers!r}")
        if ahead is None:
            ahead = 2 * workers
        if isinstance(ahead, bool) or not isinstance(ahead, int) or ahead < (workers > 0):
            raise PrefetchError(
                f"prefetch queue length must be an integer >= {int(workers > 0)}, got {ahead!r}"
            )
        self.workers = workers
        self.ahead = ahead if workers else 0
        self.kind = POOL_KINDS[kind]
        self.kind_name = kind
        self.peak = 0

    def run(
        self,
        jobs: Iterable[DecodeJob],
        lookup: Lookup | None = None,
    ) -> Iterator[Decoded]:
        """One :class:`Decoded` per job, in order. ``lookup(job)`` may answer a job from a
        cache (called in this thread, in job order, before the job would be decoded): a
        :class:`Decoded` (frames or a reason) is used as it is, None sends the job to a
        worker."""
        if self.workers == 0:
            yield from self._serial(jobs, lookup)
            return
        pool = self.kind.make(self.workers)
        pending: deque[Decoded | Future[Any]] = deque()
        it = iter(jobs)

        def fill() -> None:
            while len(pending) < self.ahead:
                job = next(it, None)
                if job is None:
                    return
                hit = lookup(job) if lookup is not None else None
                if hit is not None:
                    pending.append(hit)
                else:
                    pending.append(pool.submit(self.kind.task, job))
                self.peak = max(self.peak, len(pending))

        try:
            fill()
            while pending:
                item = pending.popleft()
                out = item if isinstance(item, Decoded) else self.kind.finish(item.result())
                fill()  # a worker starts on the next clip while the consumer uses this one
                yield out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _serial(jobs: Iterable[DecodeJob], lookup: Lookup | None) -> Iterator[Decoded]:
        for job in jobs:
            hit = lookup(job) if lookup is not None else None
            yield hit if hit is not None else decode_job(job)


__all__ = [
    "POOL_KINDS",
    "DecodeJob",
    "Decoded",
    "PoolKind",
    "PrefetchError",
    "Prefetcher",
    "cpu_count",
    "cuda_in_use",
    "decode_job",
    "default_workers",
]
