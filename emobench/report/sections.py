"""The report's sections: each turns the prepared data into blocks and queued figures.

:class:`ReportContext` holds everything computed once (cells, confusions, metric look-ups,
reference cells); :func:`build_document` runs the sections in order. Figures are queued on
the context's :class:`~emobench.report.jobs.FigureJobs` and referenced by file name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report import tables as tb
from emobench.report.document import Bullets, Document, Figure, Heading, Paragraph
from emobench.report.jobs import FigureJobs, timed
from emobench.report.priors import get_prior

FIGURES_DIR = "figures"


@dataclass
class ReportContext:
    """Everything the sections need, computed once."""

    run_path: Path
    out_dir: Path
    fig_dir: Path
    manifest: dict[str, Any]
    predictions: pl.DataFrame
    settings: tuple[str, ...]
    cells: pl.DataFrame
    rows: dict[str, dict[str, Any]]
    varying: list[str]
    infos: dict[str, an.DatasetInfo]
    confusions: dict[str, an.CellConfusion]
    lookup: an.MetricLookup
    refs: dict[tuple[str, str], dict[str, Any]]
    rule: str
    n_resamples: int
    seed: int
    prior: tuple[str, ...]
    max_confusion: int
    model_colours: dict[str, str]
    jobs: FigureJobs
    notes: list[str] = field(default_factory=list)
    stems: set[str] = field(default_factory=set)

    def submit(self, fn: Callable[..., tuple[str, str]], *args: Any) -> tuple[str, str]:
        """Queue a figure function (last two args: folder, stem); return its file names."""
        self.jobs.submit(fn, *args)
        stem = args[-1]
        return f"{stem}.png", f"{stem}.svg"

    def figure(self, written: tuple[str, str], caption: str) -> Figure:
        """A figure block for files written into the figures folder."""
        png, svg = written
        return Figure(f"{FIGURES_DIR}/{png}", f"{FIGURES_DIR}/{svg}", caption)

    def stem(self, *parts: Any, cell_id: str | None = None) -> str:
        """A stable, sanitised, unique figure file stem."""
        base = an.slug(*parts)
        stem = base
        if stem in self.stems:
            import hashlib

            digest = hashlib.sha1(str(cell_id or len(self.stems)).encode()).hexdigest()[:8]
            stem = f"{base}_{digest}"
        self.stems.add(stem)
        return stem

    def dataset_rows(self, dataset: str) -> list[dict[str, Any]]:
        """The cells of one dataset (table order)."""
        return [r for r in self.rows.values() if r["dataset"] == dataset]

    def dataset_refs(self, dataset: str) -> list[dict[str, Any]]:
        """The reference cell of each model on one dataset."""
        return [r for (ds, _), r in self.refs.items() if ds == dataset]


def build_document(ctx: ReportContext) -> Document:
    """Compute the figures and assemble the whole report."""
    name = ctx.manifest.get("run_name") or ctx.run_path.name
    doc = Document(title=f"emobench report: {name}")
    for section in (
        _intro,
        _overall_section,
        _confusion_section,
        _longtail_section,
        _switch_section,
        _density_section,
        _order_section,
        _prior_section,
        _skipped_section,
        _reproducibility_section,
    ):
        with timed(section.__name__.strip("_")):
            section(ctx, doc)
    doc.add(Heading("Notes on this report"))
    doc.add(Bullets(tuple(ctx.notes) if ctx.notes else ("Every figure could be drawn.",)))
    return doc


def _intro(ctx: ReportContext, doc: Document) -> None:
    n_models = ctx.cells.get_column("model").n_unique()
    datasets = ", ".join(f"`{d}`" for d in ctx.infos)
    folds = ctx.predictions.get_column("fold").n_unique()
    doc.add(
        Paragraph(
            f"Run folder `{ctx.run_path}` (created {ctx.manifest.get('created', 'unknown')}): "
            f"{ctx.predictions.height} predictions in {ctx.cells.height} cells, "
            f"{n_models} model(s), dataset(s) {datasets}, {folds} fold(s)."
        ),
        Paragraph(
            "Values are the mean over folds ± the sample std across folds (the DFEW/MAFW "
            "convention: per-fold scores averaged, not pooled predictions). 95% CIs come from "
            f"a clip bootstrap ({ctx.n_resamples} resamples; for several folds, clips are "
            "resampled within each fold and the fold mean recomputed). Invalid answers count "
            f"as wrong. Classes are grouped by the `{ctx.rule}` rule on training counts."
        ),
    )
    ref_text = [
        f"`{m}` ({ds}): {an.describe_cell(r, varying=['sampler', 'order'] + _switches(ctx))}"
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


def _switches(ctx: ReportContext) -> list[str]:
    return [
        k for k in ("enrichment", "rebalancing", "prior_correction", "seed") if k in ctx.varying
    ]


def _overall_section(ctx: ReportContext, doc: Document) -> None:
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


def _cell_title(ctx: ReportContext, row: Mapping[str, Any]) -> str:
    conf = ctx.confusions[str(row["cell_id"])]
    desc = an.describe_cell(row, varying=["sampler", "order", *_switches(ctx)])
    return (
        f"{row['model']} on {row['dataset']}: {desc}. Pooled over {len(conf.folds)} "
        f"fold(s), row-normalised"
    )


def _confusion_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Confusion matrices"))
    doc.add(
        Paragraph(
            "Rows are true classes ordered head → tail by training count, colour is the row "
            "share (recall), numbers are clip counts pooled over folds (the tables report "
            "fold means). Tail classes are marked `*` and drawn in orange; the `invalid` "
            "column appears when some answer named no class."
        )
    )
    for ds, info in ctx.infos.items():
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        refs = ctx.dataset_refs(ds)
        if len(refs) > 1:
            panels = [(r["model"], ctx.confusions[str(r["cell_id"])].pooled) for r in refs]
            written = ctx.submit(
                fg.confusion_grid_figure,
                panels,
                info.labels,
                info.groups,
                info.tail_group,
                f"{ds}: models side by side (reference cells; pooled over folds, "
                "row-normalised, %)",
                ctx.fig_dir,
                ctx.stem("confusion-grid", ds),
            )
            doc.add(
                ctx.figure(
                    written,
                    f"{ds}: confusion matrices of each model's reference cell (row %, pooled "
                    "over folds).",
                )
            )
        chosen, dropped = an.confusion_cells(
            ctx.cells.filter(pl.col("dataset") == ds),
            {k: v for k, v in ctx.refs.items() if k[0] == ds},
            ctx.max_confusion,
        )
        for row in chosen:
            cid = str(row["cell_id"])
            stem = ctx.stem(
                "confusion",
                ds,
                row["model"],
                row.get("sampler"),
                row.get("order"),
                *[
                    f"{k}-{row.get(k)}"
                    for k in ("enrichment", "rebalancing", "prior_correction")
                    if not an.is_off(row.get(k))
                ],
                f"seed{row['seed']}" if row.get("seed") is not None else None,
                cell_id=cid,
            )
            written = ctx.submit(
                fg.confusion_figure,
                ctx.confusions[cid].pooled,
                info.labels,
                info.groups,
                info.tail_group,
                _cell_title(ctx, row),
                ctx.fig_dir,
                stem,
            )
            doc.add(ctx.figure(written, f"{_cell_title(ctx, row)} (cell `{cid}`)."))
        n_ds = ctx.cells.filter(pl.col("dataset") == ds).height
        if dropped or len(chosen) < n_ds:
            ctx.notes.append(
                f"{ds}: confusion figures drawn for {len(chosen)} of {n_ds} cells (each "
                "model's reference sampling and its order/switch variants"
                + (f"; {dropped} more dropped by the cap of {ctx.max_confusion}" if dropped else "")
                + "); every cell's metrics are in the tables and metrics.parquet."
            )


def _longtail_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Long tail: head / medium / tail"))
    from emobench.metrics import get_rule

    try:
        rule_desc = get_rule(ctx.rule).description
    except Exception:  # an unknown rule name in an old metrics file
        rule_desc = ctx.rule
    doc.add(
        Paragraph(
            f"Grouping rule `{ctx.rule}`: {rule_desc}. head−tail gap = mean head recall − mean "
            "tail recall; collapse rate = share of tail clips predicted as a head class; "
            "neutral sink = share of non-neutral clips predicted neutral; WAR−UAR = how much "
            "accuracy flatters the model over balanced recall."
        )
    )
    for ds, info in ctx.infos.items():
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        if not info.groups:
            ctx.notes.append(
                f"{ds}: no training counts in the manifest, so no head/medium/tail groups, "
                "long-tail chart or metrics."
            )
            continue
        groups = [g for g in info.group_names if g in set(info.groups.values())]
        bars = []
        for r in ctx.dataset_refs(ds):
            cid = str(r["cell_id"])
            recalls = {
                g: s for g in groups if (s := ctx.lookup.get(cid, "group", g, "recall")) is not None
            }
            gap = ctx.lookup.value(cid, "longtail", None, "head_tail_gap")
            if recalls:
                bars.append(fg.GroupBars(str(r["model"]), recalls, gap))
        if bars:
            written = ctx.submit(
                fg.longtail_figure,
                bars,
                groups,
                f"{ds}: recall by class group (reference cells, mean ± std over folds)",
                ctx.fig_dir,
                ctx.stem("longtail-recall", ds),
            )
            doc.add(
                ctx.figure(
                    written,
                    f"{ds}: mean recall of the {', '.join(groups)} classes per model "
                    "(error bars: std over folds); the head−tail gap is written above.",
                )
            )
        else:
            ctx.notes.append(f"{ds}: the metrics table has no group recalls; no long-tail chart.")
        doc.add(
            tb.longtail_table(
                ctx.dataset_rows(ds),
                ctx.lookup,
                info,
                ctx.varying,
                caption=f"{ds}: long-tail metrics per cell (rule `{ctx.rule}`; mean ± std over "
                "folds)",
            )
        )


def _at_reference_sampling(ctx: ReportContext, row: Mapping[str, Any]) -> bool:
    """Whether a cell has its model's reference sampling and frame order."""
    ref = ctx.refs.get((row["dataset"], row["model"]))
    return ref is not None and all(
        row.get(k) == ref.get(k) for k in ("sampler", "density_unit", "density", "order")
    )


