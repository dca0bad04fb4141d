"""A run's datasets: prepared (generated when asked and absent), loaded and subset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from emobench.config import ConfigError, DatasetConfig
from emobench.data import registry
from emobench.data.registry import get_dataset


@dataclass
class PreparedDataset:
    """A dataset ready for a run: its clip index, and what loading found."""

    index: pl.DataFrame
    #: a one-line warning from the dataset's ``prepare`` hook (e.g. an existing generated
    #: folder made with other settings), or None
    warning: str | None = None
    #: problems the loader reported: ``{"clip_id", "kind", "detail"}`` (clips with missing
    #: media are excluded from the index and listed here)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _load(name: str, root: Path, options: dict[str, Any]) -> tuple[pl.DataFrame, list[dict]]:
    load_dataset = getattr(registry, "load_dataset", None)
    if load_dataset is not None:
        index, problems = load_dataset(name, root, **options)
        return index, list(problems)
    return registry.load_index(name, root, **options), []


def prepare_dataset(ds: DatasetConfig, limit: int | None, generate: bool = True) -> PreparedDataset:
    """Prepare (e.g. generate, when asked and absent), load and subset a dataset's clip index."""

    warning = None
    if ds.generate is not None:
        prepare = getattr(get_dataset(ds.name), "prepare", None)
        if prepare is None:
            raise ConfigError(f"datasets.{ds.name}.generate: dataset {ds.name} cannot be generated")
        if generate:
            warning = prepare(Path(ds.root), ds.generate)
    index, problems = _load(ds.name, Path(ds.root), dict(ds.options))
    # a loader's choice among several media folders names the option that changes it
    notes = [f"{ds.name}: {p['detail']}" for p in problems if p.get("warn")]
    warning = "; ".join(filter(None, [warning, *notes])) or None
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
    return PreparedDataset(index, warning, problems)
