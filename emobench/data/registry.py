"""Dataset registry: a name → loader. Adding a dataset is one module plus one decorator line.

A dataset is a module or subpackage of :mod:`emobench.data` whose loader is decorated
with :func:`register_dataset`; it is found on the first lookup (no list to edit), and only
modules that contain that decorator are imported, so ``--help`` stays fast. Another package
adds a dataset through an entry point in the ``emobench.datasets`` group naming a module
that calls :func:`register_dataset`.

A loader is a callable ``(root: Path, **options) -> pl.DataFrame`` returning a clip index
validated by :func:`emobench.data.index.validate_index`, or ``(index, problems)`` where
``problems`` lists what the loader found wrong and worked around (a clip without its media,
a frame count that disagrees with the annotation, ...; see :mod:`emobench.data.loading`);
:func:`load_dataset` returns both forms as ``(index, problems)``. An optional ``prepare`` hook
``(root: Path, options: dict | None) -> str | None`` makes the dataset ready under ``root``
before it is loaded (e.g. generates it) and may return a one-line warning.

:func:`check_root` and :func:`check_loader_options` are the checks every caller shares
(``emobench run`` through its config, ``emobench data check`` and ``data show`` through
:func:`load_dataset`): a root the system cannot look at and an option the loader does not
take are one line each.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.registry import Registry, RegistryError, find_modules

if TYPE_CHECKING:
    import polars as pl

Loader = Callable[..., "pl.DataFrame | tuple[pl.DataFrame, list[dict[str, Any]]]"]
Prepare = Callable[[Path, "dict[str, Any] | None"], "str | None"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Loader
    description: str
    prepare: Prepare | None = None


class UnknownDatasetError(RegistryError):
    """A dataset name that is not registered (a ``KeyError`` too, for older callers)."""


class DatasetRootError(EmobenchError, ValueError):
    """A dataset root the system cannot look at (a symlink loop, no permission, a name too
    long); a ``ValueError`` too, so a config validator can raise it."""


class LoaderOptionError(EmobenchError, ValueError):
    """An option a dataset's loader does not take, or of the wrong type; a ``ValueError``
    too, so a config validator can raise it."""


#: Registered datasets by name; dataset modules of :mod:`emobench.data` and the
#: ``emobench.datasets`` entry points are imported on the first lookup.
DATASETS: Registry[DatasetInfo] = Registry(
    "dataset",
    error=UnknownDatasetError,
    discover=lambda: find_modules(
        "emobench.data", marker="@register_dataset(", exclude=(__name__,)
    ),
    entry_points="emobench.datasets",
)


def register_dataset(
    name: str, description: str, prepare: Prepare | None = None
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name`` (with an optional ``prepare`` hook)."""

    def deco(fn: Loader) -> Loader:
        DATASETS.add(name, DatasetInfo(name, fn, description, prepare))
        return fn

    return deco


def list_datasets() -> list[DatasetInfo]:
    return list(DATASETS.values())


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS[name]


def check_root(root: str | Path) -> None:
    """Refuse a root that cannot be looked at (:class:`DatasetRootError`, one line naming
    it and why). A root that does not exist passes: its loader or ``prepare`` hook says what
    is missing, or makes it."""
    try:
        os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return
    except (OSError, ValueError) as exc:  # ELOOP, EACCES, ENAMETOOLONG; NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DatasetRootError(f"dataset root {root}: {reason}") from None


def loader_options(name: str) -> dict[str, inspect.Parameter]:
    """The options dataset ``name``'s loader takes: its keyword parameters (keyword-only,
    or with a default), by name."""
    params = inspect.signature(get_dataset(name).loader).parameters.values()
    return {
        p.name: p
        for p in params
        if p.kind is p.KEYWORD_ONLY
        or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
    }


def check_loader_options(name: str, options: Mapping[str, object]) -> None:
    """Refuse an option dataset ``name``'s loader does not take, or a non-bool value for an
    option whose default is a bool (:class:`LoaderOptionError`, one line naming the
    allowed options)."""
    params = loader_options(name)
    for key, value in options.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise LoaderOptionError(f"unknown {name} loader option {key!r}; allowed: {allowed}")
        if isinstance(params[key].default, bool) and not isinstance(value, bool):
            raise LoaderOptionError(f"{key} must be true or false, got {value!r}")


def load_index(name: str, root: str | Path, **options: object) -> pl.DataFrame:
    """Load the clip index of dataset ``name`` stored under ``root`` (problems dropped:
    :func:`load_dataset` returns them too)."""
    return load_dataset(name, root, **options)[0]


def load_dataset(
    name: str, root: str | Path, **options: object
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Load dataset ``name`` under ``root``: its validated clip index and the problems its
    loader reported, each ``{"clip_id": str | None, "kind": str, "detail": str}`` (kinds:
    :data:`emobench.data.loading.KINDS`; ``note`` entries have no clip). A loader that
    returns just the index reports no problems. The root and options are checked first
    (:func:`check_root`, :func:`check_loader_options`)."""
    # lazy: pulls in polars; kept off `emobench --help`
    from emobench.data.index import validate_index

    check_loader_options(name, options)
    check_root(root)
    out = get_dataset(name).loader(Path(root), **options)
    index, problems = out if isinstance(out, tuple) else (out, [])
    return validate_index(index), [dict(p) for p in problems]
