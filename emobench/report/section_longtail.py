"""Report sections on the long tail: head / medium / tail metrics and the effect of the
long-tail switches (prior correction, re-balancing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from emobench.metrics import get_rule
from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading, Paragraph


def longtail_section(ctx: ReportContext, doc: Document) -> None:
    doc.add(Heading("Long tail: head / medium / tail"))

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


def switch_section(ctx: ReportContext, doc: Document) -> None:
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