def _switch_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Long-tail switches: effect of prior correction and re-balancing"))
    refs = ", ".join(f"{k.replace('_', ' ')} `{v}`" for k, v in an.SWITCH_REFERENCE.items())
    doc.add(
        Paragraph(
            f"Each row compares a cell with the switch at its reference value ({refs}) with "
            "the same model, sampler, order and seed with the switch on: reference → "
            "switched (Δ = switched − reference), fold means. Tail recall = mean recall of "
            "the tail classes; collapse rate = share of tail clips predicted as a head class. "
            "Only pairs at each model's reference sampling and frame order are shown; every "
            "cell's metrics are in metrics.parquet."
        )
    )
    any_pairs = False
    for ds, info in ctx.infos.items():
        sub = ctx.cells.filter(pl.col("dataset") == ds)
        tables = []
        for switch in an.SWITCH_REFERENCE:
            pairs = an.switch_pairs(sub, ctx.settings, switch)
            if not pairs:
                continue
            any_pairs = True
            shown = [
                (ctx.rows[a], ctx.rows[b])
                for a, b in pairs
                if _at_reference_sampling(ctx, ctx.rows[a])
            ]
            name = switch.replace("_", " ")
            if len(shown) < len(pairs):
                ctx.notes.append(
                    f"{ds}: {name} table shows {len(shown)} of {len(pairs)} switch pairs (each "
                    "model's reference sampling and order); every cell is in metrics.parquet."
                )
            if not shown:
                continue
            tables.append(
                tb.switch_table(
                    shown,
                    ctx.lookup,
                    info,
                    switch,
                    ctx.varying,
                    caption=f"{ds}: effect of {name} (reference → switched, Δ = switched − "
                    "reference; mean over folds)",
                )
            )
        if tables:
            if len(ctx.infos) > 1:
                doc.add(Heading(ds, 3))
            doc.add(*tables)
    if not any_pairs:
        doc.add(
            Paragraph("This run has no cells that differ only in prior correction or re-balancing.")
        )
        ctx.notes.append("No prior-correction / re-balancing pairs: no switch-effect table.")


