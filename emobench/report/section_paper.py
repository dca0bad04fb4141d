"""For ``paper-*`` runs: the study's published numbers beside the run's own, with the
difference (run − study).

The study (Agarwal et al., ECCV 2026) publishes macro-F1 per model and dataset with the
original and the shuffled frame order (its Table 1), Qwen2.5-VL's macro-F1 without and
with MSCE, and a macro-F1 vs FPS curve drawn as a figure (MAFW, Qwen2.5-VL), whose values
here are read off the figure (about ±0.01). A study model is matched to the run's models
by its name (:data:`MATCH`, against the display name and the adapter); the run's numbers
are fold means of macro-F1 from the metrics table, nothing is recomputed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emobench.report import analysis as an
from emobench.report.context import ReportContext
from emobench.report.document import Block, Heading, Paragraph, Table

#: Study macro-F1 (original order, shuffled) per model and dataset.
STUDY_F1: dict[str, dict[str, tuple[float, float]]] = {
    "MAE-DFER": {"mafw": (0.3602, 0.3041), "dfew": (0.5645, 0.4802)},
    "HiCMAE": {"mafw": (0.3993, 0.3345), "dfew": (0.5725, 0.4797)},
    "Qwen2.5-VL": {"mafw": (0.2449, 0.2506), "dfew": (0.4552, 0.4534)},
    "Qwen3-VL": {"mafw": (0.2738, 0.2615), "dfew": (0.5511, 0.5538)},
    "InternVL-3.0": {"mafw": (0.2445, 0.2326), "dfew": (0.5044, 0.4985)},
    "LLaVA-NeXT-Video": {"mafw": (0.1438, 0.1382), "dfew": (0.2969, 0.2712)},
    "Gemini2.5-Flash": {"mafw": (0.3758, 0.3626), "dfew": (0.6008, 0.5778)},
}
#: Study macro-F1 of Qwen2.5-VL: keyframes alone, keyframes + MSCE.
STUDY_MSCE: dict[str, tuple[float, float]] = {"mafw": (0.2449, 0.2731), "dfew": (0.4552, 0.4820)}
#: Study macro-F1 vs input FPS (Qwen2.5-VL, MAFW), read off the figure.
STUDY_FPS: dict[str, dict[float, float]] = {"mafw": {1.0: 0.22, 5.0: 0.28, 25.0: 0.24}}
#: How a study model is recognised in a run (lower-case display name or adapter).
MATCH: dict[str, str] = {
    "MAE-DFER": r"mae-?dfer",
    "HiCMAE": r"hicmae",
    "Qwen2.5-VL": r"qwen2\.?5-?vl",
    "Qwen3-VL": r"qwen3-?vl",
    "InternVL-3.0": r"internvl-?3",
    "LLaVA-NeXT-Video": r"llava-?next-?video",
    "Gemini2.5-Flash": r"gemini-?2\.?5-?flash",
}


def is_paper_run(ctx: ReportContext) -> bool:
    """A run of a ``paper-*`` preset (by its run name or its config's preset)."""
    config = ctx.manifest.config or {}
    names = (ctx.manifest.run_name, config.get("preset"), config.get("name"))
    return any(str(n or "").startswith("paper-") for n in names)


def _adapters(ctx: ReportContext) -> dict[str, str]:
    """Display name -> adapter, from the run config's models."""
    models = (ctx.manifest.config or {}).get("models") or []
    out = {}
    for m in models if isinstance(models, list) else ():
        if isinstance(m, Mapping) and m.get("adapter"):
            out[str(m.get("name") or m["adapter"])] = str(m["adapter"])
    return out


def _study_models(ctx: ReportContext) -> dict[str, list[str]]:
    """Study model -> the run's models that match it."""
    adapters = _adapters(ctx)
    out: dict[str, list[str]] = {}
    for model in sorted(ctx.cells.get_column("model").unique().to_list()):
        text = f"{model} {adapters.get(model, '')}".lower()
        for study, pattern in MATCH.items():
            if re.search(pattern, text):
                out.setdefault(study, []).append(model)
    return out


def _study_dataset(ds: str) -> str | None:
    return next((k for k in ("mafw", "dfew") if k in ds.lower()), None)


def _f1(ctx: ReportContext, row: Mapping[str, Any] | None) -> float | None:
    if row is None:
        return None
    s = ctx.lookup.get(str(row["cell_id"]), "overall", None, "macro_f1")
    return None if s is None else s.value


def _twin(ctx: ReportContext, row: Mapping[str, Any], **changes: Any) -> dict[str, Any] | None:
    """The cell of the same model and dataset with ``changes`` and every other setting
    equal (``enrichment=None``: any enrichment that is off)."""
    for r in ctx.rows.values():
        if r["model"] != row["model"] or r["dataset"] != row["dataset"]:
            continue
        same = all(
            (
                an.is_off(r.get(k))
                if k in changes and changes[k] is None
                else r.get(k) == changes[k]
                if k in changes
                else r.get(k) == row.get(k)
            )
            for k in (*ctx.settings, *changes)
        )
        if same:
            return r
    return None


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _diff(run: float | None, study: float) -> str:
    return "–" if run is None else f"{run - study:+.3f}"


def paper_blocks(ctx: ReportContext) -> list[Block]:
    """The comparison tables, or nothing for a run of another preset."""
    if not is_paper_run(ctx):
        return []
    matched = _study_models(ctx)
    order_rows, msce_rows, fps_rows = [], [], []
    for ds in ctx.infos:
        key = _study_dataset(ds)
        if key is None:
            continue
        for study, models in matched.items():
            for model in models:
                ref = ctx.refs.get((ds, model))
                if ref is None:
                    continue
                orig, shuf = STUDY_F1[study][key]
                r_orig = _f1(ctx, ref)
                r_shuf = _f1(ctx, _twin(ctx, ref, order="shuffle"))
                order_rows.append(
                    (
                        f"{study} (`{model}`)",
                        ds,
                        f"{orig:.3f} → {shuf:.3f}",
                        f"{_num(r_orig)} → {_num(r_shuf)}",
                        f"{_diff(r_orig, orig)} / {_diff(r_shuf, shuf)}",
                    )
                )
                if study != "Qwen2.5-VL":
                    continue
                none, msce = STUDY_MSCE[key]
                base = _twin(ctx, ref, enrichment=None)
                enriched = _twin(ctx, ref, enrichment="msce")
                if enriched is not None:
                    r_none, r_msce = _f1(ctx, base), _f1(ctx, enriched)
                    msce_rows.append(
                        (
                            f"{study} (`{model}`)",
                            ds,
                            f"{none:.3f} → {msce:.3f}",
                            f"{_num(r_none)} → {_num(r_msce)}",
                            f"{_diff(r_none, none)} / {_diff(r_msce, msce)}",
                        )
                    )
                for fps, value in STUDY_FPS.get(key, {}).items():
                    cell = next(
                        (
                            r
                            for r in ctx.dataset_rows(ds)
                            if r["model"] == model
                            and r.get("density_unit") == "fps"
                            and r.get("density") == fps
                            and r.get("order") in (None, "original")
                            and an.is_off(r.get("enrichment"))
                        ),
                        None,
                    )
                    r_f1 = _f1(ctx, cell)
                    fps_rows.append(
                        (
                            f"{study} (`{model}`)",
                            ds,
                            f"{fps:g}",
                            f"~{value:.2f}",
                            _num(r_f1),
                            _diff(r_f1, value),
                        )
                    )
    blocks: list[Block] = [
        Heading("The study's numbers beside this run's"),
        Paragraph(
            "Macro-F1 published by the study (Agarwal et al., ECCV 2026) and this run's fold "
            "mean, difference = run − study; a study model is matched to this run's models by "
            "name. The FPS values are read off the study's figure (about ±0.01)."
        ),
    ]
    header5 = ("model", "dataset", "study", "this run", "difference")
    if order_rows:
        blocks.append(
            Table(header5, tuple(order_rows), caption="Original → shuffled frame order (Table 1)")
        )
    if msce_rows:
        blocks.append(Table(header5, tuple(msce_rows), caption="Keyframes alone → with MSCE"))
    if fps_rows:
        blocks.append(
            Table(
                ("model", "dataset", "FPS", "study", "this run", "difference"),
                tuple(fps_rows),
                caption="Macro-F1 vs input FPS",
                numeric=(False, False, True, True, True, True),
            )
        )
    if len(blocks) == 2:
        blocks.append(Paragraph("No model or dataset of this run matches one of the study's."))
    return blocks
