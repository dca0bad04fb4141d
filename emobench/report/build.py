"""Build the report of a run folder: figures, ``summary.md`` and one ``report.html``, both
opening with the study's findings as observed in the run (also written as data,
``findings.json``; :mod:`emobench.report.findings`).

:func:`report_run` reads only the run folder (manifest, predictions, metrics), never torch.
It computes ``metrics.parquet`` first when the run has none, then renders a fixed, small set
of figures so a report on 100k predictions stays within seconds:

* per-cell confusion matrices only for each model's *reference sampling* (the reference
  cell and its order / enrichment / re-balancing / prior-correction variants; at most
  ``max_confusion`` in all) -- a density sweep does not multiply them;
* one model-comparison confusion grid, one long-tail recall chart, one metric-vs-density
  figure per density unit and one per-class F1 vs prior figure per dataset and prior.

Every cell's numbers are in the tables whatever gets a figure.

A folder whose run still holds its lock is refused; a run that stopped without finishing,
or metrics made from other predictions, are said on the console (``warn``) and in the
report's notes, and the metrics shown are always those of the predictions shown
(:mod:`emobench.report.integrity`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from emobench.config import MetricsConfig
from emobench.io import write_json_atomic
from emobench.report import FIGURES_DIR, FINDINGS_FILE, HTML_FILE, SUMMARY_FILE, integrity
from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report.analysis import ReportError
from emobench.report.browser import check_report, find_chromium
from emobench.report.document import Document, MdImage, render_markdown
from emobench.report.findings import findings_record
from emobench.report.html import render_html
from emobench.report.jobs import FigureJobs, timed
from emobench.report.options import (
    FORMATS,
    ReportOptions,
    check_reference_values,
    parse_formats,
    parse_reference,
)
from emobench.report.overview import SCREENSHOT, compose
from emobench.report.sections import ReportContext, build_document
from emobench.results import Manifest, atomic_write_text, open_run
from emobench.results.metrics_table import compute_metrics

__all__ = [
    "FORMATS",
    "ReportOptions",
    "open_context",
    "parse_formats",
    "parse_reference",
    "report_run",
]


def _load_metrics(
    run: Any,
    predictions: pl.DataFrame,
    manifest: Mapping[str, Any],
    *,
    rule: str | None,
    head: float | None,
    tail: float | None,
    n_resamples: int,
    seed: int,
    recompute: bool,
    notes: list[str],
    warn: Callable[[str], None],
) -> pl.DataFrame:
    """Read metrics.parquet, or compute it (and write it when it was missing)."""

    def compute(r: str) -> pl.DataFrame:
        # model_construct: the report checked these already (and allows what a run config
        # would refuse, e.g. an integer threshold).
        options = MetricsConfig.model_construct(
            rule=r, head=head, tail=tail, n_resamples=n_resamples, seed=seed
        )
        return compute_metrics(predictions, manifest, options)

    if not run.metrics_path.is_file():
        metrics = compute(rule or "relative")
        try:
            run.write_metrics(metrics)
            where = "written to the run folder"
        except OSError as exc:  # a read-only results folder still gets a report
            where = f"not saved ({exc.strerror or exc})"
        notes.append(
            f"`metrics.parquet` was missing: computed now (rule {rule or 'relative'}, "
            f"{n_resamples} bootstrap resamples) and {where}."
        )
        return metrics
    metrics = run.read_metrics()
    rules = metrics.get_column("rule").drop_nulls().unique().to_list()
    file_rule = str(rules[0]) if rules else None
    stale = set(metrics.get_column("cell_id").unique().to_list()) != set(
        predictions.get_column("cell_id").unique().to_list()
    )
    if stale:
        notes.append(
            "`metrics.parquet` does not cover the same cells as `predictions.parquet` (stale?); "
            "the report recomputed the metrics and left the file unchanged."
        )
        return compute(rule or file_rule or "relative")
    differ = integrity.disagreeing_cells(metrics, predictions)
    if differ:
        what = f"`metrics.parquet` disagrees with `predictions.parquet` in {len(differ)} cell(s)"
        notes.append(
            f"{what} ({integrity.names(differ, '`')}: made from other predictions, e.g. by a "
            "run stopped while writing its results); the report recomputed the metrics from "
            "the predictions and left the file unchanged."
        )
        warn(
            f"metrics.parquet disagrees with predictions.parquet in {len(differ)} cell(s) "
            f"({integrity.names(differ)}); metrics recomputed from the predictions for this "
            "report (the file is left unchanged)"
        )
        return compute(rule or file_rule or "relative")
    wants_other = (rule is not None and rule != file_rule) or head is not None or tail is not None
    if recompute or wants_other:
        used = rule or file_rule or "relative"
        notes.append(
            f"Metrics recomputed for this report (rule {used}"
            + (f", head={head}" if head is not None else "")
            + (f", tail={tail}" if tail is not None else "")
            + f"); `metrics.parquet` (rule {file_rule}) was left unchanged."
        )
        return compute(used)
    return metrics


def _clear_figures(fig_dir: Path) -> None:
    """Remove figures of an earlier report so stale files do not linger."""
    if fig_dir.is_dir():
        for p in fig_dir.iterdir():
            if p.is_file() and p.suffix in (".png", ".svg"):
                p.unlink()


def report_run(
    run_dir: Path | str,
    options: ReportOptions | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write figures (PNG + SVG), ``summary.md``, ``report.html`` and ``findings.json``
    for a run folder.

    ``options`` (:class:`~emobench.report.options.ReportOptions`, checked when built;
    None: the defaults) say where and what to write; ``warn`` is given each one-line
    warning about the folder (a run that did not finish, metrics recomputed). Returns the
    report folder. Refuses (:class:`ReportError`) a folder whose run still holds its lock.
    """

    opts = options if options is not None else ReportOptions()
    integrity.refuse_running(Path(run_dir))
    run = open_run(run_dir)
    manifest = run.manifest()
    # Start the figure worker now: its matplotlib import overlaps the metrics computation.
    jobs = FigureJobs(opts.workers)
    try:
        return _report(run, manifest, opts, jobs, warn or (lambda _: None))
    except BaseException:
        jobs.close()
        raise


