"""Report tables: format metric look-ups and manifest fields as :class:`Table` blocks.

Numbers are rounded for reading (3 decimals); the full-precision values stay in
``metrics.parquet``. Each function returns ready-to-render blocks and computes nothing
beyond formatting.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from emobench.report.analysis import (
    DatasetInfo,
    MetricLookup,
    OrderComparison,
    Stat,
    describe_cell,
)
from emobench.report.document import Block, Code, Paragraph, Table

if TYPE_CHECKING:
    from emobench.results import Manifest

#: Display names of known metrics (others are shown by their raw name).
METRIC_NAMES: dict[str, str] = {
    "macro_f1": "macro-F1",
    "uar": "UAR",
    "war": "WAR",
    "accuracy": "accuracy",
    "macro_precision": "macro-P",
    "macro_recall": "macro-R",
    "weighted_f1": "weighted-F1",
    "invalid_rate": "invalid rate",
    "gap": "head−tail gap",
    "head_tail_gap": "head−tail gap",
    "collapse_rate": "collapse rate",
    "tail_collapse": "collapse rate",
    "neutral_sink": "neutral sink",
    "war_minus_uar": "WAR−UAR",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
}
#: Overall metrics shown in the overall table, in this order when present.
OVERALL_METRICS: tuple[str, ...] = (
    "macro_f1",
    "uar",
    "war",
    "macro_precision",
    "invalid_rate",
)


def metric_name(metric: str) -> str:
    """Display name of a metric."""
    return METRIC_NAMES.get(metric, metric)


def f3(x: float | None) -> str:
    """A number with 3 decimals, or an en dash when missing."""
    return "–" if x is None else f"{x:.3f}"


def fmt_mean_std(s: Stat | None) -> str:
    """``0.412 ± 0.021`` (std over folds), or the value alone when there is no spread."""
    if s is None:
        return "–"
    if s.std is None:
        return f3(s.value)
    return f"{s.value:.3f} ± {s.std:.3f}"


def fmt_ci(s: Stat | None) -> str:
    """``[0.391, 0.433]`` or an en dash."""
    if s is None or s.lo is None or s.hi is None:
        return "–"
    return f"[{s.lo:.3f}, {s.hi:.3f}]"


def _count(v: float) -> str:
    """A (mean) clip count: an integer when whole, else one decimal."""
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def fmt_p(p: float | None) -> str:
    """A p-value: 3 significant digits, ``<0.001`` below that."""
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def setting_text(row: Mapping[str, Any], varying: Sequence[str]) -> str:
    """The settings that differ between cells of this run, as one short string."""
    keys = [k for k in varying if k not in ("density", "density_unit")]
    if any(k in varying for k in ("density", "density_unit", "sampler")):
        keys = ["sampler"] + [k for k in keys if k != "sampler"]
    text = describe_cell(row, varying=keys)
    return text or "–"


def overall_table(
    rows: Sequence[Mapping[str, Any]],
    lookup: MetricLookup,
    varying: Sequence[str],
    caption: str,
) -> Table:
    """Overall metrics per cell: mean ± std over folds and the CI of macro-F1."""
    metrics = [m for m in OVERALL_METRICS if m in lookup.metrics_of("overall")]
    header = ["model", "setting", "clips", "folds"]
    numeric = [False, False, True, True]
    for m in metrics:
        header.append(metric_name(m))
        numeric.append(True)
        if m == "macro_f1":
            header.append("macro-F1 95% CI")
            numeric.append(True)
    out_rows = []
    for row in rows:
        cid = str(row["cell_id"])
        cells = [
            str(row["model"]),
            setting_text(row, varying),
            str(row["n_clips"]),
            str(row["n_folds"]),
        ]
        for m in metrics:
            s = lookup.get(cid, "overall", None, m)
            cells.append(fmt_mean_std(s))
            if m == "macro_f1":
                cells.append(fmt_ci(s))
        cells.append(f"`{cid}`")  # the id names the cell's files (predictions, caches)
        out_rows.append(tuple(cells))
    header.append("cell")
    numeric.append(False)
    return Table(tuple(header), tuple(out_rows), caption=caption, numeric=tuple(numeric))


def longtail_table(
    rows: Sequence[Mapping[str, Any]],
    lookup: MetricLookup,
    info: DatasetInfo,
    varying: Sequence[str],
    caption: str,
) -> Table:
    """Group recalls and long-tail diagnostics per cell (mean ± std over folds)."""
    groups = [g for g in info.group_names if g in set(info.groups.values())]
    lt_metrics = lookup.metrics_of("longtail")
    header = ["model", "setting"] + [f"{g} recall" for g in groups]
    header += [metric_name(m) for m in lt_metrics]
    numeric = [False, False] + [True] * (len(header) - 2)
    out_rows = []
    for row in rows:
        cid = str(row["cell_id"])
        cells = [str(row["model"]), setting_text(row, varying)]
        cells += [fmt_mean_std(lookup.get(cid, "group", g, "recall")) for g in groups]
        cells += [fmt_mean_std(_longtail_stat(lookup, cid, m)) for m in lt_metrics]
        out_rows.append(tuple(cells))
    return Table(tuple(header), tuple(out_rows), caption=caption, numeric=tuple(numeric))


def _longtail_stat(lookup: MetricLookup, cid: str, metric: str) -> Stat | None:
    """A long-tail metric whatever its target (the table stores one target per metric)."""
    for target in lookup.targets_of("longtail"):
        s = lookup.get(cid, "longtail", target, metric)
        if s is not None:
            return s
    return None


def per_class_table(
    info: DatasetInfo,
    refs: Sequence[Mapping[str, Any]],
    lookup: MetricLookup,
    caption: str,
) -> Table:
    """Per-class F1 (mean ± std over folds) of each model's reference cell, head -> tail."""
    header = ["class", "group", "train clips / fold"] + [str(r["model"]) for r in refs]
    numeric = [False, False, True] + [True] * len(refs)
    rows = []
    for lab in info.labels:
        cells = [lab, info.groups.get(lab, "–"), _count(info.train_counts.get(lab, 0))]
        cells += [fmt_mean_std(lookup.get(str(r["cell_id"]), "class", lab, "f1")) for r in refs]
        rows.append(tuple(cells))
    return Table(tuple(header), tuple(rows), caption=caption, numeric=tuple(numeric))


