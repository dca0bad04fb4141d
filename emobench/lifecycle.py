"""Worker processes that end with their parent.

emobench starts helper processes with ``spawn`` (report figures, ``process`` decode workers,
synth rendering). A parent killed with SIGKILL runs no clean-up, so each worker ties its own
life to its parent's: on Linux the kernel kills it when the parent goes
(``prctl(PR_SET_PDEATHSIG)``), elsewhere it notices within :data:`PARENT_POLL_S` seconds
(a thread watches the parent PID). Use :func:`die_with_parent` as (or in) a pool's
initializer, with the parent's PID as its argument.
"""

from __future__ import annotations

import os
import time

#: Seconds between a worker's checks that its parent is alive (where prctl is missing).
PARENT_POLL_S = 0.5


def die_with_parent(parent: int) -> None:
    """Make this worker process end when process ``parent`` does (module docstring)."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before the hook was in place
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


__all__ = ["PARENT_POLL_S", "die_with_parent"]