def open_context(run_dir: Path | str, options: ReportOptions | None = None) -> ReportContext:
    """The :class:`ReportContext` of a run folder (metrics, cells, confusions, CIs), as
    :func:`report_run` prepares it, without drawing or writing a report: for code that
    wants the report's numbers (e.g. :func:`emobench.report.findings.compute_findings`).
    Figures queued on it run inline."""

    opts = options if options is not None else ReportOptions()
    integrity.refuse_running(Path(run_dir))
    run = open_run(run_dir)
    return _context(run, run.manifest(), opts, FigureJobs(0), lambda _: None)


def _report(
    run: Any, manifest: Manifest, opts: ReportOptions, jobs: FigureJobs, warn: Callable[[str], None]
) -> Path:
    """The body of :func:`report_run` once the run folder is open."""
    ctx = _context(run, manifest, opts, jobs, warn)
    try:
        ctx.fig_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report folder {ctx.fig_dir}: {exc}") from exc
    _clear_figures(ctx.fig_dir)

    shot = opts.screenshot and "html" in opts.formats and find_chromium() is not None
    if opts.screenshot and "html" in opts.formats and not shot:
        warn("report.png not taken: no Chromium on PATH (--no-screenshot silences this)")
    body = build_document(ctx)
    with timed("overview"):
        doc = compose(ctx, body, screenshot=shot)
    with timed("wait for figures"):
        jobs.wait()
    with timed("write md/html"):
        _write(doc, ctx.out_dir, opts.formats, ctx.findings)
    (ctx.out_dir / SCREENSHOT).unlink(missing_ok=True)
    if shot:
        with timed("browser check"):
            _look(ctx, doc, opts, warn)
    return ctx.out_dir


