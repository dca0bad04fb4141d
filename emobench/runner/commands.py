"""The body of ``emobench run``: load the config, then dry-run or execute, then summarise.

Under a multi-process launch (torchrun, accelerate launch, ``--num-processes``) every rank
runs this body: rank 0 shows the progress bars and the final summary, the other ranks print
only rank-prefixed lines (see :mod:`emobench.runner.distributed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emobench.config import list_presets as _list_presets
from emobench.config import load_config
from emobench.errors import EmobenchError
from emobench.models.registry import check_model_name, create_model
from emobench.results.problems import exclusion_lines, printable
from emobench.runner.distributed import DEFAULT_RANK_TIMEOUT_S, rank_from_env
from emobench.runner.dryrun import absent_datasets, print_grid_without_data
from emobench.runner.execute import Engine
from emobench.runner.scorers import sampled_indices


def run_command(
    source: str = "quickstart",
    *,
    out: Path | None = None,
    device: str | None = None,
    overrides: list[str] | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    list_presets: bool = False,
    progress: bool = True,
    backend: str | None = None,
    recompute: bool = False,
    rank_timeout: float | None = None,
) -> Path | None:
    """Run (or describe) a benchmark; returns the results folder (None for listings)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rank = rank_from_env()
    if rank.parallel and not rank.is_main and (dry_run or list_presets):
        return None  # rank 0 alone describes the grid or lists presets
    console = Console()
    if list_presets:
        table = Table("preset", "description", title="Shipped presets")
        for name, desc in _list_presets().items():
            table.add_row(name, desc)
        console.print(table)
        return None
    sets = list(overrides or [])
    if limit is not None:
        sets.append(f"limit={limit}")
    if device is not None:
        sets.append(f"device={json.dumps(device)}")  # a JSON string is a TOML string
    if backend is not None:
        sets.append(f"video.backend={json.dumps(backend)}")
    cfg = load_config(source, sets)
    out = Path(out) if out is not None else Path("results") / cfg.name

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    launch = rank.parallel and not dry_run
    engine = Engine(
        cfg,
        out,
        progress=progress and rank.is_main,
        console=console,
        recompute=recompute,
        rank=rank if launch else None,
        rank_timeout=DEFAULT_RANK_TIMEOUT_S if rank_timeout is None else rank_timeout,
    )
    if dry_run:  # before any data exists: the grid and the calls per clip, counts unknown
        absent = absent_datasets(cfg)
        if absent:
            print_grid_without_data(console, cfg, engine.cells, absent, _missing_models(engine))
            return out
    if not launch:  # a launch loads on rank 0 first (it may generate), then on the others
        engine.load_datasets()  # the synth set is generated first if absent
    for line in engine.warnings:
        console.print(f"[yellow]warning:[/] {escape(printable(line))}", soft_wrap=True)
    if dry_run:  # every model is built; a missing weights file is listed, not fatal
        missing = _missing_models(engine)
        _print_grid(console, engine, missing)
        return out
    shown = len(engine.warnings)
    try:
        summary = engine.execute()
    except EmobenchError as exc:
        if rank.parallel and not rank.is_main:  # say which rank stopped, in the same line
            exc.args = (f"{rank.prefix}{exc}",)
        raise
    finally:
        if rank.is_main:  # a rank's warnings reach rank 0 and the manifest
            for line in engine.warnings[shown:]:
                console.print(f"[yellow]warning:[/] {escape(printable(line))}", soft_wrap=True)
    if not summary.finalized:
        console.print(
            f"{escape(rank.prefix)}done: {summary.parts_computed} part(s) computed in "
            f"{summary.seconds:.1f} s; rank 0 merges the results into {out}",
            soft_wrap=True,
        )
        return out
    console.print(
        f"[bold green]done[/] {summary.cells} cells × folds = {summary.parts_total} "
        f"({summary.parts_done_before} already done, {summary.parts_computed} computed) "
        f"in {summary.seconds:.1f} s → {out}"
    )
    c = summary.cache
    console.print(
        f"feature cache: {c.get('hit_frames', 0)} frames reused, {c.get('miss_frames', 0)} computed"
    )
    if summary.skipped:
        n = len({(s["clip_id"], s["fold"]) for s in summary.skipped})
        console.print(f"[yellow]skipped {n} clip(s)[/] (listed in manifest.json):")
        for s in summary.skipped[:5]:
            line = printable(f"  fold {s['fold']} {s['clip_id']}: {s['reason']}")
            console.print(escape(line), soft_wrap=True)
    _print_exclusions(console, engine)
    console.print(f"next: emobench report {out}")
    return out


