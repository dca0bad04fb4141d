"""The report's first screen: one findings table, then the figure of each finding side by
side; every other section below it, folded (HTML ``<details>``).

The table is rendered from ``findings.json``-level data (:func:`findings_record`): for
each finding its title, primary comparison, effect with 95% CI, Holm-adjusted p and
verdict (the primary comparison's status, then how many comparisons are observed).
Nothing is recomputed here. The figures are those the sections drew (the confusion grid of
the reference cells, per-class F1 vs word frequency, the density curve), moved to the top,
plus two drawn from the findings' per-model parts: Δ UAR under shuffling per model and
MSCE against ``none`` and ``msce-dense`` on micro-expression clips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emobench.report.context import ReportContext
from emobench.report.document import (
    Block,
    Document,
    Figure,
    FigureGrid,
    Heading,
    MdImage,
    Paragraph,
    Table,
)
from emobench.report.figure_effects import EffectRow, effects_figure
from emobench.report.findings import findings_record
from emobench.report.section_paper import paper_blocks
from emobench.report.verdicts import fmt_number, fmt_p

#: File name of the first-screen screenshot in the report folder (when one was taken).
SCREENSHOT = "report.png"
#: The finding each lead figure shows, by figure stem prefix.
LEAD_STEMS: tuple[tuple[str, str], ...] = (
    ("head-bias", "confusion-grid_"),
    ("head-bias", "f1-vs-prior_"),
    ("density", "density_"),
)


def _estimate(value: Any, lo: Any, hi: Any, signed: bool = True) -> str:
    if value is None:
        return "–"
    ci = (
        ""
        if lo is None or hi is None
        else f" [{fmt_number(lo, 3, signed)}, {fmt_number(hi, 3, signed)}]"
    )
    return fmt_number(value, 3, signed) + ci


def _effect(st: Mapping[str, Any]) -> str:
    """The primary comparison's effect: its Δ (or ρ) with CI, or a curve's rise and fall."""
    tests = st.get("tests") or []
    if any(t["name"] in ("rise", "fall") for t in tests):
        peak = _estimate(st.get("value"), st.get("ci_lo"), st.get("ci_hi"), signed=False)
        sides = "; ".join(
            f"{t['name']} {_estimate(t['value'], t['ci_lo'], t['ci_hi'])}" for t in tests
        )
        return f"peak UAR {peak}" + (f"; {sides}" if sides else "")
    return _estimate(st.get("value"), st.get("ci_lo"), st.get("ci_hi"))


def _p(st: Mapping[str, Any]) -> str:
    tested = [t for t in st.get("tests") or [] if t.get("p_holm") is not None]
    if not tested:
        return "–"
    if len(tested) == 1:
        return fmt_p(tested[0]["p_holm"])
    return ", ".join(f"{t['name']} {fmt_p(t['p_holm'])}" for t in tested)


def _verdict(f: Mapping[str, Any], st: Mapping[str, Any] | None) -> str:
    if st is None:
        return f["verdict"]
    c = f["counts"]
    n = c["observed"] + c["opposite"] + c["not_observed"]
    more = f", {c['opposite']} opposite" if c["opposite"] else ""
    return f"{st['status']} ({c['observed']} of {n} comparisons observed{more})"


def findings_table(record: Mapping[str, Any]) -> Table:
    """One row per finding: finding, primary comparison, effect (95% CI), Holm-adjusted p,
    verdict; a finding the run cannot measure says what it lacks."""
    rows = []
    for f in record["findings"]:
        st = next((s for s in f["statements"] if s.get("primary")), None)
        if st is None:
            rows.append((f["title"], "–", "–", "–", f["verdict"]))
            continue
        rows.append(
            (f["title"], st["subject"] or st["dataset"], _effect(st), _p(st), _verdict(f, st))
        )
    return Table(
        ("finding", "primary comparison", "effect [95% CI]", "adjusted p", "verdict"),
        tuple(rows),
        numeric=(False, False, True, True, False),
        kind="findings",
    )


def _parts(record: Mapping[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    """(dataset, part) of every statement of finding ``key``, each part once."""
    out: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    for f in record["findings"]:
        if f["key"] != key:
            continue
        for st in f["statements"]:
            for q in st.get("parts") or []:
                if q.get("value") is not None:
                    out.setdefault((st["dataset"], q["model"], q["label"]), (st["dataset"], q))
    return list(out.values())


def _effect_figures(ctx: ReportContext, record: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """The shuffle and MSCE figures (queued on the context), drawn from the parts."""
    out = []
    many = len(ctx.infos) > 1
    shuffle = _parts(record, "shuffle")
    if shuffle:
        rows = [
            EffectRow(
                (f"{ds}: " if many else "") + f"{q['model']} ({q['label']})",
                q["value"],
                q["ci_lo"],
                q["ci_hi"],
                "vision-only" if q["role"] == "vision-only" else "VLM",
                hollow=q["mark"] == "order-invariant",
            )
            for ds, q in sorted(shuffle, key=lambda x: (x[0], x[1]["role"] != "vision-only"))
        ]
        written = ctx.submit(
            effects_figure,
            rows,
            "Δ UAR, shuffled − original (95% CI)",
            "Frame-order shuffling: Δ UAR per model",
            "order-invariant by construction",
            ctx.fig_dir,
            ctx.stem("shuffle-delta"),
        )
        out.append(
            (
                "shuffle",
                ctx.figure(
                    written,
                    "Δ UAR under frame shuffling per model with its 95% CI (paired clip "
                    "bootstrap): vision-only baselines vs VLMs; hollow: the model pools its "
                    "frames, so shuffling cannot change it.",
                ),
            )
        )
    msce = _parts(record, "msce")
    if msce:
        rows = [
            EffectRow(
                (f"{ds}: " if many else "") + q["model"],
                q["value"],
                q["ci_lo"],
                q["ci_hi"],
                q["label"],
            )
            for ds, q in sorted(msce, key=lambda x: (x[0], x[1]["model"], x[1]["label"]))
        ]
        written = ctx.submit(
            effects_figure,
            rows,
            "Δ UAR on micro-expression clips (95% CI)",
            "MSCE on micro-expression clips",
            "",
            ctx.fig_dir,
            ctx.stem("msce-delta"),
        )
        out.append(
            (
                "msce",
                ctx.figure(
                    written,
                    "Δ UAR of MSCE against `none` (keyframes alone) and against `msce-dense` "
                    "(the in-between frames themselves) on micro-expression clips, 95% CI.",
                ),
            )
        )
    return out


def _stem(fig: Figure) -> str:
    return Path(fig.png).stem


def _is_lead(fig: Figure) -> str | None:
    """The finding a section's figure shows at the top, or None."""
    stem = _stem(fig)
    for key, prefix in LEAD_STEMS:
        if stem.startswith(prefix):
            if prefix == "f1-vs-prior_" and "word" not in stem:
                return None
            return key
    return None


