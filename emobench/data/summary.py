"""Summaries of a clip index for `emobench data show`: class counts, lengths, fps, micro share."""

from __future__ import annotations

import polars as pl


def class_table(index: pl.DataFrame) -> pl.DataFrame:
    """Clips per label (rows) and split (columns) for each fold, largest training class first."""
    counts = index.group_by(["fold", "label", "split"]).len()
    wide = counts.pivot(on="split", index=["fold", "label"], values="len").fill_null(0)
    for split in ("train", "val", "test"):
        if split not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(split))
    wide = wide.with_columns((pl.col("train") + pl.col("val") + pl.col("test")).alias("total"))
    return wide.select(["fold", "label", "train", "val", "test", "total"]).sort(
        ["fold", "train", "label"], descending=[False, True, False]
    )


def clip_stats(index: pl.DataFrame) -> pl.DataFrame:
    """Per split: clip count, frames (min/median/max), seconds, fps, micro-clip share, subjects."""
    clips = index.unique(subset=["clip_id", "split"], keep="first")
    return (
        clips.group_by("split")
        .agg(
            pl.len().alias("clips"),
            pl.col("n_frames").min().alias("frames_min"),
            pl.col("n_frames").median().alias("frames_median"),
            pl.col("n_frames").max().alias("frames_max"),
            (pl.col("n_frames") / pl.col("fps")).mean().alias("seconds_mean"),
            pl.col("fps").min().alias("fps_min"),
            pl.col("fps").max().alias("fps_max"),
            pl.col("micro").cast(pl.Float64).mean().alias("micro_share"),
            pl.col("subject").n_unique().alias("subjects"),
        )
        .sort("split")
    )


def summary_tables(index: pl.DataFrame, title: str = "dataset") -> list:
    """Rich tables for the CLI (rich imported lazily)."""
    from rich.table import Table

    tables = []
    counts = class_table(index)
    folds = counts["fold"].unique().sort().to_list()
    for fold in folds:
        sub = counts.filter(pl.col("fold") == fold)
        suffix = f", fold {fold}" if len(folds) > 1 else ""
        t = Table(title=f"{title}: clips per class{suffix}")
        for col in ("label", "train", "val", "test", "total"):
            t.add_column(col, justify="left" if col == "label" else "right")
        for row in sub.iter_rows(named=True):
            t.add_row(row["label"], *(str(row[c]) for c in ("train", "val", "test", "total")))
        tables.append(t)
    stats = clip_stats(index)
    t = Table(title=f"{title}: clip statistics")
    for col in stats.columns:
        t.add_column(col, justify="left" if col == "split" else "right")
    for row in stats.iter_rows():
        t.add_row(*(_fmt(v) for v in row))
    tables.append(t)
    return tables


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
