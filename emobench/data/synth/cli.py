"""``emobench data generate synth``: the Typer command that writes the synth benchmark.

Only typer, pathlib and typing are imported at the top so that ``emobench --help`` stays
fast; numpy, PyAV and the generator load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from emobench.errors import run_cli

# Quickstart defaults (kept in sync with SynthConfig by tests/test_synth.py).
_QS_N_TRAIN = 1000
_QS_N_TEST = 520
_QS_SUBJECTS_TRAIN = 60
_QS_SUBJECTS_TEST = 24


def generate_synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the dataset into."),
    profile: str = typer.Option(
        "exp:12",
        help="Class profile: dfew (7 classes, DFEW proportions), mafw (11 classes), "
        "exp:<ratio>[:<class>,...] (exponential long tail with this max/min ratio), "
        "uniform[:<class>,...].",
    ),
    n_train: int = typer.Option(_QS_N_TRAIN, help="Training clips."),
    n_test: int = typer.Option(_QS_N_TEST, help="Test clips."),
    test_split: str = typer.Option(
        "natural", help="Test class mix: natural (the profile's proportions) or balanced."
    ),
    folds: int = typer.Option(
        1, help="1 (one train/test split) or 5 (DFEW-style folds, subject-disjoint)."
    ),
    size: int = typer.Option(112, help="Frame side in pixels (even)."),
    fps: int = typer.Option(25, help="Frames per second."),
    min_seconds: float = typer.Option(2.0, help="Shortest clip length in seconds."),
    max_seconds: float = typer.Option(3.0, help="Longest clip length in seconds."),
    micro_share: float = typer.Option(
        1 / 3,
        help="Share of clips that are micro-expressions (0.25–0.5 s flashes).",
        show_default="1/3",
    ),
    n_train_subjects: int = typer.Option(_QS_SUBJECTS_TRAIN, help="Training subjects."),
    n_test_subjects: int = typer.Option(
        _QS_SUBJECTS_TEST, help="Test subjects (disjoint from the training subjects)."
    ),
    seed: int = typer.Option(0, help="Master seed: same seed and version, same dataset."),
    crf: int = typer.Option(20, help="H.264 quality (x264 CRF, lower = better, 0–51)."),
    audio: str = typer.Option(
        "none",
        help="Audio track in each mp4: none (video only), tone (16 kHz tone whose pitch "
        "follows the expression: a base pitch per subject, shifted per emotion as the "
        "expression rises and falls) or silence.",
    ),
    workers: int = typer.Option(2, help="Processes that render and encode clips."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a different synth dataset already in --out."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate the synth benchmark: face videos with controlled long tail and micro-expressions.

    The defaults are the quickstart set (1520 clips of 2–3 s at 112×112).
    """

    def body() -> None:
        import time

        # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
        from emobench.data.synth.generate import SynthConfig, generate, summary_line

        cfg = SynthConfig(
            profile=profile,
            n_train=n_train,
            n_test=n_test,
            test_split=test_split,
            folds=folds,
            size=size,
            fps=fps,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            micro_share=micro_share,
            n_train_subjects=n_train_subjects,
            n_test_subjects=n_test_subjects,
            seed=seed,
            crf=crf,
            audio=audio,
        )
        start = time.perf_counter()
        generate(cfg, out, progress=progress, workers=workers, overwrite=overwrite)
        typer.echo(summary_line(out, time.perf_counter() - start))

    run_cli(body)
