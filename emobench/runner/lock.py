"""One run per results folder at a time, and the leftovers of killed runs cleaned up.

:class:`RunLock` holds an OS file lock (``filelock``; ``flock`` on POSIX) on
``<out>/.emobench.lock`` for the whole run and writes its PID beside it
(``.emobench.pid``). The OS drops the lock when the holder dies, so a killed run never
blocks the next one; its PID file stays behind, which is how the next run tells (and
reports) that a previous run did not finish, and cleans its stray temporary files.

A launch of several processes (:mod:`emobench.runner.distributed`) shares one folder:
rank 0 takes :class:`RunLock` with the launch id (written into the PID file) and every
other rank holds its own ``.emobench-launch/rank-<r>.lock`` through :class:`RankLock`,
which joins only a folder held by its own launch. :class:`RunLock` refuses a folder while
any rank lock there is held, so a second, independent run cannot start beside a launch
even after that launch's rank 0 is gone.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path

from emobench.errors import EmobenchError
from emobench.results import write_json_atomic

LOCK_FILE = ".emobench.lock"
#: Folder of a launch's per-rank lock and state files (see emobench.runner.distributed).
LAUNCH_DIR = ".emobench-launch"
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

    def __init__(self, folder: Path, launch: str | None = None) -> None:
        self.folder = Path(folder)
        #: the id of the multi-process launch whose rank 0 this is (None: a single process)
        self.launch = launch
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
        try:
            busy = _held_rank(self.folder)
        except BaseException:
            self._lock.release()
            raise
        if busy is not None:
            self._lock.release()
            raise RunLockedError(
                f"{self.folder} is in use by another emobench run ({busy}); wait for it to "
                "finish or choose another --out"
            )
        old = _read_holder(self.folder)
        if old and old.get("pid") != os.getpid():
            alive = isinstance(old.get("pid"), int) and _pid_alive(old["pid"])
            self.stale = {**old, "alive": alive}
        self.cleaned = clean_temp_files(self.folder)

        holder = {
            "pid": os.getpid(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if self.launch is not None:
            holder["launch"] = self.launch
        write_json_atomic(self.folder / PID_FILE, holder)
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


def _held_rank(folder: Path) -> str | None:
    """Who holds a rank lock of a launch in ``folder`` (one phrase), or None."""
    from filelock import FileLock, Timeout

    for path in sorted((Path(folder) / LAUNCH_DIR).glob("rank-*.lock")):
        probe = FileLock(str(path), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            rank = path.stem.removeprefix("rank-")
            try:
                state = json.loads(path.with_suffix(".json").read_text())
            except (OSError, ValueError):
                state = {}
            pid = f", PID {state['pid']}" if isinstance(state, dict) and "pid" in state else ""
            launch = state.get("launch", "?") if isinstance(state, dict) else "?"
            return f"rank {rank} of launch {launch}{pid}"
        probe.release()
    return None


class RankLock:
    """Context manager for rank ``rank`` > 0 of launch ``launch``: join the folder that
    this launch's rank 0 holds (its PID file names the launch) and hold the rank's own
    lock file for as long as the rank works, so no other run starts meanwhile."""

    def __init__(self, folder: Path, launch: str, rank: int) -> None:
        self.folder = Path(folder)
        self.launch = launch
        self.rank = rank
        self._lock = None

    def __enter__(self) -> RankLock:
        from filelock import FileLock, Timeout

        holder = _read_holder(self.folder)
        if holder.get("launch") != self.launch:
            who = f"PID {holder['pid']}" if "pid" in holder else "no run"
            raise RunLockedError(
                f"{self.folder} is not held by this launch ({self.launch}) but by {who}; "
                "rank 0 must start the run"
            )
        path = self.folder / LAUNCH_DIR / f"rank-{self.rank}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunLockedError(
                f"rank {self.rank} of {self.folder} is already taken by another process; "
                "is the same rank started twice?"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()


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


# ------------------------------------------------------------------ readers (emobench report)


def _probe_held(path: Path) -> bool:
    """Whether a process holds the lock file ``path`` now. A shared lock is taken and
    dropped at once on an existing file (a reader creates nothing, so it works on a
    read-only folder); where ``flock`` is unavailable, filelock's own probe is used."""
    if not path.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # Windows
        from filelock import FileLock, Timeout

        probe = FileLock(str(path), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            return True
        except OSError:
            return False
        probe.release()
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system: the holder's PID decides
        pid = _read_holder(path.parent).get("pid")
        return isinstance(pid, int) and _pid_alive(pid)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def running_holder(folder: Path) -> dict | None:
    """The run that holds ``folder`` now, for readers of a results folder: its PID-file
    record (``pid``, ``started``; a launch rank's own record when only a rank of a
    launch is left), or None when no run holds it."""
    folder = Path(folder)
    if _probe_held(folder / LOCK_FILE):
        return _read_holder(folder)
    for path in sorted((folder / LAUNCH_DIR).glob("rank-*.lock")):
        if _probe_held(path):
            try:
                state = json.loads(path.with_suffix(".json").read_text())
            except (OSError, ValueError):
                state = {}
            return state if isinstance(state, dict) else {}
    return None


def unfinished_run(folder: Path) -> dict | None:
    """The PID-file record of a run that stopped in ``folder`` without finishing (killed,
    or the machine went down; a run that ends, even with an error, removes it), or None.
    Meaningful when :func:`running_holder` finds no run holding the folder."""
    if not (Path(folder) / PID_FILE).is_file():
        return None
    return _read_holder(Path(folder))
