"""Model registry: ``<family>:<argument>`` names → adapter factories.

Families register themselves with :func:`register_model` in their own module; adding a
model family is one module plus one line in ``_MODULES``. Names in configs look like
``baseline:gru``, ``openclip:ViT-B-32@/weights/vitb32.safetensors``, ``hf:/models/qwen``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emobench.errors import EmobenchError

# Modules that register model families when imported (imported lazily).
_MODULES = ("emobench.models.baseline.adapter", "emobench.models.openclip.adapter")


class UnknownModelError(EmobenchError):
    """A model name whose family is not registered or whose argument is invalid."""


@dataclass(frozen=True)
class ModelFamily:
    family: str
    factory: Callable[..., Any]  # (argument: str, options: dict) -> adapter
    description: str
    arguments: tuple[str, ...] = ()  # allowed arguments when the set is closed (e.g. heads)


_FAMILIES: dict[str, ModelFamily] = {}


def register_model(
    family: str, description: str, arguments: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(argument, options)`` for ``family:<argument>`` names."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _FAMILIES[family] = ModelFamily(family, factory, description, arguments)
        return factory

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def list_families() -> list[ModelFamily]:
    _load_all()
    return [_FAMILIES[k] for k in sorted(_FAMILIES)]


def split_name(name: str) -> tuple[str, str]:
    family, sep, arg = name.partition(":")
    if not sep or not arg:
        raise UnknownModelError(f"model name {name!r} must look like <family>:<argument>")
    return family, arg


def check_model_name(name: str) -> ModelFamily:
    """Validate a model name without building the model (used by config validation)."""
    _load_all()
    family, arg = split_name(name)
    if family not in _FAMILIES:
        known = ", ".join(sorted(_FAMILIES))
        raise UnknownModelError(f"unknown model family {family!r} in {name!r}; registered: {known}")
    info = _FAMILIES[family]
    if info.arguments and arg not in info.arguments:
        raise UnknownModelError(
            f"unknown {family} model {arg!r}; allowed: {', '.join(info.arguments)}"
        )
    return info


def create_model(name: str, options: dict[str, Any] | None = None) -> Any:
    """Build the adapter for ``name`` (heavy imports happen here, not at registration)."""
    info = check_model_name(name)
    return info.factory(split_name(name)[1], dict(options or {}))
