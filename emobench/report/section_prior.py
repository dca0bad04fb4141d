"""Report section: per-class F1 and its correlation with each class prior."""

from __future__ import annotations

from typing import Any

from emobench.metrics import prior_correlation
from emobench.report import analysis as an
from emobench.report import figures as fg
from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading
from emobench.report.priors import get_prior
from emobench.report.section_calibration import calibration_block


def prior_section(ctx: ReportContext, doc: Document) -> None:
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
    calibration_block(ctx, doc)


def _prior_plot(
    ctx: ReportContext,
    doc: Document,
    ds: str,
    info: an.DatasetInfo,
    refs: list[dict[str, Any]],
    name: str,
) -> None:
    """F1-vs-prior scatter and correlation table of one dataset for the prior ``name``."""

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