def _density_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Metric vs sampling density"))
    series = an.density_series(ctx.cells, ctx.settings)
    drew = False
    for (ds, unit), lines in sorted(series.items()):
        if max(len(line.x) for line in lines) < 2:
            ctx.notes.append(
                f"{ds}: no metric-vs-density plot in {unit}: every line has a single density."
            )
            continue
        variant_keys = [
            k for k in lines[0].variant if len({str(line.variant[k]) for line in lines}) > 1
        ]
        marker_keys = [k for k in variant_keys if k != "order"]
        combos: dict[tuple[str, ...], int] = {}
        plot_lines = []
        for line in lines:
            combo = tuple(str(line.variant[k]) for k in marker_keys)
            combos.setdefault(combo, len(combos))
            variant = ", ".join(f"{k}={line.variant[k]}" for k in marker_keys)
            order = str(line.variant["order"]) if "order" in variant_keys else ""
            extra = [
                f"{k}={line.variant[k]}" if k != "order" else str(line.variant[k])
                for k in variant_keys
            ]
            label = line.model + (f" ({', '.join(extra)})" if extra else "")
            values = {
                m: [ctx.lookup.get(cid, "overall", None, m) for cid in line.cells]
                for m in ("macro_f1", "uar")
            }
            plot_lines.append(
                fg.Line(
                    label=label,
                    x=line.x,
                    values=values,
                    colour=ctx.model_colours.get(line.model, fg.OKABE_ITO[0]),
                    linestyle=fg.LINESTYLES.get(str(line.variant.get("order")), "-."),
                    marker=fg.MARKERS[combos[combo] % len(fg.MARKERS)],
                    panel=line.model,
                    variant=variant,
                    order=order,
                )
            )
        written = ctx.submit(
            fg.density_figure,
            plot_lines,
            [("macro_f1", "macro-F1"), ("uar", "UAR")],
            tb.density_caption(unit),
            f"{ds}: macro-F1 and UAR vs sampling density (mean over folds, 95% CI bands)",
            ctx.fig_dir,
            ctx.stem("density", ds, unit),
        )
        doc.add(
            ctx.figure(
                written,
                f"{ds}: macro-F1 and UAR vs {tb.density_caption(unit)}; one line per "
                "model and setting, bands = 95% bootstrap CI of the fold mean.",
            )
        )
        drew = True
    dense = ctx.cells.filter(pl.col("density_unit") == "all").height
    if dense and drew:
        ctx.notes.append(
            f"{dense} cell(s) sampling all frames have no density value and are not on the "
            "density plots (see the tables)."
        )
    if not series:
        ctx.notes.append("No density sweep in this run: no metric-vs-density plot.")


