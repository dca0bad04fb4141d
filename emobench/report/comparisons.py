"""Comparisons across cells: density sweeps (lines of a metric-vs-density plot), original
vs other frame order (paired tests) and long-tail switch pairs.

Plain polars / numpy (no matplotlib, no torch); see :mod:`emobench.report.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from emobench.metrics import mcnemar, paired_bootstrap
from emobench.report.cells import is_reference
from emobench.report.values import opt_float

# ---------------------------------------------------------------------------------------
# Density sweeps


@dataclass
class Series:
    """One line of a metric-vs-density plot."""

    dataset: str
    unit: str
    model: str
    variant: dict[str, Any]
    x: list[float]
    cells: list[str]


def density_series(
    cells: pl.DataFrame, settings: Sequence[str]
) -> dict[tuple[str, str], list[Series]]:
    """Group the sweep cells into lines, per (dataset, density unit).

    A line is one model with every other setting fixed (sampler family, order, enrichment,
    re-balancing, prior correction, seed); its points are the densities. Cells sampling
    all frames (``density_unit == "all"``) have no x position and are left out.
    """
    fixed = [c for c in settings if c not in ("dataset", "model", "density", "sampler")]
    lines: dict[tuple[Any, ...], Series] = {}
    sweep = cells.filter(pl.col("density").is_not_null() & (pl.col("density_unit") != "all"))
    for row in sweep.sort("density").iter_rows(named=True):
        family = str(row.get("sampler") or "").split(":", 1)[0]
        variant = {"sampler": family, **{c: row.get(c) for c in fixed if c != "density_unit"}}
        key = (row["dataset"], row["density_unit"], row["model"], *map(str, variant.values()))
        if key not in lines:
            lines[key] = Series(
                dataset=row["dataset"],
                unit=row["density_unit"],
                model=row["model"],
                variant=variant,
                x=[],
                cells=[],
            )
        line = lines[key]
        d = float(row["density"])
        if d in line.x:  # duplicate density in one line (should not happen): keep first
            continue
        line.x.append(d)
        line.cells.append(str(row["cell_id"]))
    out: dict[tuple[str, str], list[Series]] = {}
    for line in lines.values():
        out.setdefault((line.dataset, line.unit), []).append(line)
    return out


# ---------------------------------------------------------------------------------------
# Original vs shuffled / reversed frame order


def order_pairs(cells: pl.DataFrame, settings: Sequence[str]) -> list[tuple[str, str]]:
    """(original cell, other-order cell) pairs that agree on every other setting."""
    others = [c for c in settings if c != "order" and c in cells.columns]
    originals: dict[tuple[str, ...], str] = {}
    rows = list(cells.iter_rows(named=True))
    for row in rows:
        if row.get("order") == "original":
            originals[tuple(str(row.get(c)) for c in others)] = str(row["cell_id"])
    pairs = []
    for row in rows:
        if row.get("order") in (None, "original"):
            continue
        base = originals.get(tuple(str(row.get(c)) for c in others))
        if base is not None:
            pairs.append((base, str(row["cell_id"])))
    return pairs


@dataclass(frozen=True)
class OrderComparison:
    """Original vs other-order macro-F1 of one setting, with paired tests over clips."""

    original: str
    other: str
    n_matched: int
    diff: float
    ci_lo: float | None
    ci_hi: float | None
    p_bootstrap: float
    p_mcnemar: float


def order_comparison(
    predictions: pl.DataFrame,
    original: str,
    other: str,
    labels: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> OrderComparison | None:
    """Paired bootstrap (macro-F1) and McNemar test on clips matched by (fold, clip_id).

    Returns None when no clip is matched. The bootstrap resamples the matched clips pooled
    over folds; ``diff`` is other - original on those pooled clips.
    """

    a = predictions.filter(pl.col("cell_id") == original).select("fold", "clip_id", "label", "pred")
    b = predictions.filter(pl.col("cell_id") == other).select(
        "fold", "clip_id", pl.col("pred").alias("pred_b")
    )
    joined = a.join(b, on=["fold", "clip_id"], how="inner").sort(["fold", "clip_id"])
    if joined.height == 0:
        return None
    y = joined.get_column("label").to_numpy()
    pa = joined.get_column("pred").to_numpy()
    pb = joined.get_column("pred_b").to_numpy()
    boot = paired_bootstrap(
        y, pa, pb, list(labels), metric="macro_f1", n_resamples=n_resamples, seed=seed
    )
    mc = mcnemar(y, pa, pb)
    return OrderComparison(
        original=original,
        other=other,
        n_matched=joined.height,
        diff=float(boot["diff"]),
        ci_lo=opt_float(boot.get("ci_lo")),
        ci_hi=opt_float(boot.get("ci_hi")),
        p_bootstrap=float(boot["p_value"]),
        p_mcnemar=float(mc["p_value"]),
    )


# ---------------------------------------------------------------------------------------
# Long-tail switches: the same cell with a switch at its reference value vs another value


def switch_pairs(
    cells: pl.DataFrame, settings: Sequence[str], switch: str
) -> list[tuple[str, str]]:
    """(reference cell, switched cell) pairs that agree on every other setting.

    The reference cell has ``switch`` at its reference value (:func:`is_reference`), the
    switched cell any other value. Pairs come in the cells' row order; a switched cell with
    no reference counterpart is left out. Returns [] when ``cells`` lacks the column.
    """
    if switch not in cells.columns:
        return []
    others = [c for c in settings if c != switch and c in cells.columns]
    rows = list(cells.iter_rows(named=True))
    baselines: dict[tuple[str, ...], str] = {}
    for row in rows:
        if is_reference(switch, row.get(switch)):
            baselines.setdefault(tuple(str(row.get(c)) for c in others), str(row["cell_id"]))
    pairs = []
    for row in rows:
        if is_reference(switch, row.get(switch)):
            continue
        base = baselines.get(tuple(str(row.get(c)) for c in others))
        if base is not None:
            pairs.append((base, str(row["cell_id"])))
    return pairs
