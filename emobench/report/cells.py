"""Which cells a report shows: settings, "off" values of the switches, the cell table,
each model's reference cell and the cells that get a confusion figure.

Plain polars (no matplotlib, no torch), like the rest of :mod:`emobench.report.analysis`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from emobench.errors import EmobenchError
from emobench.labels import INVALID
from emobench.results import SETTING_COLUMNS

#: The settings that identify a cell.
DEFAULT_SETTING_COLUMNS: tuple[str, ...] = SETTING_COLUMNS

#: Setting values that mean "this option is off" (the reference / baseline variant).
_OFF_VALUES = {"", "none", "off", "false", "no", "0", "null", "natural", "original"}


class ReportError(EmobenchError):
    """The run folder cannot be turned into a report (message names the file/field)."""


def setting_columns() -> tuple[str, ...]:
    """The settings columns, taken from :mod:`emobench.results` when it defines them."""
    try:
        # lazy: optional, with a fallback
        from emobench.results import SETTING_COLUMNS
    except ImportError:  # pragma: no cover - results.py is part of the package
        return DEFAULT_SETTING_COLUMNS
    return tuple(SETTING_COLUMNS)


def is_off(value: Any) -> bool:
    """Whether a setting value means "off" (none / original / natural / null / False)."""
    if value is None or value is False:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in _OFF_VALUES


#: The reference ("switch off") value of each long-tail switch. A switch not listed here
#: uses :func:`is_off` alone; every switch also accepts the :func:`is_off` values (``none``,
#: null, ...) as its reference.
SWITCH_REFERENCE: dict[str, str] = {
    "prior_correction": "none",
    "rebalancing": "instance-balanced",
}


def is_reference(switch: str, value: Any) -> bool:
    """Whether ``value`` is the reference (off) value of ``switch`` (see SWITCH_REFERENCE)."""
    if is_off(value):
        return True
    ref = SWITCH_REFERENCE.get(switch)
    return ref is not None and str(value).strip().lower() == ref.lower()


_SLUG_BAD = re.compile(r"[^a-z0-9._-]+")


def slug(*parts: Any) -> str:
    """A file-name-safe, stable slug built from setting values (lower case, ``-`` joined)."""
    pieces = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, float) and part.is_integer():
            part = int(part)
        text = _SLUG_BAD.sub("-", str(part).lower()).strip("-.")
        if text:
            pieces.append(text)
    out = "_".join(pieces) or "x"
    return out[:150]


#: Row order of cell tables: model first, then sampling, order and switches.
_SORT_SETTINGS = (
    "dataset",
    "model",
    "density_unit",
    "density",
    "sampler",
    "order",
    "enrichment",
    "rebalancing",
    "prior_correction",
    "seed",
)


def cell_table(predictions: pl.DataFrame, settings: Sequence[str]) -> pl.DataFrame:
    """One row per cell: its settings, ``n_rows``, ``n_clips``, ``n_folds``, ``n_invalid``."""
    present = [c for c in settings if c in predictions.columns]
    return (
        predictions.group_by("cell_id", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in present],
            pl.len().alias("n_rows"),
            pl.col("clip_id").n_unique().alias("n_clips"),
            pl.col("fold").n_unique().alias("n_folds"),
            (pl.col("pred") == INVALID).sum().alias("n_invalid"),
        )
        .sort(
            [c for c in (*_SORT_SETTINGS, "cell_id") if c in present or c == "cell_id"],
            nulls_last=True,
        )
    )


def _density_rank(row: Mapping[str, Any]) -> tuple[int, float]:
    """Sort key making the densest setting first: all frames, then the largest density."""
    unit = row.get("density_unit")
    if unit == "all" or row.get("density") is None:
        return (0, 0.0)
    return (1, -float(row["density"]))


def _variant_rank(row: Mapping[str, Any]) -> tuple[int, ...]:
    """Prefer original order and the "off" value of every other switch."""
    return (
        0 if row.get("order") in (None, "original") else 1,
        0 if is_off(row.get("enrichment")) else 1,
        0 if is_reference("rebalancing", row.get("rebalancing")) else 1,
        0 if is_reference("prior_correction", row.get("prior_correction")) else 1,
    )


def matches(row: Mapping[str, Any], reference: Mapping[str, str]) -> bool:
    """Whether a cell's settings equal every ``reference`` value (numbers compared as such)."""
    for key, want in reference.items():
        value = row.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if str(value).lower() != str(want).lower():
            try:
                if float(value) == float(want):  # type: ignore[arg-type]
                    continue
            except (TypeError, ValueError):
                pass
            return False
    return True