def order_table(
    comparisons: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], OrderComparison]],
    lookup: MetricLookup,
    varying: Sequence[str],
    caption: str,
) -> Table:
    """Macro-F1 with original vs other frame order, difference and paired tests."""
    header = (
        "model",
        "setting",
        "order",
        "macro-F1 original",
        "macro-F1 other",
        "Δ (fold mean)",
        "Δ pooled [95% CI]",
        "p (bootstrap)",
        "p (McNemar)",
        "matched clips",
    )
    numeric = (False, False, False, True, True, True, True, True, True, True)
    rows = []
    keys = [k for k in varying if k != "order"]
    for orig, other, cmp in comparisons:
        a = lookup.get(str(orig["cell_id"]), "overall", None, "macro_f1")
        b = lookup.get(str(other["cell_id"]), "overall", None, "macro_f1")
        diff = None if (a is None or b is None) else b.value - a.value
        rows.append(
            (
                str(orig["model"]),
                setting_text(orig, keys),
                f"original → {other['order']}",
                fmt_mean_std(a),
                fmt_mean_std(b),
                "–" if diff is None else f"{diff:+.3f}",
                f"{cmp.diff:+.3f} {_signed_ci(cmp.ci_lo, cmp.ci_hi)}",
                fmt_p(cmp.p_bootstrap),
                fmt_p(cmp.p_mcnemar),
                str(cmp.n_matched),
            )
        )
    return Table(header, tuple(rows), caption=caption, numeric=numeric)


#: Metrics of the switch table: (column header, scope, metric); group "" = the tail group.
SWITCH_METRICS: tuple[tuple[str, str, str], ...] = (
    ("UAR", "overall", "uar"),
    ("WAR", "overall", "war"),
    ("tail recall", "group", "recall"),
    ("head−tail gap", "longtail", "head_tail_gap"),
    ("collapse rate", "longtail", "collapse_rate"),
)


def tail_group(info: DatasetInfo) -> str:
    """The group whose recall is "tail recall": ``tail`` when present, else the last group."""
    present = set(info.groups.values())
    if "tail" in present:
        return "tail"
    groups = [g for g in info.group_names if g in present]
    return groups[-1] if groups else info.tail_group


def fmt_change(a: Stat | None, b: Stat | None) -> str:
    """``0.412 → 0.455 (+0.043)`` (fold means, Δ = b − a), en dashes where missing."""
    if a is None and b is None:
        return "–"
    diff = "–" if a is None or b is None else f"{b.value - a.value:+.3f}"
    return f"{f3(None if a is None else a.value)} → {f3(None if b is None else b.value)} ({diff})"


def switch_table(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    lookup: MetricLookup,
    info: DatasetInfo,
    switch: str,
    varying: Sequence[str],
    caption: str,
) -> Table:
    """One row per (reference cell, switched cell): "ref → new (Δ)" of UAR, WAR, tail
    recall, head−tail gap and collapse rate (fold means)."""
    tail = tail_group(info)
    names = [
        h if h != "tail recall" or tail == "tail" else f"tail recall ({tail})"
        for h, *_ in SWITCH_METRICS
    ]
    header = ("model", "setting", switch.replace("_", " "), *names)
    numeric = (False, False, False) + (True,) * len(SWITCH_METRICS)
    keys = [k for k in varying if k != switch]
    rows = []
    for ref, new in pairs:
        a_id, b_id = str(ref["cell_id"]), str(new["cell_id"])
        cells = [
            str(ref["model"]),
            setting_text(ref, keys),
            f"{ref.get(switch)} → {new.get(switch)}",
        ]
        for _, scope, metric in SWITCH_METRICS:
            if scope == "longtail":
                a, b = _longtail_stat(lookup, a_id, metric), _longtail_stat(lookup, b_id, metric)
            else:
                target = tail if scope == "group" else None
                a, b = (
                    lookup.get(a_id, scope, target, metric),
                    lookup.get(b_id, scope, target, metric),
                )
            cells.append(fmt_change(a, b))
        rows.append(tuple(cells))
    return Table(header, tuple(rows), caption=caption, numeric=numeric)


