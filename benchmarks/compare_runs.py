"""Are two run folders' results the same? The check behind "behaviour unchanged" refactors.

Compares ``predictions.parquet`` row by row on every column except ``latency_s`` (wall
time), and ``metrics.parquet`` value by value (the metric rows of each cell and fold).
Prints one line per table and exits 1 when anything differs, naming the first columns.

Run: ``.venv/bin/python benchmarks/compare_runs.py results/before results/after``
(both made from the same data and config, e.g. ``emobench run quickstart --out ...`` with
an empty cache before and after a change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

KEY = ["cell_id", "fold", "clip_id"]
METRIC_KEY = ["cell_id", "fold", "scope", "target", "metric"]


def compare_predictions(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    """Columns whose values differ (after sorting both by cell, fold and clip), over the
    columns both tables have (columns only one has are printed, not counted)."""
    if a.height != b.height:
        return [f"row count {a.height} vs {b.height}"]
    only = sorted(set(a.columns) ^ set(b.columns))
    if only:
        print(f"columns in one table only (not compared): {', '.join(only)}")
    cols = [c for c in a.columns if c in b.columns and c != "latency_s"]
    a, b = a.select(cols).sort(KEY), b.select(cols).sort(KEY)
    return [c for c in cols if not a[c].equals(b[c])]


def compare_metrics(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    """Metric names whose values differ (or rows present in only one table)."""
    if a.height != b.height:
        return [f"row count {a.height} vs {b.height}"]
    j = a.join(b, on=METRIC_KEY, how="full", suffix="_b", coalesce=True, nulls_equal=True)
    if j.height != a.height:
        return ["rows present in only one table"]
    bad = j.filter(pl.col("value").ne_missing(pl.col("value_b")))
    return sorted(set(bad["metric"].to_list()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    a, b = (Path(p) for p in argv)
    diff_p = compare_predictions(
        pl.read_parquet(a / "predictions.parquet"), pl.read_parquet(b / "predictions.parquet")
    )
    diff_m = compare_metrics(
        pl.read_parquet(a / "metrics.parquet"), pl.read_parquet(b / "metrics.parquet")
    )
    for name, diff in (("predictions", diff_p), ("metrics", diff_m)):
        print(f"{name}: " + ("identical" if not diff else "DIFFER: " + ", ".join(diff[:5])))
    return 1 if diff_p or diff_m else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
