"""``emobench run --dry-run`` before the data exists: the grid and the model calls per clip.

A dry run normally loads every dataset and counts test clips per (cell, fold). When a
dataset's folder does not exist yet (or is an empty folder), it still shows what a run
would do: every cell with its sampler, frames and model calls per clip, and folds and test
clips where a dataset is present, ``unknown`` where it is not, saying so. Datasets that
exist but cannot be read still stop with their error: only absence is described.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emobench.config import DatasetConfig, RunConfig
from emobench.models.registry import check_model_name
from emobench.runner.datasets import prepare_dataset
from emobench.video.sampling import SAMPLERS, parse_spec

#: What a sampler's parameter means for the frames it takes from one clip.
_FRAMES = {"count": "at most {k}", "rate": "{fps:g} per second of clip", "none": "every frame"}


def absent_datasets(cfg: RunConfig) -> dict[str, Path]:
    """Datasets of ``cfg`` whose folder does not exist or is empty (and that are not
    generated when absent): name -> root. A dangling or looping link is not absent (its
    load reports it)."""
    return {ds.name: Path(ds.root) for ds in cfg.datasets if _absent(ds)}


def _absent(ds: DatasetConfig) -> bool:
    if ds.generate is not None:
        return False
    root = Path(ds.root)
    if not os.path.lexists(root):
        return True
    if root.is_dir() and not root.is_symlink():
        with os.scandir(root) as it:
            return next(it, None) is None
    return False


def frames_per_clip(sampler: str) -> tuple[str, int | None]:
    """How many frames ``sampler`` takes from a clip, in words, and as a number when it is
    fixed by the sampler alone (``uniform:8`` → 8, an upper bound for shorter clips)."""

    spec = parse_spec(sampler)
    param = SAMPLERS[spec.kind].param
    text = _FRAMES.get(param, "{kind}").format(k=spec.k, fps=spec.fps or 0, kind=spec.kind)
    return text, spec.k


def calls_per_clip(kind: str, enrichment: str, sampler: str) -> str:
    """Model calls for one test clip of one cell: none for imported predictions, one
    otherwise, plus one MSCE describer prompt per gap between keyframes for a clip model."""
    if kind == "imported":
        return "0"
    if kind == "clip" and enrichment in ("msce", "msce-text"):
        _, k = frames_per_clip(sampler)
        gaps = f"{k - 1}" if k is not None else "keyframes − 1"
        return f"1 + {gaps} describer prompts"
    return "1"


def _known_folds(cfg: RunConfig, absent: dict[str, Path]) -> dict[str, dict[int, int]]:
    """For each present dataset, test clips per fold (it is loaded, as a run would)."""

    out: dict[str, dict[int, int]] = {}
    for ds in cfg.datasets:
        if ds.name in absent:
            continue
        index = prepare_dataset(ds, cfg.limit).index
        test = index.filter(index["split"] == "test")
        counts = test.group_by("fold").len().sort("fold")
        out[ds.name] = dict(zip(counts["fold"].to_list(), counts["len"].to_list(), strict=True))
    return out


def print_grid_without_data(
    console: Any,
    cfg: RunConfig,
    cells: list[Any],
    absent: dict[str, Path],
    missing: dict[str, str] | None = None,
) -> None:
    """Print the grid of ``cells`` with model calls per clip; clip counts of ``absent``
    datasets are unknown (see the module docstring)."""
    from rich.markup import escape
    from rich.table import Table

    kinds = {m.display_name: check_model_name(m.adapter).kind for m in cfg.models}
    known = _known_folds(cfg, absent)
    table = Table(title=f"{cfg.name}: {len(cells)} cells (data absent: clip counts unknown)")
    cols = ("cell_id", "sampler", "frames/clip", "model calls/clip", "folds", "test_clips")
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:4] else "right")
    per_model: dict[str, dict[str, Any]] = {}
    for c in cells:
        frames, _ = frames_per_clip(c.sampler)
        calls = calls_per_clip(kinds[c.model], c.enrichment, c.sampler)
        folds = known.get(c.dataset)
        n_folds = str(len(folds)) if folds is not None else "unknown"
        clips = str(sum(folds.values())) if folds is not None else "unknown"
        table.add_row(c.cell_id, c.sampler, frames, calls, n_folds, clips)
        st = per_model.setdefault(c.model, {"cells": 0, "calls": set(), "datasets": set()})
        st["cells"] += 1
        st["calls"].add(calls)
        st["datasets"].add(c.dataset)
    console.print(table)
    for name, st in per_model.items():
        unknown = sorted(d for d in st["datasets"] if d in absent)
        tail = f"; test clips unknown ({', '.join(unknown)} absent)" if unknown else ""
        console.print(
            f"model {escape(name)}: {st['cells']} cells, model calls per test clip and cell: "
            f"{' or '.join(sorted(st['calls']))}{tail}",
            soft_wrap=True,
        )
    for name, reason in (missing or {}).items():
        console.print(f"[yellow]missing:[/] {escape(name)}: {escape(reason)}", soft_wrap=True)
    for i, ds in enumerate(cfg.datasets):
        if ds.name in absent:
            console.print(
                f"[yellow]no data:[/] {ds.name}: {escape(str(absent[ds.name]))} does not exist "
                f"or is empty, so clip counts (and the number of folds) are unknown; point "
                f"--set datasets.{i}.root=... at a copy for the full grid",
                soft_wrap=True,
            )
    console.print("nothing was run")


__all__ = ["absent_datasets", "calls_per_clip", "frames_per_clip", "print_grid_without_data"]