def compose(ctx: ReportContext, body: Document, *, screenshot: bool = False) -> Document:
    """The report: findings table, lead figures side by side, then ``body``'s sections
    folded; ``screenshot``: the summary links the first-screen screenshot."""

    record = findings_record(ctx.findings)
    doc = Document(body.title)
    doc.add(
        findings_table(record),
        Paragraph(
            "Effect: the primary comparison's Δ UAR (or ρ, or a density curve's rise to its "
            "peak and fall after it) with its 95% CI; adjusted p: Holm within the finding. "
            'Every comparison, with its numbers, is under "Findings in detail".'
        ),
    )
    if screenshot:
        doc.add(MdImage(SCREENSHOT, "First screen of report.html (1280 × 800, headless Chromium)"))
    order = [s.key for s in ctx.findings] if ctx.findings else []
    lead: list[tuple[str, Figure]] = []
    rest: list[Block] = []
    for block in body.blocks:
        key = _is_lead(block) if isinstance(block, Figure) else None
        if key is not None:
            lead.append((key, block))
        else:
            rest.append(block)
    lead += _effect_figures(ctx, record)
    titles = {f["key"]: f"{i}. {f['title']}" for i, f in enumerate(record["findings"], 1)}
    lead.sort(key=lambda kf: order.index(kf[0]) if kf[0] in order else len(order))
    if lead:
        doc.add(
            FigureGrid(
                tuple(f for _, f in lead),
                tuple(titles.get(k, k) for k, _ in lead),
            )
        )

    doc.add(*paper_blocks(ctx))
    for block in rest:
        if isinstance(block, Heading) and block.level == 2:
            block = Heading(block.text, 2, collapse=True)
        doc.add(block)
    return doc


def lead_figure_names(blocks: Sequence[Block]) -> list[str]:
    """The file stems of the figures at the top of a composed report."""
    return [_stem(f) for b in blocks if isinstance(b, FigureGrid) for f in b.figures]


__all__ = ["SCREENSHOT", "compose", "findings_table", "lead_figure_names"]