def _signed_ci(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "[–]"
    return f"[{lo:+.3f}, {hi:+.3f}]"


def correlation_table(entries: Sequence[tuple[str, Mapping[str, Any]]], caption: str) -> Table:
    """Spearman / Pearson correlation of per-class F1 with the prior, one row per model."""
    header = ("model", "classes", "Spearman ρ", "95% CI", "p", "Pearson r", "95% CI", "p")
    rows = []
    for model, corr in entries:
        rows.append(
            (
                model,
                str(corr.get("n", "–")),
                f3(_finite(corr.get("spearman"))),
                _corr_ci(corr.get("spearman_ci")),
                fmt_p(_finite(corr.get("spearman_p"))),
                f3(_finite(corr.get("pearson"))),
                _corr_ci(corr.get("pearson_ci")),
                fmt_p(_finite(corr.get("pearson_p"))),
            )
        )
    caption += " (95% CIs: Fisher z; Bonett–Wright variance for Spearman; none below 4 classes)"
    return Table(
        header,
        tuple(rows),
        caption=caption,
        numeric=(False, True, True, True, True, True, True, True),
    )


def _corr_ci(ci: Any) -> str:
    if not ci or len(ci) != 2:
        return "–"
    lo, hi = _finite(ci[0]), _finite(ci[1])
    return "–" if lo is None or hi is None else f"[{lo:+.2f}, {hi:+.2f}]"


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v and abs(v) != float("inf") else None


def skipped_table(skipped: Sequence[Mapping[str, Any]], cell_models: Mapping[str, str]) -> Table:
    """Skipped clips per cell with the most common reasons."""
    per_cell: dict[str, Counter[str]] = {}
    for item in skipped:
        cid = str(item.get("cell_id", "?"))
        per_cell.setdefault(cid, Counter())[str(item.get("reason", "unknown"))] += 1
    rows = []
    for cid in sorted(per_cell):
        reasons = per_cell[cid]
        top = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(3))
        if len(reasons) > 3:
            top += f"; {len(reasons) - 3} other reason(s)"
        rows.append((f"`{cid}`", cell_models.get(cid, "–"), str(sum(reasons.values())), top))
    return Table(
        ("cell", "model", "skipped clips", "reasons"),
        tuple(rows),
        numeric=(False, False, True, False),
    )


def dataset_table(infos: Mapping[str, DatasetInfo], manifest: Manifest) -> Table:
    """Datasets: fingerprint, clip count, labels head -> tail with their groups."""
    rows = []
    for name, info in infos.items():
        entry = manifest.dataset(name)
        n = None if entry is None else entry.n_clips
        labels = ", ".join(
            f"{lab} ({_count(info.train_counts.get(lab, 0))}, {info.groups.get(lab, '–')})"
            for lab in info.labels
        )
        rows.append(
            (name, f"`{info.fingerprint or '–'}`", str(n if n is not None else "–"), labels)
        )
    return Table(
        ("dataset", "fingerprint", "clips", "labels head → tail (training clips per fold, group)"),
        tuple(rows),
        numeric=(False, False, True, False),
    )


def settings_blocks(manifest: Manifest) -> list[Block]:
    """What a reader needs to reproduce the run: commit, versions, hardware, seeds, config."""
    blocks: list[Block] = []
    facts = [
        ("run name", manifest.run_name),
        ("created", manifest.created),
        ("emobench version", manifest.emobench_version),
        ("git commit", manifest.git_commit),
    ]
    blocks.append(
        Table(
            ("field", "value"),
            tuple((k, f"`{v}`" if v is not None else "–") for k, v in facts),
        )
    )
    versions = manifest.versions
    if versions:
        blocks.append(
            Table(
                ("package", "version"),
                tuple((str(k), str(v)) for k, v in sorted(versions.items())),
                caption="Package versions",
            )
        )
    hardware = manifest.hardware
    if hardware:
        blocks.append(
            Table(
                ("hardware", "value"),
                tuple((str(k), _short_json(v)) for k, v in hardware.items()),
                caption="Hardware",
            )
        )
    if manifest.seeds is not None:
        blocks.append(Paragraph(f"Seeds: `{_short_json(manifest.seeds)}`"))
    config = manifest.config
    blocks.append(Paragraph("Configuration as recorded in `manifest.json`:"))
    blocks.append(Code(json.dumps(config, indent=2, sort_keys=True, default=str), "json"))
    return blocks


def _short_json(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def density_caption(unit: str) -> str:
    """X-axis label for a density unit."""
    return {"fps": "input frames per second", "frames": "frames per clip"}.get(unit, unit)


__all__ = [
    "correlation_table",
    "dataset_table",
    "density_caption",
    "fmt_ci",
    "fmt_mean_std",
    "longtail_table",
    "metric_name",
    "order_table",
    "overall_table",
    "per_class_table",
    "settings_blocks",
    "skipped_table",
    "switch_table",
]
