"""Data-parallel runs: several processes (GPUs, nodes) share the work of one results folder.

A launch is N processes started by ``torchrun``, ``accelerate launch`` or
``emobench run --num-processes N`` (:mod:`emobench.runner.launcher`). Each reads its place
from the environment those launchers set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``; :func:`rank_from_env`) and runs on ``cuda:LOCAL_RANK`` when the
run's device is ``cuda`` or ``auto`` with GPUs (:func:`rank_device`), else on the CPU; a
model too large for one GPU still spreads over GPUs with ``device_map`` inside its rank.

The units of work are the engine's (cell group, fold) pairs in its stable order; rank 0
audits the folder (stale, damaged parts, plan), and :func:`shard` deals the pending units
out, balanced by their pending cells and deterministic. Every rank writes its own atomic
part files, so the folder's per-part resume works unchanged.

Coordination (why two channels):

- **start**: ``torch.distributed`` with the gloo backend (CPU sockets; also on CUDA nodes,
  since only small control messages travel) is used once, to agree on a launch id, rank 0's
  code version (a rank running other code stops: its parts would be stale) and the shares,
  or to pass rank 0's error to everyone (:meth:`Launch.publish`, :meth:`Launch.receive`).
  All ranks are alive at the start, which is what a collective needs.
- **end**: files in ``<out>/.emobench-launch/``. Each rank ``r > 0`` writes
  ``rank-<r>.json`` (its launch id, PID, host, a heartbeat counter bumped every few
  seconds, parts written, and finally ``done`` with its warnings, timings and cache
  counts, or ``failed`` with its error). Rank 0 waits for every ``done``; a rank whose
  heartbeat stops for ``timeout`` seconds (measured on rank 0's own clock, so node clocks
  need not agree) or that reports ``failed`` ends the wait with one line naming it, and the
  finished parts stay for a rerun. A collective barrier would instead hang (or fail with an
  opaque socket error) when a rank dies after hours of work; the folder is shared by all
  ranks anyway (a shared filesystem across nodes).

Locking: rank 0 takes the folder's :class:`~emobench.runner.lock.RunLock` (its PID file
carries the launch id); every other rank holds ``rank-<r>.lock`` and joins only a folder
whose PID file names its own launch (:class:`~emobench.runner.lock.RankLock`), so a second,
independent run is refused while any rank of a launch is alive.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError

#: Folder (inside the results folder) of the per-rank state and lock files of a launch.
LAUNCH_DIR = ".emobench-launch"
#: Seconds rank 0 waits for a sign of life from a rank before giving up on it (default).
DEFAULT_RANK_TIMEOUT_S = 300.0
#: Seconds the ranks may wait for rank 0 to prepare the run (load, audit) at the start.
START_TIMEOUT_S = 3600.0


class DistributedError(EmobenchError):
    """A launch of several processes cannot start or finish (bad environment, lost rank)."""


class RankLostError(DistributedError):
    """A rank of the launch stopped (died, failed or went silent) before finishing."""


@dataclass(frozen=True)
class Rank:
    """This process's place in a launch (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    @property
    def prefix(self) -> str:
        """What this rank's printed lines start with (nothing for a single process)."""
        return f"[rank {self.rank}/{self.world}] " if self.parallel else ""