def _order_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Frame order: original vs shuffled"))
    any_pairs = False
    for ds, info in ctx.infos.items():
        sub = ctx.cells.filter(pl.col("dataset") == ds)
        pairs = an.order_pairs(sub, ctx.settings)
        comparisons = []
        for orig, other in pairs:
            cmp = an.order_comparison(
                ctx.predictions,
                orig,
                other,
                info.labels,
                n_resamples=ctx.n_resamples,
                seed=ctx.seed,
            )
            if cmp is not None:
                comparisons.append((ctx.rows[orig], ctx.rows[other], cmp))
        if not comparisons:
            continue
        any_pairs = True
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        doc.add(
            tb.order_table(
                comparisons,
                ctx.lookup,
                ctx.varying,
                caption=f"{ds}: macro-F1 with original vs other frame order. Δ (fold mean) "
                "is the difference of the reported means; Δ pooled, its CI and p come from a "
                f"paired bootstrap ({ctx.n_resamples} resamples) over clips matched by "
                "(fold, clip id); McNemar tests paired correctness on the same clips.",
            )
        )
    if not any_pairs:
        doc.add(Paragraph("This run has no cells that differ only in frame order."))
        ctx.notes.append("No original/shuffled pairs: no frame-order table.")


def _prior_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Per-class F1 and class prior"))
    for ds, info in ctx.infos.items():
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        refs = ctx.dataset_refs(ds)
        doc.add(
            tb.per_class_table(
                info,
                refs,
                ctx.lookup,
                caption=f"{ds}: per-class F1 of each model's reference cell (mean ± std over "
                "folds), classes head → tail; every cell's values are in metrics.parquet",
            )
        )
        for name in ctx.prior:
            _prior_plot(ctx, doc, ds, info, refs, name)


