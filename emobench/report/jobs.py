"""Draw report figures in a helper process while the main process computes statistics.

Figures are independent jobs (a function of plain, picklable data that writes two files),
so they can run in a worker while the report computes bootstrap tests. The worker is
started with ``spawn`` (forking a process whose polars thread pool is running is unsafe) at
the very start of a report, so its matplotlib import overlaps with reading the run folder.
With ``workers=0``, or if a worker cannot start or dies, jobs run in this process.

A worker dies with the report: on Linux the kernel kills it when its parent goes
(``prctl(PR_SET_PDEATHSIG)``), elsewhere it notices within a second (it watches its parent
PID), so a killed ``emobench report`` leaves no process behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from emobench.lifecycle import die_with_parent

log = logging.getLogger(__name__)
_timing_log = logging.getLogger("emobench.report.timing")


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Log how long a report step took (DEBUG level; the benchmark prints these)."""
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    _timing_log.debug(
        "%-24s %6.2f s wall %6.2f s cpu",
        step,
        time.perf_counter() - t0,
        time.process_time() - c0,
    )


def default_workers() -> int:
    """Helper processes to use: none on one core, else one (two from 4 cores up)."""
    n = os.cpu_count() or 1
    return 0 if n < 2 else min(2, n - 2) if n >= 4 else 1


def _init_worker(parent: int) -> None:
    """Worker initializer: tie the worker's life to the report's, then warm matplotlib."""

    die_with_parent(parent)
    _warm()


def _warm() -> None:
    """Import matplotlib and render once so fonts are cached."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "warm", fontsize=8)
    fig.savefig(io.BytesIO(), format="png")


def _noop() -> None:
    """A first job that makes the pool start its worker right away."""


class FigureJobs:
    """Run figure jobs in helper processes (or inline) and wait for them all."""

    def __init__(self, workers: int) -> None:
        self._pool: Any = None
        self._jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any] | None]] = []
        if workers <= 0:
            return
        try:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            self._pool.submit(_noop)
        except (OSError, ValueError, RuntimeError, NotImplementedError) as exc:
            log.debug("figure worker unavailable (%s); drawing in this process", exc)
            self._pool = None

    @property
    def parallel(self) -> bool:
        """Whether jobs go to a helper process."""
        return self._pool is not None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; runs at once when there is no worker."""
        if self._pool is None:
            fn(*args)
            self._jobs.append((fn, args, None))
            return
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError as exc:  # BrokenProcessPool, or shut down
            log.debug("figure worker failed (%s); drawing in this process", exc)
            self._drop_pool()
            fn(*args)
            future = None
        self._jobs.append((fn, args, future))

    def wait(self) -> None:
        """Block until every job is done; re-raise a job's own error.

        If the worker process died (not a job error), its jobs are redone here.
        """
        from concurrent.futures.process import BrokenProcessPool

        try:
            for fn, args, future in self._jobs:
                if future is None:
                    continue
                try:
                    future.result()
                except BrokenProcessPool:
                    fn(*args)
        finally:
            self._jobs.clear()
            self._drop_pool()

    def close(self) -> None:
        """Stop the worker without waiting for queued jobs (on errors)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