def reference_cells(
    cells: pl.DataFrame, reference: Mapping[str, str] | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """The reference cell of each (dataset, model): the one compared across models.

    Default: original frame order, every switch off (enrichment, re-balancing, prior
    correction), the densest sampling, lowest seed. ``reference`` (setting -> value) narrows
    the candidates first, e.g. ``{"density": "8"}``; a model with no matching cell falls back
    to the default choice.
    """
    best: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for row in cells.iter_rows(named=True):
        mismatch = 0 if not reference or matches(row, reference) else 1
        seed = row.get("seed")
        key = (
            mismatch,
            _variant_rank(row),
            _density_rank(row),
            seed if isinstance(seed, int | float) else 0,
            str(row["cell_id"]),
        )
        k = (row["dataset"], row["model"])
        if k not in best or key < best[k][0]:
            best[k] = (key, row)
    return {k: v[1] for k, v in sorted(best.items())}


def confusion_cells(
    cells: pl.DataFrame,
    refs: Mapping[tuple[str, str], Mapping[str, Any]],
    cap: int,
) -> tuple[list[dict[str, Any]], int]:
    """Cells that get their own confusion figure, and how many candidates the cap dropped.

    For each model: the cells at its reference sampling (same sampler and density) -- the
    reference cell plus its order / enrichment / re-balancing / prior-correction variants --
    reference cells first. A run sweeping densities thus gets a handful of confusion
    figures per model, not one per density; every cell's numbers are still in the tables.
    """
    chosen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    ref_ids = {r["cell_id"] for r in refs.values()}
    for row in cells.iter_rows(named=True):
        ref = refs.get((row["dataset"], row["model"]))
        if ref is None:
            continue
        same_sampling = (
            row.get("sampler") == ref.get("sampler")
            and row.get("density_unit") == ref.get("density_unit")
            and row.get("density") == ref.get("density")
        )
        if not same_sampling:
            continue
        key = (
            0 if row["cell_id"] in ref_ids else 1,
            row["dataset"],
            row["model"],
            _variant_rank(row),
            str(row["cell_id"]),
        )
        chosen.append((key, row))
    chosen.sort(key=lambda kv: kv[0])
    kept = [row for _, row in chosen[:cap]]
    return kept, max(0, len(chosen) - cap)


def describe_cell(row: Mapping[str, Any], *, varying: Iterable[str] | None = None) -> str:
    """A short human description of a cell's settings (model omitted)."""
    keys = list(varying) if varying is not None else ["sampler", "order", "enrichment"]
    parts = []
    for key in keys:
        value = row.get(key)
        if key == "sampler":
            parts.append(str(value))
        elif key in ("density", "density_unit"):
            continue
        elif key == "order":
            parts.append(f"{value} order")
        elif key == "seed":
            parts.append(f"seed {value}")
        elif not is_off(value):
            parts.append(f"{key.replace('_', ' ')}={value}")
    return ", ".join(parts)


def varying_settings(cells: pl.DataFrame, settings: Sequence[str]) -> list[str]:
    """Settings (except dataset/model) that take more than one value in this run."""
    out = []
    for col in settings:
        if col in ("dataset", "model") or col not in cells.columns:
            continue
        if cells.get_column(col).n_unique() > 1:
            out.append(col)
    return out
