"""The body of ``emobench run``: load the config, then dry-run or execute, then summarise."""

from __future__ import annotations

import json
from pathlib import Path

from emobench.config import list_presets as _list_presets
from emobench.config import load_config


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
) -> Path | None:
    """Run (or describe) a benchmark; returns the results folder (None for listings)."""
    from rich.console import Console
    from rich.table import Table

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
    from emobench.runner.execute import Engine

    engine = Engine(cfg, out, progress=progress, console=console, recompute=recompute)
    engine.load_datasets()  # the synth set is generated first if absent
    for line in engine.warnings:
        console.print(f"[yellow]warning:[/] {line}")
    if dry_run:
        engine.check_models()
        _print_grid(console, engine)
        return out
    shown = len(engine.warnings)
    try:
        summary = engine.execute()
    finally:
        for line in engine.warnings[shown:]:
            console.print(f"[yellow]warning:[/] {line}")
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
            console.print(f"  fold {s['fold']} {s['clip_id']}: {s['reason']}")
    console.print(f"next: emobench report {out}")
    return out


def _print_grid(console, engine) -> None:  # type: ignore[no-untyped-def]
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
    console.print(f"{done} of {grid.height} already done in {engine.out}; nothing was run")
