"""Pieces shared by the VideoMAE-style vision transformers that emobench ports from their
released code (``maedfer:``, ``hicmae:``): the fixed sinusoid position table, the ImageNet
preprocessing their fine-tuning and test loaders use, and a safe reader of their released
checkpoint files.

* :func:`sinusoid_table`: the "Attention is all you need" table VideoMAE-family encoders
  add to their patch tokens. It is not stored in the checkpoints (a plain tensor
  attribute, not a parameter or buffer), so it is rebuilt here: position ``p``, channel
  ``j``: ``p / 10000^(2⌊j/2⌋/D)``, sine on even channels, cosine on odd ones, computed in
  float64 and cast to float32 as the released code does.
* :func:`imagenet_pixels`: uint8 ``(B, T, H, W, 3)`` → float ``(B, 3, T, H, W)``,
  ``(x / 255 − mean) / std`` with the ImageNet statistics (the order of operations the
  released loaders use, so the floats agree to the last bit on CPU).
* :func:`read_state_dict`: a ``.pth`` / ``.pt`` / ``.bin`` file through
  ``torch.load(weights_only=True)`` with exactly one class allow-listed,
  ``argparse.Namespace`` (the authors' save routine pickles their command-line arguments
  under ``args``); any other pickled class is refused in one error line, never loaded with
  ``weights_only=False``. ``.safetensors`` files are read with safetensors. The tensors
  are unwrapped from ``model`` / ``module`` / ``state_dict`` when nested.

torch is imported inside the functions (this module is imported at config time).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError

if TYPE_CHECKING:
    import torch

#: ImageNet channel statistics (the released DFER loaders' ``Normalize``)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: keys a released checkpoint may nest its tensors under, tried in this order
STATE_KEYS = ("model", "module", "state_dict")

#: the one non-tensor class a released checkpoint may pickle
ALLOWED_CLASSES = (argparse.Namespace,)


class CheckpointError(EmobenchError):
    """A checkpoint file that is missing, unreadable, or pickles a class not allowed."""


@dataclass
class StateDict:
    """The tensors of a released checkpoint and what came with them."""

    tensors: dict[str, Any]
    #: the pickled ``argparse.Namespace`` under ``args`` as a dict ({} when absent)
    args: dict[str, Any] = field(default_factory=dict)
    #: the key the tensors were nested under ("" when at top level)
    nested_under: str = ""
    path: Path | None = None


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The fixed sinusoid position table ``(1, n_position, dim)`` float32 (module
    docstring)."""
    import torch

    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * (j // 2) / dim)
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float().unsqueeze(0)


def imagenet_pixels(
    frames: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 ``(B, T, H, W, 3)`` → normalised float32 ``(B, 3, T, H, W)``."""
    import torch

    x = frames.float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)
    s = torch.tensor(std, dtype=torch.float32, device=x.device)
    x = (x - m) / s
    return x.permute(0, 4, 1, 2, 3).contiguous()


def _unwrap(obj: Any, where: str) -> tuple[dict[str, Any], str]:
    import torch

    if isinstance(obj, dict):
        for key in STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner:
                return inner, key
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj, ""
    raise CheckpointError(
        f"{where}: no state dict in the checkpoint (expected tensors at top level or "
        f"under one of {list(STATE_KEYS)})"
    )


def _torch_load(path: Path, where: str) -> Any:
    import pickle
    import re

    import torch

    try:
        with torch.serialization.safe_globals(list(ALLOWED_CLASSES)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message names the offending global: keep just its name
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{where}: refused {path.name}: it pickles a class other than "
            f"argparse.Namespace{detail}; emobench loads checkpoints with "
            "weights_only=True only (re-save the state dict, or convert it to safetensors)"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{where}: cannot read {path}: {reason}") from None


def read_state_dict(path: str | Path, where: str) -> StateDict:
    """The tensors of a released checkpoint file (module docstring); every problem is one
    :class:`CheckpointError` line naming ``where`` (e.g. ``maedfer:/w/ckpt.pth``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{where}: checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return StateDict(dict(load_file(str(path))), path=path)
        except (SafetensorError, OSError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise CheckpointError(f"{where}: cannot read {path}: {reason}") from None
    obj = _torch_load(path, where)
    tensors, key = _unwrap(obj, where)
    args = obj.get("args") if isinstance(obj, dict) else None
    return StateDict(
        dict(tensors),
        args=dict(vars(args)) if isinstance(args, argparse.Namespace) else {},
        nested_under=key,
        path=path,
    )


def strip_prefixes(tensors: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Keys with the first matching prefix removed (``encoder.``/``backbone.`` of
    pre-training checkpoints, ``module.`` of DistributedDataParallel); other keys kept."""
    out = {}
    for k, v in tensors.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p) :]
                break
        out[k] = v
    return out


__all__ = [
    "ALLOWED_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "StateDict",
    "imagenet_pixels",
    "read_state_dict",
    "sinusoid_table",
    "strip_prefixes",
]
