"""CPU arithmetic that gives the same weights on any x86-64 machine, for the pre-training
commands whose output ships.

A float sum's last bits depend on how it is split: over threads, over SIMD lanes (AVX2 or
AVX-512), and over MKL's and oneDNN's kernels, which pick a code path per CPU. Measured on
5 synth-web steps: 1 vs 2 threads, and restricting MKL and ATen to AVX2 on an AVX-512 CPU,
each gave other weights; the shipped tiny CLIP, trained with default settings elsewhere,
did not regenerate here. With every knob below pinned, restricting the instruction set no
longer changes a bit (``tests/test_pretrain.py``, ``benchmarks/README.md``):

* one thread (``torch.set_num_threads(1)``; ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = 1);
* ``MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility, the same code path
  on every x86-64 CPU (Intel or AMD);
* ``ATEN_CPU_CAPABILITY=default``: ATen's own kernels without AVX2/AVX-512 variants;
* oneDNN (``torch.backends.mkldnn``) off: convolutions run through ATen and MKL instead.

The environment variables are read when MKL and ATen first run, so
:func:`pinned_environment` must come before anything computes with torch: the commands enter
it first thing. What could still differ: another torch build or C library (``libm``), or a
non-x86 CPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The environment that pins MKL's and ATen's code paths and the thread count.
PINNED_ENV: dict[str, str] = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "default",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@contextmanager
def pinned_environment() -> Iterator[bool]:
    """:data:`PINNED_ENV` set in this process for the block (the earlier values come back
    after it, for a caller that runs the command in-process); yields True when torch was
    not loaded yet (so MKL and ATen read it), False when it came too late to be sure."""
    before = {k: os.environ.get(k) for k in PINNED_ENV}
    os.environ.update(PINNED_ENV)
    try:
        yield "torch" not in sys.modules
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def reproducible_cpu(pinned_early: bool) -> Iterator[dict[str, Any]]:
    """One thread and oneDNN off for the block (both restored after). Yields what the
    weights' card records: ``{"reproducible": bool, "threads": 1, "cpu_capability": ...}``;
    reproducible only when :func:`pinned_environment` began before torch was loaded and ATen
    reports the default capability."""
    import torch

    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    # the attribute, not mkldnn.flags(): that also sets oneDNN's TF32 switch, and warns
    torch.backends.mkldnn.enabled = False
    capability = torch.backends.cpu.get_cpu_capability()
    env_ok = all(os.environ.get(k) == v for k, v in PINNED_ENV.items())
    state = {
        "reproducible": bool(pinned_early and env_ok and capability == "DEFAULT"),
        "threads": 1,
        "cpu_capability": capability,
        "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
        "onednn": False,
    }
    try:
        yield state
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


def describe(state: dict[str, Any]) -> str:
    """One line for a card: how the weights were computed, and whether they regenerate."""
    if state.get("reproducible"):
        return (
            "CPU arithmetic pinned (1 thread, MKL_CBWR=COMPATIBLE, ATen default kernels, "
            "oneDNN off): the same torch build regenerates these weights bit for bit on "
            "any x86-64 CPU"
        )
    return (
        "CPU arithmetic not pinned (torch was loaded before the command pinned it): "
        "these weights may differ in the last bits on another machine"
    )


__all__ = ["PINNED_ENV", "describe", "pinned_environment", "reproducible_cpu"]
