"""Progress of a run: one bar for (cell, fold) parts, one for the work inside a group.

The engine and the scorers report through :class:`WorkProgress`; with ``show=False`` every
call is a no-op, so callers never test whether progress is shown.
"""

from __future__ import annotations

import time
from typing import Any

from emobench.progress import progress_bar


class WorkProgress:
    """Two rich progress bars (parts; current work with clips/s), or nothing."""

    def __init__(self, show: bool = True, console: Any = None) -> None:
        self.show = show
        self.console = console
        self._bar: Any = None
        self._parts: Any = None
        self._work: Any = None
        self._t0 = time.perf_counter()

    def run(self, total: int, done: int) -> WorkProgress:
        """Set the parts total before entering the context."""
        self._total, self._done = total, done
        return self

    def __enter__(self) -> WorkProgress:
        if not self.show:
            return self

        self._bar = progress_bar(field="rate", console=self.console, transient=False)
        self._bar.__enter__()
        self._parts = self._bar.add_task(
            "cells × folds", total=self._total, completed=self._done, rate=""
        )
        self._work = self._bar.add_task("", total=1, visible=False, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def part_done(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._parts)

    def start(self, what: str, total: int) -> None:
        """Begin a counted piece of work (``total`` clips)."""
        self._t0 = time.perf_counter()
        if self._bar is not None:
            self._bar.reset(self._work, total=total, description=what, visible=True)

    def advance(self) -> None:
        """One clip of the current work done (the rate shown is clips per second)."""
        if self._bar is not None:
            task = self._bar.tasks[self._work]
            dt = time.perf_counter() - self._t0
            rate = f"{(task.completed + 1) / dt:.1f} clips/s" if dt > 0 else ""
            self._bar.update(self._work, advance=1, rate=rate)

    def update(self, what: str, done: int, total: int) -> None:
        """Set the current work's state (for training epochs and steps)."""
        if self._bar is not None:
            self._bar.update(
                self._work, description=what, completed=done, total=total, visible=True, rate=""
            )
