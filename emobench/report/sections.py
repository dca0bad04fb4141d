"""The report's sections: each turns the prepared data into blocks and queued figures.

:class:`~emobench.report.context.ReportContext` holds everything computed once (cells,
confusions, metric look-ups, reference cells); :func:`build_document` runs the sections in
order, the study's findings first (``findings``, computed from the sections' tables).
The sections with figures live in their own modules (``section_confusion``,
``section_longtail``, ``section_sweeps``, ``section_prior``, ``section_generative``: invalid
answers of free-text cells and the MSCE enrichment table, only when the run has them).
Figures are queued on the context's :class:`~emobench.report.jobs.FigureJobs` and
referenced by file name.
"""

from __future__ import annotations

from emobench.report import FIGURES_DIR
from emobench.report import analysis as an
from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Bullets, Document, Heading, Paragraph, Table
from emobench.report.findings import findings_section
from emobench.report.jobs import timed
from emobench.report.section_confusion import confusion_section
from emobench.report.section_generative import enrichment_section, generative_section
from emobench.report.section_longtail import longtail_section, switch_section
from emobench.report.section_prior import prior_section
from emobench.report.section_scene import scene_section
from emobench.report.section_sweeps import density_section, order_section
from emobench.results.problems import excluded_clips, exclusion_line

__all__ = ["FIGURES_DIR", "ReportContext", "build_document"]


def build_document(ctx: ReportContext) -> Document:
    """Compute the figures and assemble the whole report."""
    name = ctx.manifest.run_name or ctx.run_path.name
    doc = Document(title=f"emobench report: {name}")
    for section in (
        findings_section,
        intro,
        overall_section,
        confusion_section,
        longtail_section,
        scene_section,
        switch_section,
        enrichment_section,
        generative_section,
        density_section,
        order_section,
        prior_section,
        excluded_section,
        skipped_section,
        reproducibility_section,
    ):
        with timed(section.__name__):
            section(ctx, doc)
    doc.add(Heading("Notes on this report"))
    doc.add(Bullets(tuple(ctx.notes) if ctx.notes else ("Every figure could be drawn.",)))
    return doc


def intro(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("This run"))
    n_models = ctx.cells.get_column("model").n_unique()
    datasets = ", ".join(f"`{d}`" for d in ctx.infos)
    folds = ctx.predictions.get_column("fold").n_unique()
    run_metrics = (ctx.manifest.config or {}).get("metrics") or {}
    table_n = run_metrics.get("n_resamples", ctx.n_resamples)
    doc.add(
        Paragraph(
            f"Run folder `{ctx.run_path}` (created {ctx.manifest.created or 'unknown'}): "
            f"{ctx.predictions.height} predictions in {ctx.cells.height} cells, "
            f"{n_models} model(s), dataset(s) {datasets}, {folds} fold(s)."
        ),
        Paragraph(
            (
                "One fold: values carry no ± (no spread across folds). "
                if folds == 1
                else "Values are the mean over folds ± the sample std across folds (the "
                "DFEW/MAFW convention: per-fold scores averaged, not pooled predictions). "
            )
            + "95% CIs come from "
            f"a clip bootstrap ({table_n} resamples, as the run's metrics table was computed; "
            "for several folds, clips are resampled within each fold and the fold mean "
            f"recomputed); the report's own paired tests use {ctx.n_resamples} resamples. "
            "Invalid answers count as wrong. Classes are grouped by the "
            f"`{ctx.rule}` rule on training counts."
        ),
    )
    ref_text = [
        f"`{m}` ({ds}): {an.describe_cell(r, varying=['sampler', 'order'] + ctx.switches())}"
        for (ds, m), r in ctx.refs.items()
    ]
    doc.add(
        Paragraph(
            "Reference cell of each model (used where models are compared side by side): "
            "original frame order, every switch off, densest sampling, unless "
            "`--reference` says otherwise:"
        ),
        Bullets(tuple(ref_text)),
    )


def overall_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Overall metrics per cell"))
    for ds in ctx.infos:
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        doc.add(
            tb.overall_table(
                ctx.dataset_rows(ds),
                ctx.lookup,
                ctx.varying,
                caption=f"{ds}: mean ± std over folds; macro-F1 95% bootstrap CI",
            )
        )


#: Excluded clips listed per dataset in the report (all are in manifest.json).
MAX_EXCLUDED_ROWS = 50


def excluded_section(ctx: ReportContext, doc: Document) -> None:
    """Clips the dataset loaders left out (deleted media, unreadable annotations): how
    many, of which kind, and the clips themselves (from the manifest's problems)."""

    doc.add(Heading("Clips excluded from the datasets"))
    datasets = ctx.manifest.get("datasets") or {}
    said = False
    for name, entry in datasets.items() if isinstance(datasets, dict) else ():
        line = exclusion_line(name, entry, examples=False)
        if line is None:
            continue
        said = True
        doc.add(Paragraph(line + "."))
        clips = excluded_clips(entry)
        if clips:
            rows = tuple((c["clip_id"], c["kind"], c["detail"]) for c in clips)
            more = len(rows) - MAX_EXCLUDED_ROWS
            doc.add(
                Table(
                    ("clip", "kind", "why"),
                    rows[:MAX_EXCLUDED_ROWS],
                    caption=f"{name}: excluded clips"
                    + (f" (the first {MAX_EXCLUDED_ROWS}; {more} more)" if more > 0 else ""),
                )
            )
    if not said:
        doc.add(Paragraph("The dataset loaders excluded no clip and reported no problem."))


def skipped_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Skipped clips"))
    skipped = ctx.manifest.skipped
    if not skipped:
        doc.add(Paragraph("No clip was skipped."))
        return
    models = {cid: str(r["model"]) for cid, r in ctx.rows.items()}
    doc.add(
        Paragraph(f"{len(skipped)} (cell, fold, clip) predictions were skipped by the run."),
        tb.skipped_table(skipped, models),
    )


def reproducibility_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Reproducing this run"))
    doc.add(tb.dataset_table(ctx.infos, ctx.manifest))
    doc.add(*tb.settings_blocks(ctx.manifest))
