"""One small registry for everything emobench looks up by name (models, datasets,
samplers, orders, prior corrections, frame sources, re-balancing recipes, report priors).

A :class:`Registry` is a read-only mapping ``name → entry``. Entries are added with the
:meth:`Registry.register` decorator (or :meth:`Registry.add`) by the module that defines
them. Before the first lookup a registry can import what registers into it, once:

* ``modules``: a fixed list of module names;
* ``discover``: a callable returning module names, e.g. :func:`find_modules` (modules of a
  package found by :mod:`pkgutil` without importing them);
* ``entry_points``: an :mod:`importlib.metadata` entry-point group (``emobench.models``,
  ``emobench.datasets``), so an installed package adds entries without editing emobench:
  each entry point names a module (or an object in one) whose import registers.

An unknown name raises the registry's ``error`` class (the module's own error, so existing
``except`` clauses keep working) with one line naming what is allowed and, when a close
match exists, a did-you-mean suggestion (:mod:`difflib`).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from emobench.errors import EmobenchError

T = TypeVar("T")
F = TypeVar("F")


class RegistryError(EmobenchError, KeyError):
    """An unknown name (a ``KeyError`` too, like a missing mapping key)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0]) if self.args else ""


class PluginError(EmobenchError):
    """An entry-point plugin could not be loaded."""


def suggest(name: object, names: Iterable[str]) -> str | None:
    """The registered name closest to ``name`` (:func:`difflib.get_close_matches`), or None."""
    if not isinstance(name, str):
        return None
    pool = list(names)
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.strip().lower(), pool, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_message(kind: str, name: object, allowed: Iterable[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'? allowed: a, b`` (the hint only when close)."""
    allowed = list(allowed)
    best = suggest(name, allowed)
    hint = f" did you mean {best!r}?" if best is not None and best != name else ""
    return f"unknown {kind} {name!r};{hint} allowed: {', '.join(allowed) or '(none)'}"


def find_modules(
    package: str,
    *,
    submodule: str | None = None,
    marker: str | None = None,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Names of ``package``'s modules that register, found without importing them.

    With ``submodule`` (e.g. ``"adapter"``): ``package.<sub>.<submodule>`` for each
    subpackage that has such a module. With ``marker`` (e.g. ``"@register_dataset("``): each
    direct submodule or subpackage whose source (``__init__.py`` for a package) contains
    the marker, so helper modules (and their heavy imports) are left alone. Module names
    in ``exclude`` (e.g. the registry's own module, which names the marker) are skipped.
    """
    pkg = importlib.import_module(package)
    out: list[str] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or f"{package}.{info.name}" in exclude:
            continue
        base = Path(getattr(info.module_finder, "path", ""))
        if submodule is not None:
            if info.ispkg and any(
                m.name == submodule for m in pkgutil.iter_modules([str(base / info.name)])
            ):
                out.append(f"{package}.{info.name}.{submodule}")
            continue
        src = base / info.name / "__init__.py" if info.ispkg else base / f"{info.name}.py"
        try:
            text = src.read_text(encoding="utf-8")
        except OSError:
            continue
        if marker is None or marker in text:
            out.append(f"{package}.{info.name}")
    return out


def _entry_points(group: str) -> list[Any]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: ep.name)


class Registry(Mapping[str, T]):
    """A named table of entries with lazy loading and one-line did-you-mean errors.

    ``kind`` names the entries in messages (``"dataset"`` → ``unknown dataset 'x'``);
    ``entries`` are initial entries (a table written as a dict literal).
    ``sort``: list names sorted (True) or in registration order (False). Registering a
    name again replaces the entry. Lookups (``reg[name]``, ``in``, iteration, ``len``)
    first import ``modules``, then ``discover()``, then the ``entry_points`` group, once.
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T] | None = None,
        *,
        error: Callable[[str], Exception] = RegistryError,
        modules: Iterable[str] = (),
        discover: Callable[[], Iterable[str]] | None = None,
        entry_points: str | None = None,
        sort: bool = True,
    ) -> None:
        self.kind = kind
        self.error = error
        self.modules = tuple(modules)
        self.discover = discover
        self.entry_points = entry_points
        self.sort = sort
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.add(name, entry)
        self._lock = threading.RLock()
        self._state = "new"  # new → loading → loaded

    # ---------------------------------------------------------------- registering

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` (replacing an earlier one); returns it."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register the decorated object itself under ``name``."""

        def deco(obj: F) -> F:
            self.add(name, obj)  # type: ignore[arg-type]
            return obj

        return deco

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        """Import the modules that register here (once; re-entrant while importing)."""
        if self._state == "loaded":
            return
        with self._lock:
            if self._state != "new":  # loaded meanwhile, or a lookup during our own imports
                return
            self._state = "loading"
            try:
                names = list(self.modules)
                if self.discover is not None:
                    names += [m for m in self.discover() if m not in names]
                for mod in names:
                    importlib.import_module(mod)
                if self.entry_points:
                    for ep in _entry_points(self.entry_points):
                        try:
                            ep.load()
                        except Exception as exc:
                            raise PluginError(
                                f"{self.entry_points} plugin {ep.name!r} ({ep.value}) "
                                f"failed to load: {type(exc).__name__}: {exc}"
                            ) from exc
            except BaseException:
                self._state = "new"
                raise
            self._state = "loaded"

    # ---------------------------------------------------------------- lookups

    def names(self) -> list[str]:
        """The registered names (sorted, or in registration order)."""
        self.load()
        return sorted(self._entries) if self.sort else list(self._entries)

    def message(self, name: object) -> str:
        """The one-line error text for an unknown ``name``."""
        return unknown_message(self.kind, name, self.names())

    def __getitem__(self, name: str) -> T:
        self.load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(self.message(name)) from None

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.load()
        try:
            return self._entries.get(name, default)
        except TypeError:  # unhashable
            return default

    def __contains__(self, name: object) -> bool:
        self.load()
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


__all__ = ["PluginError", "Registry", "RegistryError", "find_modules", "suggest", "unknown_message"]
