"""Report sections comparing cells along a sweep: metric vs sampling density, and original
vs other frame order."""

from __future__ import annotations

import polars as pl

from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading, Paragraph


def density_section(ctx: ReportContext, doc: Document) -> None:
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
                "model and setting, bands = 95% bootstrap CI of the fold mean, a ring on "
                "each curve's peak.",
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


def order_section(ctx: ReportContext, doc: Document) -> None:
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