def rank_from_env(env: Mapping[str, str] | None = None) -> Rank:
    """The rank set by torchrun / accelerate / ``--num-processes`` (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``); rank 0 of 1 when unset."""
    env = os.environ if env is None else env

    def num(name: str, default: int) -> int:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise DistributedError(
                f"environment variable {name}={raw!r} is not an integer"
            ) from None

    world = num("WORLD_SIZE", 1)
    rank = num("RANK", 0)
    local = num("LOCAL_RANK", rank if world > 1 else 0)
    local_world = num("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    if local < 0:
        raise DistributedError(f"LOCAL_RANK={local} is negative")
    return Rank(rank, world, local, max(local_world, 1))


def shard(weights: Sequence[int], world: int) -> list[list[int]]:
    """Deal units (given by their weights, in the engine's order) to ``world`` ranks.

    Greedy longest-first: units by decreasing weight (ties: earlier first) each go to the
    rank with the least weight so far (ties: the lower rank). Returns, per rank, its unit
    positions in increasing order: disjoint, covering every unit, and the same on every
    machine. The largest share exceeds the ideal ``sum/world`` by less than one unit.
    """
    if world < 1:
        raise ValueError("world must be at least 1")
    loads = [0] * world
    shares: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        r = min(range(world), key=lambda r: (loads[r], r))
        shares[r].append(i)
        loads[r] += weights[i]
    return [sorted(s) for s in shares]


def rank_device(spec: str, rank: Rank) -> str:
    """The device spec of this rank: ``cuda``/``auto`` on a machine with GPUs become
    ``cuda:<LOCAL_RANK>`` (wrapping around when there are more local ranks than GPUs);
    anything else (``cpu``, ``mps``, an explicit ``cuda:N``) is kept."""
    name = str(spec).strip().lower()
    if not rank.parallel or name not in ("cuda", "auto"):
        return name
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        return name  # auto → cpu; cuda → resolve_device's "not available" error
    return f"cuda:{rank.local_rank % n}"


# --------------------------------------------------------------------------- one launch


def _state_path(folder: Path, rank: int) -> Path:
    return Path(folder) / LAUNCH_DIR / f"rank-{rank}.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Launch:
    """The coordination of one launch for one rank (see the module docstring).

    Use as a context manager around the run: it joins the process group on entry and
    leaves it on exit. Rank 0 calls :meth:`publish` then :meth:`wait_for_ranks`; the
    others call :meth:`receive`, then report through :meth:`heartbeat` and :meth:`finish`.
    """

    def __init__(
        self,
        rank: Rank,
        folder: Path,
        *,
        timeout: float = DEFAULT_RANK_TIMEOUT_S,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.rank = rank
        self.folder = Path(folder)
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self.id: str = uuid.uuid4().hex[:12] if rank.is_main else ""
        self._pg = False
        self._beat = 0
        self._parts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------ process group
    def __enter__(self) -> Launch:
        import torch.distributed as dist

        if not dist.is_available():
            raise DistributedError("this torch build has no torch.distributed")
        if not dist.is_initialized():
            missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
            if missing:
                raise DistributedError(
                    f"WORLD_SIZE={self.rank.world} but {', '.join(missing)} is not set; start "
                    "the ranks with torchrun, accelerate launch or emobench run --num-processes"
                )
            try:
                dist.init_process_group(
                    "gloo",
                    init_method="env://",
                    rank=self.rank.rank,
                    world_size=self.rank.world,
                    timeout=_dt.timedelta(seconds=self.start_timeout),
                )
            except Exception as exc:  # socket errors, timeouts: one line
                raise DistributedError(
                    f"rank {self.rank.rank} could not join the launch at "
                    f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: "
                    f"{_one_line(exc)}"
                ) from None
            self._pg = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_heartbeat()
        if self._pg:
            import torch.distributed as dist

            with contextlib.suppress(Exception):
                dist.destroy_process_group()
            self._pg = False

    # ------------------------------------------------------------ start
    def publish(self, plan: Any = None, error: BaseException | None = None) -> None:
        """Rank 0: send the launch id and ``plan`` (or ``error``'s line) to every rank."""
        import torch.distributed as dist

        msg = (
            {"launch": self.id, "error": _one_line(error), "kind": type(error).__name__}
            if error is not None
            else {"launch": self.id, "plan": plan}
        )
        if self.rank.is_main:
            with contextlib.suppress(OSError):  # the previous launch's state files
                for p in (self.folder / LAUNCH_DIR).glob("rank-*.json"):
                    p.unlink()
        try:
            dist.broadcast_object_list([msg], src=0)
        except Exception as exc:
            if error is None:
                raise DistributedError(
                    f"could not reach the other ranks: {_one_line(exc)}"
                ) from None

    def receive(self) -> Any:
        """Ranks > 0: wait for rank 0's plan; rank 0's error stops this rank too."""
        import torch.distributed as dist

        box: list[Any] = [None]
        try:
            dist.broadcast_object_list(box, src=0)
        except Exception as exc:
            raise DistributedError(f"rank 0 did not start the run: {_one_line(exc)}") from None
        msg = box[0]
        self.id = msg["launch"]
        if "error" in msg:
            raise DistributedError(f"rank 0 could not start the run: {msg['error']}")
        return msg["plan"]

    # ------------------------------------------------------------ ranks > 0: state file
    def _write_state(self, state: str, **extra: Any) -> None:
        # lazy: pulls in numpy; kept off `emobench --help`
        from emobench.io import write_json_atomic

        with self._write_lock:
            self._beat += 1
            write_json_atomic(
                _state_path(self.folder, self.rank.rank),
                {
                    "launch": self.id,
                    "rank": self.rank.rank,
                    "world": self.rank.world,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "state": state,
                    "beat": self._beat,
                    "parts": self._parts,
                    "time": _now(),
                    **extra,
                },
            )

    def heartbeat(self) -> None:
        """Start the state file and a thread that bumps its counter every few seconds."""
        self._write_state("working")
        period = max(0.05, min(5.0, self.timeout / 5))

        def beat() -> None:
            while not self._stop.wait(period):
                with contextlib.suppress(Exception):  # a full disk must not kill the rank
                    self._write_state("working")

        self._thread = threading.Thread(target=beat, name="emobench-heartbeat", daemon=True)
        self._thread.start()

    def part_done(self) -> None:
        """Count a part this rank wrote (its state file shows the count at once)."""
        self._parts += 1
        with contextlib.suppress(Exception):
            self._write_state("working")

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def finish(self, summary: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """Write this rank's last state: ``done`` with ``summary``, or ``failed``."""
        self._stop_heartbeat()
        if error is not None:
            self._write_state("failed", error=error)
        else:
            self._write_state("done", summary=dict(summary or {}))

    # ------------------------------------------------------------ rank 0: the end
    def wait_for_ranks(
        self, poll: float | None = None, on_wait: Callable[[list[int]], None] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Rank 0: every other rank's ``done`` summary, waiting as long as they show life.

        Raises :class:`RankLostError` (one line, naming the rank) for a rank that failed
        or whose heartbeat stayed still for ``timeout`` seconds. The state files are read
        every ``poll`` seconds (default: a tenth of the timeout, at most 1 s, so that
        many ranks on a shared filesystem are not read in a tight loop); ``on_wait`` is
        told which ranks are still working when the wait begins.
        """
        poll = max(0.05, min(1.0, self.timeout / 10)) if poll is None else poll
        seen: dict[int, tuple[Any, float]] = {}
        done: dict[int, dict[str, Any]] = {}
        waiting = [r for r in range(1, self.rank.world)]
        if on_wait is not None and waiting:
            first = {r: _read_state(self.folder, r) for r in waiting}
            on_wait([r for r in waiting if (first[r] or {}).get("state") != "done"])
        while waiting:
            now = time.monotonic()
            for r in list(waiting):
                st = _read_state(self.folder, r)
                if st is not None and st.get("launch") != self.id:
                    st = None  # a file of another launch
                if st is not None and st.get("state") == "done":
                    done[r] = dict(st.get("summary") or {})
                    waiting.remove(r)
                    continue
                if st is not None and st.get("state") == "failed":
                    raise RankLostError(
                        f"rank {r} of {self.rank.world} ({_who(st)}) failed: "
                        f"{st.get('error', '?')}; {_kept(self.folder)}"
                    )
                beat = st.get("beat") if st is not None else None
                last = seen.get(r)
                if last is None or last[0] != beat:
                    seen[r] = (beat, now)
                elif now - last[1] > self.timeout:
                    what = _who(st) if st is not None else "never reported"
                    raise RankLostError(
                        f"rank {r} of {self.rank.world} ({what}) stopped without finishing: "
                        f"no sign of life for {self.timeout:g} s; {_kept(self.folder)}"
                    )
            if waiting:
                time.sleep(poll)
        return done

    def cleanup(self) -> None:
        """Rank 0, after a finished run: remove the launch's state files."""
        with contextlib.suppress(OSError):
            for p in (self.folder / LAUNCH_DIR).glob("rank-*.json"):
                p.unlink()


def _read_state(folder: Path, rank: int) -> dict[str, Any] | None:
    try:
        obj = json.loads(_state_path(folder, rank).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _who(state: Mapping[str, Any]) -> str:
    pid, host, parts = state.get("pid", "?"), state.get("host", "?"), state.get("parts", 0)
    return f"PID {pid} on {host}, {parts} part(s) written"


def _kept(folder: Path) -> str:
    n = len(list((Path(folder) / "parts").glob("*.parquet")))
    return (
        f"the {n} finished part(s) in {folder} are kept; rerun the same command (with any "
        "number of processes) to complete the run"
    )


def _one_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split()) if exc is not None else ""
    return text[:300] or type(exc).__name__


def merge_counts(a: Any, b: Any) -> Any:
    """Combine two ranks' reports: numbers add up, dicts merge key by key, lists are
    joined without repeats; anything else keeps ``a``'s value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge_counts(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + [x for x in b if x not in a]
    return a
