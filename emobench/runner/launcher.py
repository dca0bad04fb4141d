"""``emobench run --num-processes N``: the N local ranks of a launch, started as
``python -m emobench run <args>`` with the environment ``torchrun`` would set on one node
(:mod:`emobench.runner.distributed` is what each rank does)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from emobench.runner.distributed import DistributedError


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """After Ctrl-C: give the ranks a few seconds to stop by themselves (their own
    interrupt handling keeps finished parts), then interrupt, then kill what remains."""
    deadline = time.monotonic() + 5
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=60)
        if p.poll() is None:
            p.kill()


def free_port() -> int:
    """A TCP port that is free on this machine now (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_env(
    n: int, rank: int, port: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of local rank ``rank`` of ``n`` (what torchrun would set on one node).

    CPU threads are split between the ranks (``OMP_NUM_THREADS``) unless already set, so
    that N ranks do not each start one thread per core.
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(n),
            "LOCAL_WORLD_SIZE": str(n),
            "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    return env


def launch_local(
    args: Sequence[str],
    n: int,
    *,
    echo: Callable[[str], None] = print,
    command: Sequence[str] | None = None,
) -> int:
    """Run ``emobench run <args>`` as ``n`` local ranks (``emobench run --num-processes``).

    Each rank is ``python -m emobench run <args>`` with the environment of
    :func:`launch_env`; output goes to this terminal (ranks > 0 print rank-prefixed lines
    and no progress bars). Ctrl-C is passed on to every rank. Returns the exit status:
    0 when every rank succeeded, else rank 0's status (or 1), after one line per rank
    that was killed by a signal.
    """
    if n < 1:
        raise DistributedError("--num-processes must be at least 1")
    port = free_port()
    base = list(command or [sys.executable, "-m", "emobench", "run"])
    procs = [subprocess.Popen([*base, *args], env=launch_env(n, r, port)) for r in range(n)]
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C reached the ranks too (one process group)
        _stop(procs)
        raise
    codes = [p.returncode for p in procs]
    for r, code in enumerate(codes):
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            echo(f"rank {r} of {n} was killed by {name}")
    if all(c == 0 for c in codes):
        return 0
    return codes[0] if codes[0] > 0 else 1