def _look(
    ctx: ReportContext, doc: Document, opts: ReportOptions, warn: Callable[[str], None]
) -> None:
    """Screenshot ``report.html`` and warn about what a reader would meet; without a
    screenshot the summary is written again without its link."""

    try:
        seen = check_report(ctx.out_dir / HTML_FILE, ctx.out_dir / SCREENSHOT)
    except (OSError, RuntimeError) as exc:
        warn(f"report.html could not be checked in Chromium: {exc}")
        seen = None
    for problem in seen.problems if seen is not None else ():
        warn(f"report.html in Chromium: {problem}")
    if (seen is None or seen.screenshot is None) and "md" in opts.formats:
        plain = Document(doc.title, [b for b in doc.blocks if not isinstance(b, MdImage)])
        try:
            atomic_write_text(ctx.out_dir / SUMMARY_FILE, render_markdown(plain))
        except OSError as exc:
            raise ReportError(f"cannot write the report into {ctx.out_dir}: {exc}") from exc


def _context(
    run: Any, manifest: Manifest, opts: ReportOptions, jobs: FigureJobs, warn: Callable[[str], None]
) -> ReportContext:
    """Read the run's predictions and metrics and compute what every section shares."""
    with timed("read predictions"):
        predictions = run.read_predictions()
    if predictions.height == 0:
        raise ReportError(f"{run.path}: predictions.parquet has no rows")
    check_reference_values(opts.reference or {}, predictions)
    notes: list[str] = []
    holder = integrity.unfinished(run.path)
    if holder is not None:
        lines, said = integrity.unfinished_lines(run.path, holder, manifest, predictions)
        for line in lines:
            warn(line)
        notes.extend(said)
    with timed("metrics"):
        metrics = _load_metrics(
            run,
            predictions,
            manifest,
            rule=opts.rule,
            head=opts.head,
            tail=opts.tail,
            n_resamples=opts.n_resamples,
            seed=opts.seed,
            recompute=opts.recompute,
            notes=notes,
            warn=warn,
        )
    lookup = an.metric_lookup(metrics)
    used_rule = lookup.rule or opts.rule or "relative"

    with timed("cells, confusions, CIs"):
        settings = an.setting_columns()
        cells = an.cell_table(predictions, settings)
        infos = an.dataset_infos(
            manifest, predictions, rule=used_rule, head=opts.head, tail=opts.tail
        )
        confusions = an.cell_confusions(predictions, infos)
        an.fill_fold_mean_cis(lookup, confusions, n_resamples=opts.n_resamples, seed=opts.seed)
    models = sorted(cells.get_column("model").unique().to_list())
    palette = fg.OKABE_ITO[:7]
    out_dir = Path(opts.out) if opts.out is not None else run.report_dir
    ctx = ReportContext(
        run_path=run.path,
        out_dir=out_dir,
        fig_dir=out_dir / FIGURES_DIR,
        manifest=manifest,
        predictions=predictions,
        settings=settings,
        cells=cells,
        rows={str(r["cell_id"]): r for r in cells.iter_rows(named=True)},
        varying=an.varying_settings(cells, settings),
        infos=infos,
        confusions=confusions,
        lookup=lookup,
        refs=an.reference_cells(cells, opts.reference or None),
        rule=used_rule,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        prior=opts.prior,
        max_confusion=opts.max_confusion,
        model_colours={m: palette[i % len(palette)] for i, m in enumerate(models)},
        jobs=jobs,
        notes=notes,
    )
    if opts.reference:
        wanted = ", ".join(f"{k}={v}" for k, v in opts.reference.items())
        for (ds, model), row in ctx.refs.items():
            if not an.matches(row, opts.reference):
                notes.append(
                    f"{ds}: `{model}` has no cell with {wanted}; its default reference cell "
                    "is used."
                )
    return ctx


def _write(doc: Document, out_dir: Path, fmts: Sequence[str], findings: Sequence[Any]) -> None:
    try:
        # The findings as data, whatever the formats: what the summary opens with.
        write_json_atomic(out_dir / FINDINGS_FILE, findings_record(findings))
        # A format not asked for is removed, so the folder never mixes two reports.
        if "md" in fmts:
            atomic_write_text(out_dir / SUMMARY_FILE, render_markdown(doc))
        else:
            (out_dir / SUMMARY_FILE).unlink(missing_ok=True)
        if "html" in fmts:
            atomic_write_text(out_dir / HTML_FILE, render_html(doc, out_dir))
        else:
            (out_dir / HTML_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot write the report into {out_dir}: {exc}") from exc
