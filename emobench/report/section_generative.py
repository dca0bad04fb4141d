"""Report sections for generative models and MSCE enrichment.

* :func:`generative_section` (only when some cell answered in free text): the
  invalid-answer rate per cell and per true class, and each model's most frequent raw
  answers that did not parse;
* :func:`enrichment_section` (only when some cell uses an enrichment other than ``none``):
  each enrichment cell against the ``none`` cell with every other setting equal, UAR / WAR
  / macro-F1 of both and the paired-bootstrap Δ, on all clips and on micro-expression clips.

Generative cells also get the usual confusion matrices, long-tail and density figures:
those sections treat ``invalid`` as an extra, always-wrong prediction column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from emobench.report import analysis as an
from emobench.report import generative as gen
from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading, Paragraph, Table

#: Longest raw answer shown in the unparsed-answers table (characters).
MAX_ANSWER_CHARS = 120


def _rate(n_invalid: int, n: int) -> str:
    return "–" if n == 0 else f"{n_invalid / n:.3f}"


def invalid_table(
    rates: pl.DataFrame,
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    varying: Sequence[str],
    caption: str,
) -> Table:
    """One row per cell: clips, invalid answers, their rate, then the rate per true class
    (``labels`` order; en dash for a class without clips)."""
    header = ("model", "setting", "answers", "invalid", "invalid rate", *labels)
    numeric = (False, False) + (True,) * (3 + len(labels))
    index = {
        (str(r["cell_id"]), r["label"]): (int(r["n"]), int(r["n_invalid"]))
        for r in rates.iter_rows(named=True)
    }
    out = []
    for row in rows:
        cid = str(row["cell_id"])
        n, k = index.get((cid, None), (0, 0))
        per_class = []
        for lab in labels:
            n_lab, k_lab = index.get((cid, lab), (0, 0))
            per_class.append(_rate(k_lab, n_lab))
        out.append(
            (str(row["model"]), tb.setting_text(row, varying), str(n), str(k), _rate(k, n))
            + tuple(per_class)
        )
    return Table(header, tuple(out), caption=caption, numeric=numeric)


def answer_text(text: str | None) -> str:
    """A raw answer as one short table cell: quoted, one line, no backticks."""
    if text is None:
        return "(no answer)"
    one_line = " ".join(text.split()).replace("`", "'")
    if not one_line:
        return "(empty answer)"
    if len(one_line) > MAX_ANSWER_CHARS:
        one_line = one_line[: MAX_ANSWER_CHARS - 1] + "…"
    return f"“{one_line}”"


def unparsed_table(top: Mapping[str, Sequence[tuple[str | None, int]]], caption: str) -> Table:
    """One row per (model, raw answer): rank, answer, count."""
    rows = [
        (model, str(i), answer_text(text), str(count))
        for model, items in top.items()
        for i, (text, count) in enumerate(items, start=1)
    ]
    return Table(
        ("model", "rank", "raw answer", "count"),
        tuple(rows),
        caption=caption,
        numeric=(False, True, False, True),
    )


def generative_section(ctx: ReportContext, doc: Document) -> None:
    cell_ids = gen.generative_cells(ctx.predictions)
    if not cell_ids:
        return
    doc.add(Heading("Generative models: invalid answers"))
    doc.add(
        Paragraph(
            f"{len(cell_ids)} cell(s) answered in free text, mapped to a label by "
            "`emobench.answers.parse_answer` (reasoning blocks stripped; synonyms and a few "
            "other languages' words accepted; negated, hedged or out-of-set answers are "
            "`invalid`). An invalid answer counts as wrong in every metric and has its own "
            "column in the confusion matrices."
        )
    )
    rates = gen.invalid_rates(ctx.predictions, cell_ids)
    wanted = set(cell_ids)
    for ds, info in ctx.infos.items():
        rows = [r for r in ctx.dataset_rows(ds) if str(r["cell_id"]) in wanted]
        if not rows:
            continue
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        doc.add(
            invalid_table(
                rates,
                rows,
                info.labels,
                ctx.varying,
                caption=f"{ds}: invalid answers per cell (pooled over folds) and the invalid "
                "rate per true class (classes head → tail)",
            )
        )
        ds_cells = [str(r["cell_id"]) for r in rows]
        top = gen.top_unparsed(ctx.predictions, ds_cells, gen.TOP_UNPARSED)
        if top:
            doc.add(
                unparsed_table(
                    top,
                    caption=f"{ds}: the {gen.TOP_UNPARSED} most frequent raw answers that did "
                    "not parse, per model (all its free-text cells and folds)",
                )
            )
        else:
            doc.add(Paragraph(f"{ds}: every free-text answer named exactly one offered label."))


def _metric_cell(d: gen.MetricDiff | None) -> tuple[str, str]:
    if d is None:
        return ("–", "–")
    ci = "[–]" if d.ci_lo is None or d.ci_hi is None else f"[{d.ci_lo:+.3f}, {d.ci_hi:+.3f}]"
    return (f"{d.a:.3f} → {d.b:.3f}", f"{d.diff:+.3f} {ci}")


def enrichment_table(
    comparisons: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], gen.EnrichmentComparison]],
    varying: Sequence[str],
    caption: str,
) -> Table:
    """One row per (none cell, enriched cell, clip subset): each metric none → enriched and
    Δ [95% CI], with the bootstrap p of ΔUAR."""
    names = [tb.metric_name(m) for m in gen.ENRICHMENT_METRICS]
    header = ["model", "setting", "enrichment", "subset", "matched clips"]
    for name in names:
        header += [f"{name} none → enriched", f"Δ{name} [95% CI]"]
    header.append("p (ΔUAR)")
    numeric = (False, False, False, False, True) + (True,) * (2 * len(names) + 1)
    keys = [k for k in varying if k != "enrichment"]
    rows = []
    for base, new, cmp in comparisons:
        cells = [
            str(base["model"]),
            tb.setting_text(base, keys),
            f"none → {new.get('enrichment')}",
            "micro-expression" if cmp.scope == "micro" else "all",
            str(cmp.n_matched),
        ]
        for metric in gen.ENRICHMENT_METRICS:
            cells += _metric_cell(cmp.get(metric))
        uar = cmp.get("uar")
        cells.append(tb.fmt_p(None if uar is None else uar.p_value))
        rows.append(tuple(cells))
    return Table(tuple(header), tuple(rows), caption=caption, numeric=numeric)


def enrichment_section(ctx: ReportContext, doc: Document) -> None:
    if not gen.has_enrichment(ctx.cells):
        return
    doc.add(Heading("MSCE enrichment: effect against no enrichment"))
    doc.add(
        Paragraph(
            "Each row compares a cell with enrichment `none` and the same model with an "
            "enrichment (`msce`, `msce-text`, `msce-dense`) at the same sampler and every "
            "other setting equal, on the clips both answered (matched by fold and clip id, "
            "pooled over folds). Δ = enriched − none; its 95% CI comes from a paired "
            f"bootstrap ({ctx.n_resamples} resamples, seed {ctx.seed}) that resamples the "
            "clips and recomputes both cells' metric. Rows marked micro-expression repeat "
            "the comparison on the clips flagged `micro`."
        )
    )
    any_pairs = False
    for ds, info in ctx.infos.items():
        sub = ctx.cells.filter(pl.col("dataset") == ds)
        comparisons = []
        for base, new in an.switch_pairs(sub, ctx.settings, "enrichment"):
            for cmp in gen.enrichment_comparison(
                ctx.predictions,
                base,
                new,
                info.labels,
                n_resamples=ctx.n_resamples,
                seed=ctx.seed,
            ):
                comparisons.append((ctx.rows[base], ctx.rows[new], cmp))
        if not comparisons:
            continue
        any_pairs = True
        if len(ctx.infos) > 1:
            doc.add(Heading(ds, 3))
        doc.add(
            enrichment_table(
                comparisons,
                ctx.varying,
                caption=f"{ds}: enrichment vs none (Δ = enriched − none on matched clips, "
                "paired clip bootstrap 95% CI)",
            )
        )
    if not any_pairs:
        doc.add(
            Paragraph(
                "No enrichment cell has a `none` cell with every other setting equal: "
                "nothing to compare."
            )
        )
        ctx.notes.append("Enrichment cells without a matching `none` cell: no MSCE table.")
