"""Host ↔ device copies of frame batches that do not stall the host.

On CUDA a uint8 frame batch is staged in page-locked (pinned) host memory and copied with
``non_blocking=True``: the host goes on preparing the next batch while the copy and the
model run, and the copy moves a quarter of the bytes of a float batch (conversion,
resizing and normalisation then run on the device). Results stay on the device until
:func:`to_numpy` copies them all back at once, so the host waits once per encode call,
not once per batch. Pinned blocks come from torch's caching host allocator, which keeps a
block alive until the copies that read it have finished, so a staging tensor may be
dropped as soon as its copy is queued.

Elsewhere (CPU, MPS) these functions do exactly what a plain ``torch.from_numpy(x).to(dev)``
and ``.cpu().numpy()`` do, so CPU numbers are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def to_device(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A host array (any dtype, any strides) as a tensor on ``device``; CUDA: through a
    pinned staging buffer with an asynchronous copy (module docstring)."""
    import torch

    device = torch.device(device)
    host = torch.from_numpy(np.ascontiguousarray(frames))
    if device.type != "cuda":
        return host.to(device)
    staged = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
    staged.copy_(host)
    return staged.to(device, non_blocking=True)


def to_numpy(chunks: list[torch.Tensor], width: int) -> np.ndarray:
    """float32 (N, width) numpy array of device tensors concatenated along dim 0, copied
    back in one transfer; ``width`` shapes the empty result."""
    import torch

    if not chunks:
        return np.zeros((0, width), dtype=np.float32)
    out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    return out.float().cpu().numpy()


__all__ = ["to_device", "to_numpy"]
