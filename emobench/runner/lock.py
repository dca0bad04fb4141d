"""One run per results folder at a time, and the leftovers of killed runs cleaned up.

:class:`RunLock` holds an OS file lock (``filelock``; ``flock`` on POSIX) on
``<out>/.emobench.lock`` for the whole run and writes its PID beside it
(``.emobench.pid``). The OS drops the lock when the holder dies, so a killed run never
blocks the next one; its PID file stays behind, which is how the next run tells (and
reports) that a previous run did not finish, and cleans its stray temporary files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path

from emobench.errors import EmobenchError

LOCK_FILE = ".emobench.lock"
PID_FILE = ".emobench.pid"
#: Temporary files of the atomic writers (``.<name>.<random>.tmp``) and the synth generator.
TEMP_GLOBS = (".*.tmp",)


class RunLockedError(EmobenchError):
    """Another emobench process is writing to the same results folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read_holder(folder: Path) -> dict:
    try:
        obj = json.loads((folder / PID_FILE).read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """Context manager: exclusive use of a results folder by this process.

    ``stale`` is set on entry when a previous run left its PID file behind (it was killed
    or crashed): ``{"pid": ..., "started": ...}``; ``cleaned`` counts the temporary files
    removed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.stale: dict | None = None
        self.cleaned = 0
        self._lock = None

    def __enter__(self) -> RunLock:
        from filelock import FileLock, Timeout

        self._lock = FileLock(str(self.folder / LOCK_FILE), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            holder = _read_holder(self.folder)
            who = f"PID {holder['pid']}" if "pid" in holder else "another process"
            since = f", started {holder['started']}" if "started" in holder else ""
            raise RunLockedError(
                f"{self.folder} is in use by another emobench run ({who}{since}); wait for "
                "it to finish or choose another --out"
            ) from None
        old = _read_holder(self.folder)
        if old and old.get("pid") != os.getpid():
            alive = isinstance(old.get("pid"), int) and _pid_alive(old["pid"])
            self.stale = {**old, "alive": alive}
        self.cleaned = clean_temp_files(self.folder)
        from emobench.results import write_json_atomic

        write_json_atomic(
            self.folder / PID_FILE,
            {
                "pid": os.getpid(),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
        )
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            (self.folder / PID_FILE).unlink()
        if self._lock is not None:
            self._lock.release()

    def stale_message(self) -> str | None:
        """One line about a previous run that did not finish, or None."""
        if not self.stale:
            return None
        pid = self.stale.get("pid", "?")
        started = self.stale.get("started", "?")
        extra = f"; removed {self.cleaned} stray temporary file(s)" if self.cleaned else ""
        return (
            f"a previous run in {self.folder} (PID {pid}, started {started}) stopped without "
            f"finishing; resuming from its finished parts{extra}"
        )


def clean_temp_files(folder: Path) -> int:
    """Remove temporary files left by killed writers anywhere under ``folder``."""
    n = 0
    for pattern in TEMP_GLOBS:
        for p in Path(folder).rglob(pattern):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n
