"""Report block: each scored cell's calibration (ECE) and the label prior its correction
estimated, with a warning where one class holds most of that prior.

ECE is the metrics table's ``calibration``/``ece`` row (top-label, 15 equal-width bins,
:mod:`emobench.metrics.calibration`), mean ± std over folds. The estimated prior comes from
the manifest's ``cell_info[<cell>][<fold>].prior_estimate``
(:mod:`emobench.runner.prior_hook`): the largest share over folds and its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emobench.report import tables as tb
from emobench.report.context import ReportContext
from emobench.report.document import Bullets, Document, Heading, Paragraph, Table


def calibration_block(ctx: ReportContext, doc: Document) -> None:
    """The ECE table of every cell with scores (nothing when no cell has any)."""
    ids = [str(c) for c in ctx.cells["cell_id"].to_list()]
    scored = [c for c in ids if ctx.lookup.get(c, "calibration", None, "ece") is not None]
    if not scored:
        return
    info: Mapping[str, Any] = ctx.manifest.get("cell_info") or {}
    doc.add(Heading("Calibration of the scores"))
    doc.add(
        Paragraph(
            "ECE = top-label expected calibration error of the softmax of each cell's "
            "scores after its prior correction (15 equal-width confidence bins; 0 = "
            "calibrated). Saerens EM (`em-test-prior`) assumes calibrated scores; "
            "`calibrated-em` first fits bias-corrected temperature scaling on held-out "
            'training clips (Alexandari et al., ICML 2020). "Estimated prior" is the '
            "largest class share of the label prior the correction estimated (worst fold)."
        )
    )
    rows, warnings = [], []
    for cid in scored:
        row = ctx.rows.get(cid, {})
        top, label, warn = _prior_summary(info.get(cid) or {})
        if warn:
            warnings.append(f"`{cid}`: {warn}")
        rows.append(
            (
                str(row.get("model", "")),
                tb.setting_text(row, ctx.varying),
                tb.fmt_mean_std(ctx.lookup.get(cid, "calibration", None, "ece")),
                "–" if top is None else f"{top:.2f} ({label})",
            )
        )
    doc.add(
        Table(
            ("model", "setting", "ECE", "estimated prior: largest share"),
            tuple(rows),
            caption="Calibration (ECE, mean ± std over folds) of every cell with scores",
            numeric=(False, False, True, True),
        )
    )
    if warnings:
        doc.add(Bullets(tuple(warnings)))


def _prior_summary(folds: Mapping[str, Any]) -> tuple[float | None, str, str | None]:
    """(largest share over folds, its class, a warning of that fold or None)."""
    best: tuple[float | None, str, str | None] = (None, "", None)
    for fold in folds.values():
        note = (fold or {}).get("prior_estimate") if isinstance(fold, Mapping) else None
        if not note:
            continue
        share = float(note.get("max_share", 0.0))
        if best[0] is None or share > best[0]:
            best = (share, str(note.get("max_class", "")), note.get("warning"))
    return best
