"""Dataset registry: a name → loader. Adding a dataset is one module plus one decorator line.

A loader is a callable ``(root: Path, **options) -> pl.DataFrame`` returning a clip index
validated by :func:`emobench.data.index.validate_index`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emobench.errors import EmobenchError

if TYPE_CHECKING:
    import polars as pl

Loader = Callable[..., "pl.DataFrame"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Loader
    description: str


_REGISTRY: dict[str, DatasetInfo] = {}

# Modules that register datasets when imported (kept lazy so `--help` stays fast).
_MODULES = ("emobench.data.synth",)


def register_dataset(name: str, description: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = DatasetInfo(name, fn, description)
        return fn

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def list_datasets() -> list[DatasetInfo]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


class UnknownDatasetError(EmobenchError, KeyError):
    """A dataset name that is not registered (a ``KeyError`` too, for older callers)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0])


def get_dataset(name: str) -> DatasetInfo:
    _load_all()
    if name not in _REGISTRY:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def load_index(name: str, root: str | Path, **options: object) -> pl.DataFrame:
    """Load the clip index of dataset ``name`` stored under ``root``."""
    from emobench.data.index import validate_index

    return validate_index(get_dataset(name).loader(Path(root), **options))
