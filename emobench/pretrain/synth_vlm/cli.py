"""``emobench pretrain synth-vlm``: the Typer command that pre-trains ``emobench-tiny-vlm``.

Only typer, pathlib and emobench's light base modules are imported at the top so that
``emobench --help`` stays fast; the run (:mod:`.command`, with torch, transformers and the
renderer) loads when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from emobench.errors import run_cli
from emobench.pretrain.reproducible import pinned_environment
from emobench.progress import PhaseProgress


def pretrain_synth_vlm(
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Model folder to write (default: emobench's shipped "
        "emobench/models/weights/emobench-tiny-vlm).",
    ),
    seed: int = typer.Option(0, help="Seed of the web corpus and of training."),
    steps: int | None = typer.Option(
        None, help="Language-model training steps (default: the shipped recipe)."
    ),
    distill_steps: int | None = typer.Option(
        None,
        "--distill-steps",
        help="Vision distillation steps before them, 0 to skip (default: the shipped recipe).",
    ),
    eval_root: Path | None = typer.Option(
        Path("data/synth-quickstart-v3"),
        "--eval-root",
        help="A synth dataset whose test split the card reports zero-shot UAR/WAR on "
        "(skipped when absent).",
    ),
    spread: list[Path] = typer.Option(
        [],
        "--spread",
        help="Folder of the same recipe trained with another --seed (repeatable): the card "
        "reports the zero-shot UAR spread over these seeds and this one.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """Pre-train the default generative VLM (emobench-tiny-vlm, a tiny Qwen2.5-VL) on synthetic web data.

    Generated faces (identities disjoint from the benchmark): the tiny CLIP's image embedding distilled into the vision tower, then captions whose emotion words follow English word frequencies, descriptions of the face's action units, one-word answers to the hf: family's question, MSCE stage-2 questions and motion descriptions. Writes a Hugging Face model folder that hf:<folder> loads. CPU arithmetic is pinned so the weights regenerate bit for bit on any x86-64 CPU: about 31 minutes on one core, plus the zero-shot evaluation.
    """  # noqa: E501  (Typer keeps docstring line breaks)

    def body() -> None:
        # before torch computes anything (see emobench.pretrain.reproducible)
        with pinned_environment() as pinned:
            run_pinned(pinned)

    def run_pinned(pinned: bool) -> None:
        from dataclasses import replace

        # lazy: the run's modules import numpy, polars, the renderer and the hf: family: loaded
        # when it runs
        from emobench.pretrain.synth_vlm.command import pretrain_synth_vlm as run
        from emobench.pretrain.synth_vlm.config import SHIPPED_DIR, PretrainConfig
        from emobench.pretrain.synth_vlm.spread import load_spread

        cfg = PretrainConfig(seed=seed)
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        if distill_steps is not None:
            cfg = replace(cfg, distill_steps=distill_steps)
        target = out or SHIPPED_DIR
        others = load_spread(list(spread), cfg)  # checked before the long training
        if progress:
            names = {
                "tokenizer": "training the tokenizer",
                "distill": "distilling the tiny CLIP's vision",
                "train": "training steps",
            }
            with PhaseProgress(names, default="zero-shot evaluation") as report:
                info = run(
                    target,
                    cfg,
                    eval_root=eval_root,
                    progress=report,
                    spread=others,
                    pinned_early=pinned,
                )
        else:
            info = run(target, cfg, eval_root=eval_root, spread=others, pinned_early=pinned)
        typer.echo(
            f"wrote {target} (model.safetensors {info['bytes'] / 1e6:.1f} MB) in "
            f"{info['seconds_wall']:.0f} s wall, {info['seconds_cpu']:.0f} s CPU; "
            f"loss {info['first_loss']:.3f} → {info['final_loss']:.3f}"
        )
        for mode, e in info.get("eval", {}).items():
            if isinstance(e, dict) and "uar" in e:
                typer.echo(f"zero-shot ({mode}): UAR {e['uar']:.3f}  WAR {e['war']:.3f}")

    run_cli(body)
