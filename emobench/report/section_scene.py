"""Per-scene breakdown (datasets whose clips carry a ``scene``, e.g. FERV39k).

For the reference cell of each model: UAR and WAR on the clips of each scene, pooled over
folds, with the clip count, so a reader sees where in the scene taxonomy a model fails.
"""

from __future__ import annotations

import polars as pl

from emobench.metrics import overall
from emobench.report.context import ReportContext
from emobench.report.document import Document, Heading, Paragraph, Table


def scene_scores(predictions: pl.DataFrame, cell_id: str, labels: list[str]) -> list[dict]:
    """``[{"scene", "n", "uar", "war"}]`` of one cell, scenes sorted by name."""

    sub = predictions.filter((pl.col("cell_id") == cell_id) & pl.col("scene").is_not_null())
    out = []
    for scene in sorted(sub.get_column("scene").unique().to_list()):
        part = sub.filter(pl.col("scene") == scene)
        m = overall(part.get_column("label").to_list(), part.get_column("pred").to_list(), labels)
        out.append({"scene": scene, "n": part.height, "uar": m["uar"], "war": m["war"]})
    return out


def scene_section(ctx: ReportContext, doc: Document) -> None:
    """Only when some prediction has a scene."""
    preds = ctx.predictions
    if "scene" not in preds.columns or preds.get_column("scene").null_count() == preds.height:
        return
    doc.add(Heading("Per-scene breakdown"))
    doc.add(
        Paragraph(
            "UAR and WAR of each model's reference cell on the clips of each scene (pooled "
            "over folds; clips without a scene are left out)."
        )
    )
    for ds, info in ctx.infos.items():
        for ref in ctx.dataset_refs(ds):
            rows = scene_scores(preds, str(ref["cell_id"]), list(info.labels))
            if not rows:
                continue
            doc.add(
                Table(
                    header=("scene", "clips", "UAR", "WAR"),
                    rows=tuple(
                        (r["scene"], str(r["n"]), f"{r['uar']:.3f}", f"{r['war']:.3f}")
                        for r in rows
                    ),
                    caption=f"{ds}: {ref['model']} (reference cell `{ref['cell_id']}`)",
                    numeric=(False, True, True, True),
                )
            )
