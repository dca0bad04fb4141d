"""Worker processes die with their parent, also when the parent is SIGKILLed (no clean-up
runs then): the ``process`` decode workers and the synth renderers (the report's figure
worker is tested in ``test_output_honesty.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENTS = {
    "decode workers": """
        from emobench.runner.prefetch import _processes
        pool = _processes(1)
        print(pool.submit(os.getpid).result(), flush=True)
    """,
    "synth renderers": """
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from emobench.data.synth.generate import _worker_init
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        print(pool.submit(os.getpid).result(), flush=True)
    """,
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("what", sorted(PARENTS))
def test_worker_dies_with_a_killed_parent(what: str) -> None:
    code = "import os, time\n" + textwrap.dedent(PARENTS[what]) + "time.sleep(120)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        assert worker != proc.pid and _alive(worker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), f"{what}: worker {worker} outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
