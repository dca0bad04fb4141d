"""Saved modules: safetensors weights plus a JSON sidecar, written atomically, no pickle.

A module that can be saved carries ``module.spec`` (``{"kind", "name", "kwargs"}``), which
the sidecar ``<stem>.json`` records with the caller's ``config``; :func:`load_module`
rebuilds the module from it. The temporal heads (and linear probes) of
:mod:`emobench.training.temporal_heads` are built here; a family that saves a module of its
own registers how to build it (:func:`register_module`, e.g. the baseline's ``frame-cnn``
encoder), so this module names no family. Checkpoints of training runs are saved modules
whose file name carries a hash of their recipe; :func:`load_checkpoint` reuses one or
removes a damaged one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.io import atomic_write_text
from emobench.models.weights_file import save_safetensors

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

_FORMAT = "emobench-module/1"

#: ``(kind, name)`` → the constructor of a module a family saves (its ``spec`` kwargs)
_BUILDERS: dict[tuple[str, str], Callable[..., nn.Module]] = {}


class ModuleFileError(EmobenchError):
    """A saved module that cannot be read back (missing sidecar, unknown kind, bad weights)."""


def register_module(kind: str, name: str, build: Callable[..., nn.Module]) -> None:
    """Tell :func:`load_module` how to rebuild a saved module whose ``spec`` is
    ``{"kind": kind, "name": name, ...}``: ``build(**spec["kwargs"])``. Called by the module
    that defines it, at import (the family imports it before loading its checkpoints)."""
    _BUILDERS[(kind, name)] = build


def recipe_hash(recipe: Any) -> str:
    """12 hex digits of SHA-256 over ``recipe`` as sorted-key JSON: the part of a
    checkpoint's file name that changes with anything that changes its weights."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a weights file: ``x.safetensors`` → ``x.json``."""
    return Path(path).with_suffix(".json")


def save_module(module: nn.Module, path: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Write ``<stem>.json`` with ``module``'s architecture (``module.spec``) and the
    caller's ``config``, then its weights to ``path`` (safetensors). Each file atomic; no
    pickle."""
    spec = getattr(module, "spec", None)
    if not isinstance(spec, dict):
        raise ModuleFileError(f"{path}: only emobench encoders and heads can be saved")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    meta = {"format": _FORMAT, "module": spec, "config": config or {}}
    # the sidecar first, the weights last: the weights file appearing is the commit, so a
    # reader (another rank of a distributed run) never finds weights without their sidecar
    text = json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(sidecar_path(path), text)
    return save_safetensors(tensors, path, {"format": _FORMAT})


def read_module_config(path: str | Path) -> dict[str, Any]:
    """The sidecar of a saved module: ``{"format", "module": spec, "config": ...}``."""
    side = sidecar_path(path)
    if not side.is_file():
        raise ModuleFileError(f"{path}: sidecar {side} not found")
    try:
        meta = json.loads(side.read_text())
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ModuleFileError(f"{side}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "module" not in meta:
        raise ModuleFileError(f"{side}: not an emobench module sidecar ({_FORMAT})")
    spec = meta["module"]
    if not (
        isinstance(spec, dict)
        and isinstance(spec.get("kind"), str)
        and isinstance(spec.get("name"), str)
        and isinstance(spec.get("kwargs"), dict)
    ):
        raise ModuleFileError(f"{side}: its module is not {{kind, name, kwargs}}")
    if not isinstance(meta.get("config", {}), dict):
        raise ModuleFileError(f"{side}: its config is not a table")
    return meta


def _build(path: Path, spec: dict[str, Any]) -> nn.Module:
    """An untrained module of the architecture ``spec`` describes; a
    :class:`ModuleFileError` when the sidecar's constructor arguments do not build one
    (an argument the module does not take, a value of the wrong type, an unknown head)."""
    kwargs = dict(spec["kwargs"])
    build = _BUILDERS.get((spec["kind"], spec["name"]))
    try:
        if build is not None:
            return build(**kwargs)
        if spec["kind"] == "head":
            # lazy: pulls in torch
            from emobench.training.temporal_heads import build_head

            return build_head(spec["name"], **kwargs)
    except (TypeError, ValueError, EmobenchError) as exc:  # the arguments come from the file
        raise ModuleFileError(f"{path}: its sidecar does not build a module ({exc})") from None
    known = ", ".join(sorted({"head", *(f"{k}/{n}" for k, n in _BUILDERS)}))
    raise ModuleFileError(
        f"{path}: unknown module {spec['kind']}/{spec['name']} (known here: {known}; a "
        "family's own modules are known once that family is imported)"
    )


def load_module(path: str | Path) -> nn.Module:
    """Rebuild a module saved by ``save_module`` (CPU, eval mode). The sidecar's ``config``
    is attached as ``module.emobench_config``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModuleFileError(f"{path}: weights file not found")
    meta = read_module_config(path)
    spec = meta["module"]
    module = _build(path, spec)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError for truncated files
        reason = " ".join(str(exc).split())
        raise ModuleFileError(f"{path}: unreadable weights ({reason})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except (RuntimeError, OSError) as exc:
        raise ModuleFileError(f"{path}: weights do not match {spec}: {exc}") from None
    module.emobench_config = meta.get("config", {})
    return module.eval()


def load_checkpoint(path: str | Path, warn: Callable[[str], None]) -> nn.Module | None:
    """A checkpoint written by :func:`save_module`, or None when there is none to reuse.

    A damaged checkpoint (truncated or empty weights, unreadable sidecar) is reported
    through ``warn`` in one line and removed, so the caller trains it again.
    """
    path = Path(path)
    if not path.exists():  # a sidecar alone is a save in progress (or cut short): not yet one
        return None
    try:
        return load_module(path)
    except ModuleFileError as exc:
        warn(f"damaged checkpoint {path.name} ({exc}): removed, it is trained again")
        for p in (path, sidecar_path(path)):
            p.unlink(missing_ok=True)
        return None


__all__ = [
    "ModuleFileError",
    "load_checkpoint",
    "load_module",
    "read_module_config",
    "recipe_hash",
    "register_module",
    "save_module",
    "sidecar_path",
]
