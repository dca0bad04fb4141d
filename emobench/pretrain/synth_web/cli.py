"""``emobench pretrain synth-web``: the Typer command that pre-trains ``emobench-tiny``.

Only typer, pathlib and emobench's light base modules are imported at the top so that
``emobench --help`` stays fast; the run (:mod:`.command`, with torch, open_clip and the
renderer) loads when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from emobench.errors import run_cli
from emobench.pretrain.reproducible import pinned_environment
from emobench.progress import PhaseProgress


def pretrain_synth_web(
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for the weights and card (default: emobench's shipped weights folder).",
    ),
    seed: int = typer.Option(0, help="Seed of the web pool and of training."),
    steps: int | None = typer.Option(None, help="Training steps (default: the shipped recipe)."),
    eval_root: Path | None = typer.Option(
        Path("data/synth-quickstart-v3"),
        "--eval-root",
        help="A synth dataset whose test split the card reports zero-shot UAR/WAR on "
        "(skipped when absent).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """Pre-train the default contrastive VLM (emobench-tiny@synth-web) on synthetic web data.

    Generated faces (identities disjoint from the benchmark) with captions whose emotion words follow English word frequencies. CPU arithmetic is pinned so the weights regenerate bit for bit on any x86-64 CPU: about 40 minutes on one core.
    """  # noqa: E501  (Typer keeps docstring line breaks)

    def body() -> None:
        # before torch computes anything (see emobench.pretrain.reproducible)
        with pinned_environment() as pinned:
            run_pinned(pinned)

    def run_pinned(pinned: bool) -> None:
        from dataclasses import replace

        # lazy: the run's modules import numpy, polars and the renderer: loaded when it runs
        from emobench.pretrain.synth_web.command import pretrain_synth_web as run
        from emobench.pretrain.synth_web.config import SHIPPED_DIR, PretrainConfig

        cfg = PretrainConfig(seed=seed)
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        target = out or SHIPPED_DIR
        if progress:
            names = {"render": "rendering faces", "train": "training steps"}
            with PhaseProgress(names) as report:
                info = run(target, cfg, eval_root=eval_root, progress=report, pinned_early=pinned)
        else:
            info = run(target, cfg, eval_root=eval_root, pinned_early=pinned)
        typer.echo(f"wrote {info['weights']} ({info['bytes'] / 1e6:.1f} MB) in "
                   f"{info['seconds_total']:.0f} s")  # fmt: skip
        ev = info.get("eval")
        if ev:
            for name in ("none", "estimated-prior"):
                typer.echo(
                    f"zero-shot ({name}): UAR {ev[name]['uar']:.3f}  WAR {ev[name]['war']:.3f}"
                )

    run_cli(body)
