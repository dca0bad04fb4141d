"""Report section: confusion matrices (models side by side, then per cell)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading, Paragraph


def _cell_title(ctx: ReportContext, row: Mapping[str, Any]) -> str:
    conf = ctx.confusions[str(row["cell_id"])]
    desc = an.describe_cell(row, varying=["sampler", "order", *ctx.switches()])
    return (
        f"{row['model']} on {row['dataset']}: {desc}. Pooled over {len(conf.folds)} "
        f"fold(s), row-normalised"
    )


def confusion_section(ctx: ReportContext, doc: Document) -> None:
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
            doc.add(ctx.figure(written, f"{_cell_title(ctx, row)}."))
        n_ds = ctx.cells.filter(pl.col("dataset") == ds).height
        if dropped or len(chosen) < n_ds:
            ctx.notes.append(
                f"{ds}: confusion figures drawn for {len(chosen)} of {n_ds} cells (each "
                "model's reference sampling and its order/switch variants"
                + (f"; {dropped} more dropped by the cap of {ctx.max_confusion}" if dropped else "")
                + "); every cell's metrics are in the tables and metrics.parquet."
            )