def _prior_plot(
    ctx: ReportContext,
    doc: Document,
    ds: str,
    info: an.DatasetInfo,
    refs: list[dict[str, Any]],
    name: str,
) -> None:
    """F1-vs-prior scatter and correlation table of one dataset for the prior ``name``."""
    from emobench.metrics import prior_correlation

    info_p = get_prior(name)
    prior = info_p.fn(ctx.manifest, ds, info.labels)
    if not prior or not any(v > 0 for v in prior.values()):
        ctx.notes.append(f"{ds}: prior `{name}` is unavailable; no F1-vs-prior plot.")
        return
    panels, corr_rows = [], []
    for r in refs:
        cid = str(r["cell_id"])
        f1 = {
            lab: v
            for lab in info.labels
            if (v := ctx.lookup.value(cid, "class", lab, "f1")) is not None
        }
        corr = prior_correlation(f1, prior)
        corr_rows.append((str(r["model"]), corr))
        pts = corr.get("points") or []
        if len(pts) < 3:
            continue
        note = f"Spearman ρ={_fmt(corr.get('spearman'))}, Pearson r={_fmt(corr.get('pearson'))}"
        panels.append(
            fg.ScatterPanel(
                model=str(r["model"]),
                labels=[p[0] for p in pts],
                prior=[p[1] for p in pts],
                f1=[p[2] for p in pts],
                tail=[info.groups.get(p[0]) == info.tail_group for p in pts],
                note=note,
            )
        )
    if panels:
        written = ctx.submit(
            fg.prior_figure,
            panels,
            info_p.axis_label,
            info_p.log_scale,
            f"{ds}: per-class F1 vs {info_p.axis_label} (reference cells; tail classes ▲)",
            ctx.fig_dir,
            ctx.stem("f1-vs-prior", ds, name),
        )
        doc.add(
            ctx.figure(
                written,
                f"{ds}: per-class F1 (mean over folds) against the {info_p.axis_label}; "
                "tail classes are orange triangles; p-values in the table below.",
            )
        )
    else:
        ctx.notes.append(
            f"{ds}: fewer than 3 classes with both F1 and prior `{name}`; no F1-vs-prior plot."
        )
    doc.add(
        tb.correlation_table(
            corr_rows,
            caption=f"{ds}: correlation of per-class F1 with the {info_p.axis_label} "
            f"(prior `{name}`)",
        )
    )


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{float(x):.2f}"


def _skipped_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Skipped clips"))
    skipped = ctx.manifest.get("skipped") or []
    if not skipped:
        doc.add(Paragraph("No clip was skipped."))
        return
    models = {cid: str(r["model"]) for cid, r in ctx.rows.items()}
    doc.add(
        Paragraph(f"{len(skipped)} (cell, fold, clip) predictions were skipped by the run."),
        tb.skipped_table(skipped, models),
    )


def _reproducibility_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Reproducing this run"))
    doc.add(tb.dataset_table(ctx.infos, ctx.manifest))
    doc.add(*tb.settings_blocks(ctx.manifest))
