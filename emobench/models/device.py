"""Device selection, mixed precision and out-of-memory back-off shared by model code.

A device setting is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``: the run config and
``--device`` check its spelling with :func:`check_device_spec` (no torch import), and
:func:`resolve_device` turns it into a ``torch.device`` once (``auto``: CUDA when present,
else CPU); model code passes that device (or its string) on. CUDA gets bf16 autocast where
the card supports it; a batch that does not fit on the GPU is retried at half the size down
to 1 before giving up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from emobench.settings import (  # noqa: F401  (re-exported: the spelling check is a setting's)
    DEVICE_FORMS,
    DeviceError,
    check_device_spec,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

T = TypeVar("T")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` of a device setting (:func:`check_device_spec`): ``"auto"`` →
    CUDA if available else CPU; ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` and ``"mps"`` (an error
    if that device is absent here). A ``torch.device`` is taken as resolved already."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    name = check_device_spec(spec)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {spec!r} requested but MPS is not available here")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but CUDA is not available here")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"bad device {spec!r}: {exc}") from None
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(
            f"device {spec!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
        )
    return device


@contextlib.contextmanager
def autocast(device: torch.device | str) -> Iterator[None]:
    """bf16 autocast on a CUDA device that supports it; a no-op elsewhere (CPU stays fp32)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def run_with_oom_backoff(fn: Callable[[int], T], batch_size: int) -> T:
    """Call ``fn(batch_size)``; on CUDA out-of-memory retry with half the batch, down to 1,
    then re-raise. ``fn`` must be safe to re-run from scratch (no partial side effects)."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    while True:
        try:
            return fn(batch_size)
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
        # Outside the except block, so the failed attempt's tensors (held by the traceback)
        # are released before the cache is emptied.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        batch_size = max(1, batch_size // 2)


__all__ = [
    "DEVICE_FORMS",
    "DeviceError",
    "autocast",
    "check_device_spec",
    "resolve_device",
    "run_with_oom_backoff",
]
