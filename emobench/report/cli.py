"""The ``emobench report`` command: a results folder -> figures, summary.md, report.html,
findings.json.

Only typer and pathlib load at import time; the report code (polars, matplotlib) loads when
the command runs, so ``emobench --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from emobench.errors import run_cli
from emobench.report import (
    DEFAULT_MAX_CONFUSION,
    DEFAULT_PRIORS,
    DEFAULT_REPORT_RESAMPLES,
    FIGURES_DIR,
    FINDINGS_FILE,
    HTML_FILE,
    SUMMARY_FILE,
)
from emobench.report.jobs import default_workers
from emobench.report.options import ReportOptions


def report(
    run_dir: Path = typer.Argument(
        ...,
        help="Run folder written by `emobench run` (holds manifest.json and "
        "predictions.parquet; metrics.parquet is computed and saved there if missing).",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder to write the report into (default: RUN_DIR/report); PNG/SVG files "
        "already in its figures/ subfolder are replaced.",
    ),
    formats: str = typer.Option(
        "md,html",
        "--format",
        "-f",
        help="Comma-separated outputs: `md` (summary.md) and/or `html` (one self-contained "
        "report.html). Figures (PNG + SVG) are always written to OUT/figures.",
    ),
    rule: str | None = typer.Option(
        None,
        "--rule",
        help="Head/medium/tail grouping rule on training counts: `relative` (share of the "
        "largest class) or `absolute` (clip counts); default: the rule metrics.parquet "
        "used, else relative. A rule other than the file's recomputes metrics for the "
        "report only.",
    ),
    head: float | None = typer.Option(
        None,
        "--head",
        help="Head threshold of the rule (relative: 0.5 x largest class; absolute: 100 "
        "clips when not given).",
    ),
    tail: float | None = typer.Option(
        None,
        "--tail",
        help="Tail threshold of the rule (relative: 0.2 x largest class; absolute: 20 clips "
        "when not given).",
    ),
    prior: list[str] | None = typer.Option(
        None,
        "--prior",
        help="Class prior for the per-class F1 vs prior plots, repeatable (registered names: "
        "`train_freq` = training-split class frequency from the manifest, `web_word_freq` = "
        "English frequency of each class's emotion words); default: both.",
    ),
    reference: list[str] | None = typer.Option(
        None,
        "--reference",
        help="KEY=VALUE setting that picks each model's reference cell for side-by-side "
        "comparisons, e.g. `--reference density=8` (repeatable); default: original order, "
        "switches off, densest sampling.",
    ),
    n_resamples: int = typer.Option(
        DEFAULT_REPORT_RESAMPLES,
        "--resamples",
        min=1,
        help="Bootstrap resamples for confidence intervals and paired order tests.",
    ),
    max_confusion: int = typer.Option(
        DEFAULT_MAX_CONFUSION,
        "--max-confusion",
        min=0,
        help="Most per-cell confusion-matrix figures to draw (only cells at each model's "
        "reference sampling are candidates).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="Helper processes that draw the figures while statistics are computed "
        "(default: 1 on a machine with 2+ cores; 0 draws in the main process).",
    ),
    recompute: bool = typer.Option(
        False,
        "--recompute-metrics",
        help="Recompute the metrics for this report even when metrics.parquet exists "
        "(the file is left unchanged).",
    ),
    screenshot: bool = typer.Option(
        True,
        "--screenshot/--no-screenshot",
        help="Open report.html in headless Chromium (when installed): save its first screen "
        "(1280 x 800) as report.png, linked from summary.md, and warn about console errors, "
        "figures not shown, the findings table below the first screen or horizontal scroll.",
    ),
    open_browser: bool = typer.Option(
        False,
        "--open",
        help="Open report.html in your web browser afterwards (a message where there is none).",
    ),
) -> None:
    """Turn a results folder into figures, summary.md and one self-contained report.html
    (both open with the study's findings as observed in the run, also in findings.json)."""

    def body() -> None:
        # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
        from emobench.report.build import report_run

        options = ReportOptions(
            out=out,
            formats=formats,
            n_resamples=n_resamples,
            rule=rule,
            head=head,
            tail=tail,
            prior=prior or _config_priors(run_dir) or DEFAULT_PRIORS,
            reference=reference,
            max_confusion=max_confusion,
            seed=seed,
            recompute=recompute,
            workers=default_workers() if workers is None else workers,
            screenshot=screenshot,
        )
        folder = report_run(
            run_dir, options, warn=lambda line: typer.echo(f"warning: {line}", err=True)
        )
        names = (SUMMARY_FILE, HTML_FILE, FINDINGS_FILE)
        written = [name for name in names if (folder / name).exists()]
        typer.echo(f"report written to {folder} ({', '.join(written)}, {FIGURES_DIR}/)")
        _echo_findings(folder / FINDINGS_FILE)
        if open_browser:
            open_report(folder / HTML_FILE)

    run_cli(body)


def open_report(path: Path) -> bool:
    """Open ``path`` in the user's web browser (:mod:`webbrowser`); where there is none,
    or no HTML report, say so and return False."""
    import webbrowser

    if not path.is_file():
        typer.echo(f"--open: no {path.name} to open (see --format)", err=True)
        return False
    try:
        opened = webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        typer.echo(f"--open: no web browser found here; open {path} yourself", err=True)
    return opened


def _echo_findings(path: Path) -> None:
    """Print each finding's verdict (from ``findings.json``), the summary's opening lines."""
    import json

    try:
        findings = json.loads(path.read_text(encoding="utf-8"))["findings"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no findings file: the report itself says why
    typer.echo("findings of this run (details in the summary):")
    for i, f in enumerate(findings, start=1):
        typer.echo(f"  {i}. {f.get('title')}: {f.get('verdict')}")


def _config_priors(run_dir: Path) -> list[str] | None:
    """The run config's ``[report] priors`` (what a preset asks its report to plot), if any."""
    import json

    try:
        config = json.loads((Path(run_dir) / "manifest.json").read_text()).get("config") or {}
    except (OSError, ValueError, AttributeError):
        return None  # the report itself says what is wrong with the folder
    priors = (config.get("report") or {}).get("priors") if isinstance(config, dict) else None
    return [str(p) for p in priors] if isinstance(priors, list) and priors else None