def _print_exclusions(console, engine) -> None:  # type: ignore[no-untyped-def]
    """One warning per dataset whose loader excluded clips (deleted media, unreadable
    annotations), from the manifest the run just wrote."""
    from rich.markup import escape

    try:
        datasets = engine.run.read_manifest().get("datasets") or {}
    except EmobenchError:
        return
    for line in exclusion_lines(datasets if isinstance(datasets, dict) else {}):
        console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)


def _missing_models(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Dry run: build every configured model (as ``engine.check_models`` does) and collect
    each one's error (a missing weights file or HF model, a bad option) by display name,
    so that all of them are listed at once; a real run stops at the first one."""

    missing: dict[str, str] = {}
    for mcfg in engine.cfg.models:
        try:
            create_model(mcfg.adapter, mcfg.options)
        except EmobenchError as exc:
            missing.setdefault(mcfg.display_name, str(exc).splitlines()[0] if str(exc) else "")
    return missing


def model_call_counts(engine) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Per model (display name, config order): ``cells``, (cell, fold) ``parts``,
    ``test_clips`` over all parts and ``model_calls``: one per test clip and part (for a
    frame-feature model, one head scoring; its frames are encoded once into the feature
    cache), plus for a clip model's ``msce`` / ``msce-text`` parts one describer prompt per
    gap between the clip's sampled keyframes (``describer_calls``); imported predictions
    (model kind ``imported``) make no call. An upper bound: an answer or description
    already in the cache costs no call."""
    import polars as pl

    kinds = {m.display_name: check_model_name(m.adapter).kind for m in engine.cfg.models}
    keys = ("cells", "parts", "test_clips", "describer_calls", "model_calls")
    stats = {name: dict.fromkeys(keys, 0) for name in kinds}
    gap_counts: dict[tuple[Any, ...], int] = {}
    for cell in engine.cells:
        st = stats[cell.model]
        st["cells"] += 1
        index = engine.indices[cell.dataset]
        for fold in engine.folds(cell.dataset):
            test = index.filter((pl.col("fold") == fold) & (pl.col("split") == "test"))
            gaps = 0
            if kinds[cell.model] == "clip" and cell.enrichment in ("msce", "msce-text"):
                key = (cell.dataset, fold, cell.sampler, cell.order, cell.seed)
                if key not in gap_counts:  # the keyframes depend on these alone
                    gap_counts[key] = sum(
                        max(len(sampled_indices(cell, r)) - 1, 0)
                        for r in test.iter_rows(named=True)
                    )
                gaps = gap_counts[key]
            st["parts"] += 1
            st["test_clips"] += test.height
            st["describer_calls"] += gaps
            if kinds[cell.model] != "imported":  # read from a file: no model runs
                st["model_calls"] += test.height + gaps
    return [{"model": name, **st} for name, st in stats.items()]


def _print_grid(console, engine, missing: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape
    from rich.table import Table

    grid = engine.describe()
    table = Table(title=f"{engine.cfg.name}: {grid.height} (cell, fold) pairs")
    cols = ["cell_id", "fold", "test_clips", "state"]
    for col in cols:
        table.add_column(col, justify="left" if col == "cell_id" else "right")
    for row in grid.select(cols).iter_rows():
        table.add_row(*(str(v) for v in row))
    console.print(table)
    done = int(grid["done"].sum()) if grid.height else 0
    audit = engine.audit()
    if audit.damaged:
        console.print(
            f"[yellow]warning:[/] {len(audit.damaged)} damaged part(s) in {engine.out}; "
            "a run removes and recomputes them"
        )
    if audit.stale:
        console.print(
            f"[yellow]warning:[/] {audit.stale_message(engine.out)}; a run there would stop at once"
        )
    for st in model_call_counts(engine):
        extra = (
            f" ({st['describer_calls']} MSCE describer prompts)" if st["describer_calls"] else ""
        )
        console.print(
            f"model {st['model']}: {st['cells']} cells, {st['parts']} (cell, fold) parts, "
            f"{st['test_clips']} test clips, {st['model_calls']} model calls{extra}",
            soft_wrap=True,
        )
    for name, reason in (missing or {}).items():
        console.print(f"[yellow]missing:[/] {escape(name)}: {escape(reason)}", soft_wrap=True)
    if missing:
        console.print(
            f"{len(missing)} model(s) cannot be built here: a run would stop at the first one",
            soft_wrap=True,
        )
    console.print(f"{done} of {grid.height} already done in {engine.out}; nothing was run")
