"""Where a run configuration comes from: a shipped preset or a TOML file, read into a
raw dict, with ``--set key.sub=value`` overrides applied (:mod:`emobench.config`
validates the result)."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from emobench.errors import EmobenchError


class ConfigError(EmobenchError):
    """A configuration file, preset or --set override is invalid (message names the field)."""


def list_presets() -> dict[str, str]:
    """Shipped presets: name → the first line of their description."""
    out = {}
    for entry in sorted(resources.files("emobench.presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            desc = str(tomllib.loads(entry.read_text()).get("description", "")).strip()
            out[entry.name.removesuffix(".toml")] = desc.splitlines()[0] if desc else ""
    return out


def read_config_source(source: str) -> tuple[dict[str, Any], str]:
    """Read a preset name or a TOML path into a raw dict; returns (data, origin)."""
    path = Path(source)
    if source.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {source}")
        text, origin = path.read_text(), str(path)
    else:
        res = resources.files("emobench.presets").joinpath(f"{source}.toml")
        if not res.is_file():
            names = ", ".join(list_presets())
            raise ConfigError(f"unknown preset {source!r}; presets: {names} (or pass a .toml file)")
        text, origin = res.read_text(), f"preset {source}"
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as TOML, else a plain string).

    List items are addressed by position: ``datasets.0.root=/data/dfew``. Missing tables
    are created; a path through a value that is not a table or list, a list position out of
    range, an empty key part and an empty value are each a :class:`ConfigError`.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        parts = key.split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"--set {key}: empty key part (keys look like sweep.seeds)")
        value = _parse_value(key, raw)
        node: Any = data
        for i, part in enumerate(parts):
            where = ".".join(parts[:i])
            if not isinstance(node, (dict, list)):
                text = repr(node) if len(repr(node)) <= 40 else repr(node)[:37] + "..."
                raise ConfigError(f"--set {key}: {where} is {text}, not a table")
            if isinstance(node, list):
                pos = _list_pos(node, part, key, where)
                if i == len(parts) - 1:
                    node[pos] = value
                else:
                    node = node[pos]
            elif i == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})  # a missing table is created
    return data


def _parse_value(key: str, raw: str) -> Any:
    """A --set value: TOML when it parses as one value, else the text (stripped)."""
    if not raw.strip():
        raise ConfigError(f'--set {key}: empty value; give one (a quoted "" for an empty string)')
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw.strip()
    return parsed["v"] if list(parsed) == ["v"] else raw.strip()


def _list_pos(node: list, part: str, key: str, where: str) -> int:
    if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
        have = f"indexes 0..{len(node) - 1}" if node else "it is empty"
        raise ConfigError(f"--set {key}: list {where} has no index {part!r} ({have})")
    return int(part)
