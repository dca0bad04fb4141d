"""A run's datasets: prepared (generated when asked and absent), loaded and subset."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from emobench.config import ConfigError, DatasetConfig


def prepare_dataset(
    ds: DatasetConfig, limit: int | None, generate: bool = True
) -> tuple[pl.DataFrame, str | None]:
    """Prepare (e.g. generate, when asked and absent), load and subset a dataset's clip index.

    Returns the index and a one-line warning from the dataset's ``prepare`` hook (e.g. an
    existing generated folder made with other settings), or None.
    """
    from emobench.data.registry import get_dataset, load_index

    warning = None
    if ds.generate is not None:
        prepare = getattr(get_dataset(ds.name), "prepare", None)
        if prepare is None:
            raise ConfigError(f"datasets.{ds.name}.generate: dataset {ds.name} cannot be generated")
        if generate:
            warning = prepare(Path(ds.root), ds.generate)
    index = load_index(ds.name, Path(ds.root), **ds.options)
    folds = sorted(index["fold"].unique().to_list())
    if ds.folds != "all":
        bad = [f for f in ds.folds if f not in folds]
        if bad:
            raise ConfigError(f"datasets.{ds.name}.folds: fold(s) {bad} not in the data ({folds})")
        index = index.filter(pl.col("fold").is_in(list(ds.folds)))
    if limit is not None:
        index = (
            index.sort(["fold", "split", "clip_id"])
            .group_by(["fold", "split"], maintain_order=True)
            .head(limit)
        )
    return index, warning
