"""Weights files read safely: a damaged, truncated or unsafe file is one line, not a traceback.

- :func:`tensor_names` opens a weights file the way a loader will (a ``.safetensors``
  header; a PyTorch file with ``weights_only=True``, memory-mapped when it is a zip archive,
  so no tensor data is read) and returns its tensor names, or raises
  :class:`WeightsFileError` saying why it cannot be used: truncated, damaged, a pickle that
  holds Python objects (never unpickled: that would run code), or no state dict at all.
- :func:`save_safetensors` writes a ``.safetensors`` file atomically and byte for byte the
  same for the same tensors and metadata: safetensors keeps its metadata in a hash map whose
  order changes from process to process, so its own header is not reproducible.
- :func:`read_errors` and :func:`describe_read_error` are for loaders that hand a file or a
  folder to another library (transformers, peft): the exceptions those raise for a file
  they cannot read, besides ``OSError`` / ``ValueError``, and one line for any of them.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError
from emobench.io import atomic_write_bytes

#: What a pickle refused by ``weights_only`` loading is, and what to give instead.
UNSAFE_PICKLE = (
    "a pickle that holds Python objects besides tensors, which emobench never unpickles "
    "(that would run code from the file); save the weights as .safetensors or as a plain "
    "state dict (torch.save(model.state_dict(), path))"
)


class WeightsFileError(EmobenchError):
    """A weights file that cannot be used (the message names it and says why)."""


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this weights file cannot be read", besides ``OSError`` and
    ``ValueError``: safetensors' own error (truncated or damaged file), a pickle refused by
    ``weights_only`` loading, a pickle that ends early, a damaged zip archive."""
    from safetensors import SafetensorError

    return (SafetensorError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: ((?:\"[^\"]*\"(?:, )?)+)")


def describe_read_error(exc: BaseException) -> str:
    """One line saying why a weights file (or a model folder's weights) could not be used:
    a short form of safetensors, pickle and ``load_state_dict`` errors, else the error's
    first 200 characters."""
    from safetensors import SafetensorError

    if isinstance(exc, pickle.UnpicklingError):
        return UNSAFE_PICKLE
    if isinstance(exc, SafetensorError):
        return f"damaged or truncated safetensors file ({_first_line(exc)})"
    if isinstance(exc, EOFError):
        return "the file ends early (truncated)"
    if isinstance(exc, zipfile.BadZipFile):
        return f"damaged archive ({_first_line(exc)})"
    text = str(exc)
    if "Error(s) in loading state_dict" in text:
        parts = []
        for kind, keys in _KEYS.findall(text):
            names = re.findall(r"\"([^\"]*)\"", keys)
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{len(names)} {kind.lower()} ({shown})")
        sizes = text.count("size mismatch for ")
        if sizes:
            parts.append(f"{sizes} of another shape")
        return "its tensors do not match the architecture: " + "; ".join(parts or ["mismatch"])
    return _first_line(exc)


def tensor_names(path: str | Path) -> list[str]:
    """The tensor names of the state dict in ``path`` (``.safetensors``, or a PyTorch file
    holding a state dict, or ``{"state_dict": ...}``), read without running pickled code;
    a :class:`WeightsFileError` naming the file when it cannot be used."""
    import torch
    from safetensors import SafetensorError, safe_open

    p = str(path)
    if p.endswith(".safetensors"):
        try:
            with safe_open(p, framework="numpy") as fh:
                return list(fh.keys())
        except (OSError, ValueError, SafetensorError) as exc:
            raise WeightsFileError(f"{p}: {describe_read_error(exc)}") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except (OSError, RuntimeError, ValueError, *read_errors()) as exc:
        raise WeightsFileError(
            f"{p}: not a readable weights file: {describe_read_error(exc)}"
        ) from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not any(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        what = "an empty state dict" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise WeightsFileError(f"{p}: holds {what}, not a state dict of tensors")
    return [str(k) for k in state]


def canonical_header(blob: bytes) -> bytes:
    """``blob`` (a whole safetensors file) with its header's ``__metadata__`` keys sorted,
    the header re-padded with spaces to 8 bytes and its length prefix rewritten; the tensor
    entries keep their order (safetensors' own, by dtype and name) and the data is untouched
    (its offsets are relative to the end of the header)."""
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + size])
    meta = header.pop("__metadata__", None)
    ordered: dict[str, Any] = {}
    if meta:
        ordered["__metadata__"] = dict(sorted(meta.items()))
    ordered.update(header)
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + size :]


def save_safetensors(
    tensors: Mapping[str, Any], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``tensors`` (torch) with ``metadata`` to ``path`` atomically; the same tensors
    and metadata give the same bytes in every process (see :func:`canonical_header`)."""
    from safetensors.torch import save

    blob = canonical_header(save(dict(tensors), metadata=dict(metadata) if metadata else None))
    atomic_write_bytes(path, blob)
    return Path(path)


__all__ = [
    "UNSAFE_PICKLE",
    "canonical_header",
    "save_safetensors",
    "WeightsFileError",
    "describe_read_error",
    "read_errors",
    "tensor_names",
]
