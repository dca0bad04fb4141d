"""Finished (cell, fold) parts on disk, each stamped with exactly what it was made from.

A part is one Parquet file ``<out>/parts/<cell_id>__f<fold>.parquet`` holding the cell's
predictions on that fold; its Parquet key-value metadata carries a *stamp*:

- ``recipe``: every setting that can change the part (the cell's settings, the model's
  adapter and options, the training settings, the clip limit, the decoding backend);
- ``data``: the fold's clip index fingerprint (ids, labels, splits, lengths, windows) and
  the dataset's label set;
- ``media``: a fingerprint of the fold's media files (size and modification time, or
  their content with ``[cache] fingerprint = "content"``: :mod:`emobench.provenance`);
- ``code``: emobench's version and a hash of its source files.

A rerun reuses a part only when its stamp equals the stamp the current configuration,
data and code would give; the guard lives in every part, so deleting any one file cannot
defeat it. :func:`audit` sorts existing parts into reusable, stale (with a one-line reason
naming what changed) and damaged (unreadable: truncated, empty, no stamp).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from emobench.io import atomic_open
from emobench.provenance import code_version, media_fingerprint  # noqa: F401  (re-exported)

STAMP_KEY = "emobench_stamp"
#: Parquet metadata key of what the model reported about the cell (see ``read_info``)
INFO_KEY = "emobench_cell_info"
STAMP_VERSION = 1


def make_stamp(
    recipe: Mapping[str, Any], data: str, media: str, code: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The stamp of a part (see the module docstring); JSON-ready."""
    return json.loads(
        json.dumps(
            {
                "stamp_version": STAMP_VERSION,
                "recipe": dict(recipe),
                "data": data,
                "media": media,
                "code": dict(code or code_version()),
            },
            sort_keys=True,
            default=str,
        )
    )


def write_part(
    path: Path, df: pl.DataFrame, stamp: Mapping[str, Any], info: Mapping[str, Any] | None = None
) -> None:
    """Write a part atomically, its stamp (and the model's cell info) in the Parquet metadata."""

    meta = {STAMP_KEY: json.dumps(stamp, sort_keys=True)}
    if info:
        meta[INFO_KEY] = json.dumps(info, sort_keys=True, default=str)
    with atomic_open(path) as fh:
        df.write_parquet(fh, compression="zstd", metadata=meta)


def read_info(path: Path) -> dict[str, Any]:
    """What the model reported about a part's cell (empty when nothing was recorded)."""
    try:
        raw = pl.read_parquet_metadata(path).get(INFO_KEY)
        info = json.loads(raw) if raw else {}
    except Exception:  # a part that reads back (checked by audit) but has no usable info
        return {}
    return info if isinstance(info, dict) else {}


class DamagedPart(Exception):
    """A part file that cannot be read back (its reason is the message)."""


def read_part(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A part's predictions and stamp; :class:`DamagedPart` when unreadable or unstamped."""
    try:
        meta = pl.read_parquet_metadata(path)
        df = pl.read_parquet(path, glob=False)
    except Exception as exc:  # polars/pyarrow raise several types for bad files
        text = " ".join(str(exc).split())[:160]
        size = path.stat().st_size if path.exists() else 0
        what = "empty file" if size == 0 else f"unreadable Parquet ({text})"
        raise DamagedPart(what) from None
    raw = meta.get(STAMP_KEY)
    try:
        stamp = json.loads(raw) if raw else None
    except ValueError:
        stamp = None
    if not isinstance(stamp, dict):
        raise DamagedPart("no emobench stamp (written by an older emobench or another tool)")
    return df, stamp


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON values: ``path: old → new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(f"{sub}: (unset) → {json.dumps(new[k])}")
            elif k not in new:
                out.append(f"{sub}: {json.dumps(old[k])} → (unset)")
            else:
                out += _diff(old[k], new[k], sub)
        return out
    if old != new:
        return [f"{path or 'value'}: {json.dumps(old)} → {json.dumps(new)}"]
    return []


def stamp_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why a part stamped ``old`` cannot stand for ``new`` (one short phrase), or None."""
    if old == new:
        return None
    if old.get("recipe") != new.get("recipe"):
        changes = _diff(old.get("recipe"), new.get("recipe"))
        more = "; …" if len(changes) > 3 else ""
        return f"settings changed ({'; '.join(changes[:3])}{more})"
    if old.get("data") != new.get("data"):
        return "dataset annotations changed (labels, splits, lengths or windows)"
    if old.get("media") != new.get("media"):
        return "media files changed"
    if old.get("code") != new.get("code"):
        o, n = old.get("code") or {}, new.get("code") or {}

        def one_line(value: Any) -> str:  # a stamp read from disk may hold anything
            return (
                json.dumps(value)
                if not isinstance(value, str)
                else value.encode("unicode_escape").decode()
            )

        return (
            f"emobench code changed ({one_line(o.get('emobench'))} source "
            f"{one_line(o.get('source'))} → {one_line(n.get('emobench'))} source "
            f"{one_line(n.get('source'))})"
        )
    return "stamp format changed"


@dataclass
class Audit:
    """Existing parts sorted by whether a rerun may reuse them."""

    ok: set[tuple[str, int]] = field(default_factory=set)
    #: (cell_id, fold) → why it is stale
    stale: dict[tuple[str, int], str] = field(default_factory=dict)
    #: (cell_id, fold) → why it is unreadable
    damaged: dict[tuple[str, int], str] = field(default_factory=dict)

    def stale_message(self, out: Path) -> str:
        """One line: how many parts are stale, the first reason, what to do."""
        (cid, fold), why = next(iter(sorted(self.stale.items())))
        return (
            f"{out} holds {len(self.stale)} finished part(s) made from other inputs: "
            f"{why} (first: {cid} fold {fold}); rerun with --recompute to recompute them, "
            "or choose another --out for a new results folder"
        )


def audit(paths: Mapping[tuple[str, int], Path], stamps: Mapping[tuple[str, int], Any]) -> Audit:
    """Sort the existing part files among ``paths`` against the expected ``stamps``."""
    result = Audit()
    for key, path in paths.items():
        if not path.is_file():
            continue
        try:
            _, stamp = read_part(path)
        except DamagedPart as exc:
            result.damaged[key] = str(exc)
            continue
        why = stamp_change(stamp, stamps[key])
        if why is None:
            result.ok.add(key)
        else:
            result.stale[key] = why
    return result
