"""Data preparation for the report: cells, class orders, pooled confusions, reference cells,
density series, order comparisons and metric look-ups.

Everything here is plain polars / numpy (no matplotlib, no torch) so it can be tested and
timed on its own. Figures and tables only format what these functions return.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.labels import INVALID
from emobench.report.values import Stat
from emobench.results import SETTING_COLUMNS

#: The settings that identify a cell.
DEFAULT_SETTING_COLUMNS: tuple[str, ...] = SETTING_COLUMNS

#: Setting values that mean "this option is off" (the reference / baseline variant).
_OFF_VALUES = {"", "none", "off", "false", "no", "0", "null", "natural", "original"}

#: Group names per grouping rule, ordered head -> tail.
GROUP_ORDERS: dict[str, tuple[str, ...]] = {
    "relative": ("head", "medium", "tail"),
    "absolute": ("many", "medium", "few"),
}


class ReportError(EmobenchError):
    """The run folder cannot be turned into a report (message names the file/field)."""


def setting_columns() -> tuple[str, ...]:
    """The settings columns, taken from :mod:`emobench.results` when it defines them."""
    try:
        from emobench.results import SETTING_COLUMNS
    except ImportError:  # pragma: no cover - results.py is part of the package
        return DEFAULT_SETTING_COLUMNS
    return tuple(SETTING_COLUMNS)


def is_off(value: Any) -> bool:
    """Whether a setting value means "off" (none / original / natural / null / False)."""
    if value is None or value is False:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in _OFF_VALUES


#: The reference ("switch off") value of each long-tail switch. A switch not listed here
#: uses :func:`is_off` alone; every switch also accepts the :func:`is_off` values (``none``,
#: null, ...) as its reference.
SWITCH_REFERENCE: dict[str, str] = {
    "prior_correction": "none",
    "rebalancing": "instance-balanced",
}


def is_reference(switch: str, value: Any) -> bool:
    """Whether ``value`` is the reference (off) value of ``switch`` (see SWITCH_REFERENCE)."""
    if is_off(value):
        return True
    ref = SWITCH_REFERENCE.get(switch)
    return ref is not None and str(value).strip().lower() == ref.lower()


_SLUG_BAD = re.compile(r"[^a-z0-9._-]+")


def slug(*parts: Any) -> str:
    """A file-name-safe, stable slug built from setting values (lower case, ``-`` joined)."""
    pieces = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, float) and part.is_integer():
            part = int(part)
        text = _SLUG_BAD.sub("-", str(part).lower()).strip("-.")
        if text:
            pieces.append(text)
    out = "_".join(pieces) or "x"
    return out[:150]


# ---------------------------------------------------------------------------------------
# Datasets: labels ordered head -> tail, groups


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's labels (ordered head -> tail by training count) and class groups."""

    name: str
    labels: tuple[str, ...]
    train_counts: dict[str, float]  # mean training clips per fold
    groups: dict[str, str]
    group_names: tuple[str, ...]
    fingerprint: str | None = None

    @property
    def tail_group(self) -> str:
        """Name of the rarest group (``tail`` or ``few``)."""
        return self.group_names[-1]

    @property
    def head_group(self) -> str:
        """Name of the most frequent group (``head`` or ``many``)."""
        return self.group_names[0]


def dataset_infos(
    manifest: Mapping[str, Any],
    predictions: pl.DataFrame,
    *,
    rule: str,
    head: float | None = None,
    tail: float | None = None,
) -> dict[str, DatasetInfo]:
    """Build a :class:`DatasetInfo` for every dataset in the predictions.

    Labels come from the manifest (plus any label seen in the predictions but missing
    there), ordered by training count (mean over folds; descending, ties in manifest
    order). Groups come from those mean counts (for display; the metrics table groups each
    fold by that fold's own counts). ``head``/``tail`` None take the rule's defaults.
    """
    from emobench.metrics import group_classes
    from emobench.report.priors import train_counts_mean

    datasets_meta = manifest.get("datasets") or {}
    out: dict[str, DatasetInfo] = {}
    for name in sorted(predictions.get_column("dataset").unique().drop_nulls().to_list()):
        meta = datasets_meta.get(name) or {}
        labels = list(meta.get("labels") or [])
        sub = predictions.filter(pl.col("dataset") == name)
        seen = sorted(set(sub.get_column("label").unique().drop_nulls().to_list()) - set(labels))
        labels += [lab for lab in seen if lab != INVALID]
        counts = train_counts_mean(manifest, name)
        counts = {lab: counts.get(lab, 0.0) for lab in labels}
        rank = {lab: i for i, lab in enumerate(labels)}
        ordered = tuple(sorted(labels, key=lambda lab: (-counts[lab], rank[lab])))
        group_order = GROUP_ORDERS.get(rule, GROUP_ORDERS["relative"])
        if sum(counts.values()) > 0:
            groups = dict(group_classes(counts, rule=rule, head=head, tail=tail))
        else:
            groups = {}
        present = {g for g in groups.values()}
        extra = tuple(sorted(present - set(group_order)))
        out[name] = DatasetInfo(
            name=name,
            labels=ordered,
            train_counts=counts,
            groups=groups,
            group_names=group_order + extra,
            fingerprint=meta.get("fingerprint"),
        )
    return out


# ---------------------------------------------------------------------------------------
# Cells


#: Row order of cell tables: model first, then sampling, order and switches.
_SORT_SETTINGS = (
    "dataset",
    "model",
    "density_unit",
    "density",
    "sampler",
    "order",
    "enrichment",
    "rebalancing",
    "prior_correction",
    "seed",
)


def cell_table(predictions: pl.DataFrame, settings: Sequence[str]) -> pl.DataFrame:
    """One row per cell: its settings, ``n_rows``, ``n_clips``, ``n_folds``, ``n_invalid``."""
    present = [c for c in settings if c in predictions.columns]
    return (
        predictions.group_by("cell_id", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in present],
            pl.len().alias("n_rows"),
            pl.col("clip_id").n_unique().alias("n_clips"),
            pl.col("fold").n_unique().alias("n_folds"),
            (pl.col("pred") == INVALID).sum().alias("n_invalid"),
        )
        .sort(
            [c for c in (*_SORT_SETTINGS, "cell_id") if c in present or c == "cell_id"],
            nulls_last=True,
        )
    )


def _density_rank(row: Mapping[str, Any]) -> tuple[int, float]:
    """Sort key making the densest setting first: all frames, then the largest density."""
    unit = row.get("density_unit")
    if unit == "all" or row.get("density") is None:
        return (0, 0.0)
    return (1, -float(row["density"]))


def _variant_rank(row: Mapping[str, Any]) -> tuple[int, ...]:
    """Prefer original order and the "off" value of every other switch."""
    return (
        0 if row.get("order") in (None, "original") else 1,
        0 if is_off(row.get("enrichment")) else 1,
        0 if is_reference("rebalancing", row.get("rebalancing")) else 1,
        0 if is_reference("prior_correction", row.get("prior_correction")) else 1,
    )


def matches(row: Mapping[str, Any], reference: Mapping[str, str]) -> bool:
    """Whether a cell's settings equal every ``reference`` value (numbers compared as such)."""
    for key, want in reference.items():
        value = row.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if str(value).lower() != str(want).lower():
            try:
                if float(value) == float(want):  # type: ignore[arg-type]
                    continue
            except (TypeError, ValueError):
                pass
            return False
    return True


def reference_cells(
    cells: pl.DataFrame, reference: Mapping[str, str] | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """The reference cell of each (dataset, model): the one compared across models.

    Default: original frame order, every switch off (enrichment, re-balancing, prior
    correction), the densest sampling, lowest seed. ``reference`` (setting -> value) narrows
    the candidates first, e.g. ``{"density": "8"}``; a model with no matching cell falls back
    to the default choice.
    """
    best: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for row in cells.iter_rows(named=True):
        mismatch = 0 if not reference or matches(row, reference) else 1
        seed = row.get("seed")
        key = (
            mismatch,
            _variant_rank(row),
            _density_rank(row),
            seed if isinstance(seed, int | float) else 0,
            str(row["cell_id"]),
        )
        k = (row["dataset"], row["model"])
        if k not in best or key < best[k][0]:
            best[k] = (key, row)
    return {k: v[1] for k, v in sorted(best.items())}


def confusion_cells(
    cells: pl.DataFrame,
    refs: Mapping[tuple[str, str], Mapping[str, Any]],
    cap: int,
) -> tuple[list[dict[str, Any]], int]:
    """Cells that get their own confusion figure, and how many candidates the cap dropped.

    For each model: the cells at its reference sampling (same sampler and density) -- the
    reference cell plus its order / enrichment / re-balancing / prior-correction variants --
    reference cells first. A run sweeping densities thus gets a handful of confusion
    figures per model, not one per density; every cell's numbers are still in the tables.
    """
    chosen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    ref_ids = {r["cell_id"] for r in refs.values()}
    for row in cells.iter_rows(named=True):
        ref = refs.get((row["dataset"], row["model"]))
        if ref is None:
            continue
        same_sampling = (
            row.get("sampler") == ref.get("sampler")
            and row.get("density_unit") == ref.get("density_unit")
            and row.get("density") == ref.get("density")
        )
        if not same_sampling:
            continue
        key = (
            0 if row["cell_id"] in ref_ids else 1,
            row["dataset"],
            row["model"],
            _variant_rank(row),
            str(row["cell_id"]),
        )
        chosen.append((key, row))
    chosen.sort(key=lambda kv: kv[0])
    kept = [row for _, row in chosen[:cap]]
    return kept, max(0, len(chosen) - cap)


def describe_cell(row: Mapping[str, Any], *, varying: Iterable[str] | None = None) -> str:
    """A short human description of a cell's settings (model omitted)."""
    keys = list(varying) if varying is not None else ["sampler", "order", "enrichment"]
    parts = []
    for key in keys:
        value = row.get(key)
        if key == "sampler":
            parts.append(str(value))
        elif key in ("density", "density_unit"):
            continue
        elif key == "order":
            parts.append(f"{value} order")
        elif key == "seed":
            parts.append(f"seed {value}")
        elif not is_off(value):
            parts.append(f"{key.replace('_', ' ')}={value}")
    return ", ".join(parts)


def varying_settings(cells: pl.DataFrame, settings: Sequence[str]) -> list[str]:
    """Settings (except dataset/model) that take more than one value in this run."""
    out = []
    for col in settings:
        if col in ("dataset", "model") or col not in cells.columns:
            continue
        if cells.get_column(col).n_unique() > 1:
            out.append(col)
    return out


# ---------------------------------------------------------------------------------------
# Confusion matrices, computed once per (cell, fold) with a single bincount per dataset


@dataclass(frozen=True)
class CellConfusion:
    """A cell's confusion counts per fold: ``counts[f]`` is ``(C, C + 1)``, invalid last."""

    folds: tuple[int, ...]
    counts: np.ndarray  # (F, C, C + 1)

    @property
    def pooled(self) -> np.ndarray:
        """Counts summed over folds (used for the pictures, not for the reported means)."""
        return self.counts.sum(axis=0)


def cell_confusions(
    predictions: pl.DataFrame, infos: Mapping[str, DatasetInfo]
) -> dict[str, CellConfusion]:
    """Confusion counts per cell and fold (rows true, columns predicted, last = invalid).

    Labels follow ``infos[dataset].labels`` (head -> tail). A prediction that names no
    label of the dataset counts as invalid, as :mod:`emobench.metrics` does.
    """
    out: dict[str, CellConfusion] = {}
    for name, info in infos.items():
        sub = predictions.filter(pl.col("dataset") == name).select(
            "cell_id", "fold", "label", "pred"
        )
        if sub.height == 0:
            continue
        c = len(info.labels)
        lab_idx = {lab: i for i, lab in enumerate(info.labels)}
        cell_ids = sub.get_column("cell_id").unique(maintain_order=True).to_list()
        cell_idx = {cid: i for i, cid in enumerate(cell_ids)}
        folds = sorted(int(f) for f in sub.get_column("fold").unique().to_list())
        fold_idx = {f: i for i, f in enumerate(folds)}
        codes = sub.select(
            pl.col("cell_id").replace_strict(cell_idx, return_dtype=pl.Int64).alias("k"),
            pl.col("fold").replace_strict(fold_idx, return_dtype=pl.Int64).alias("f"),
            pl.col("label").replace_strict(lab_idx, default=-1, return_dtype=pl.Int64).alias("t"),
            pl.col("pred").replace_strict(lab_idx, default=c, return_dtype=pl.Int64).alias("p"),
        )
        t = codes.get_column("t").to_numpy()
        if (t < 0).any():
            bad = sub.get_column("label").filter(pl.Series(t < 0)).unique().to_list()
            raise ReportError(f"predictions: dataset {name!r} has unknown true labels {bad}")
        k = codes.get_column("k").to_numpy()
        f = codes.get_column("f").to_numpy()
        p = codes.get_column("p").to_numpy()
        nk, nf = len(cell_ids), len(folds)
        flat = ((k * nf + f) * c + t) * (c + 1) + p
        counts = np.bincount(flat, minlength=nk * nf * c * (c + 1)).reshape(nk, nf, c, c + 1)
        present = counts.sum(axis=(2, 3)) > 0  # (K, F): which folds each cell has
        for cid, i in cell_idx.items():
            keep = np.flatnonzero(present[i])
            out[str(cid)] = CellConfusion(
                folds=tuple(folds[j] for j in keep), counts=counts[i, keep]
            )
    return out


def stack_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """UAR, WAR and macro-F1 of a stack of confusion matrices ``(..., C, C + 1)``.

    Same conventions as :mod:`emobench.metrics`: macro means over classes with test
    support, invalid answers wrong, zero division gives 0. Vectorised for bootstraps.
    """
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[-2]
    support = cm.sum(-1)
    tp = np.diagonal(cm[..., :c], axis1=-2, axis2=-1)
    n_pred = cm[..., :c].sum(-2)
    present = support > 0
    n_present = np.maximum(present.sum(-1), 1)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    denom = support + n_pred
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    n = support.sum(-1)
    return {
        "uar": np.where(present, recall, 0).sum(-1) / n_present,
        "macro_f1": np.where(present, f1, 0).sum(-1) / n_present,
        "war": np.divide(tp.sum(-1), n, out=np.zeros_like(n), where=n > 0),
    }


def fold_mean_ci(
    counts: np.ndarray, *, n_resamples: int, seed: int, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile CI of the across-fold mean of UAR, WAR and macro-F1.

    Stratified clip bootstrap: each fold's clips are resampled with replacement (a
    multinomial draw over its confusion cells, which has the same distribution), the
    metric is computed per fold and averaged over folds, as the reported value is.
    """
    if n_resamples < 1 or counts.size == 0:
        return {}
    rng = np.random.default_rng(seed)
    f = counts.shape[0]
    flat = counts.reshape(f, -1).astype(np.int64)
    draws = np.zeros((n_resamples, *flat.shape), dtype=np.float64)
    for j in range(f):
        n = int(flat[j].sum())
        nz = np.flatnonzero(flat[j])
        if n:
            draws[:, j, nz] = rng.multinomial(n, flat[j, nz] / n, size=n_resamples)
    values = stack_metrics(draws.reshape(n_resamples, *counts.shape))
    a = (1.0 - level) / 2.0
    out = {}
    for name, v in values.items():
        lo, hi = np.quantile(v.mean(axis=1), [a, 1.0 - a])
        out[name] = (float(lo), float(hi))
    return out


# ---------------------------------------------------------------------------------------
# Metric look-ups from the long metrics table


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


@dataclass
class MetricLookup:
    """Across-fold aggregate metrics keyed by (cell_id, scope, target, metric)."""

    stats: dict[tuple[str, str, str, str], Stat] = field(default_factory=dict)
    rule: str | None = None

    def get(self, cell_id: str, scope: str, target: str | None, metric: str) -> Stat | None:
        """The aggregate for one metric, or None when the metrics table lacks it."""
        return self.stats.get((cell_id, scope, target or "", metric))

    def value(self, cell_id: str, scope: str, target: str | None, metric: str) -> float | None:
        """Just the value (None when missing)."""
        s = self.get(cell_id, scope, target, metric)
        return None if s is None else s.value

    def metrics_of(self, scope: str) -> list[str]:
        """Metric names present for a scope, in first-seen order."""
        seen: dict[str, None] = {}
        for _, sc, _, m in self.stats:
            if sc == scope:
                seen.setdefault(m, None)
        return list(seen)

    def targets_of(self, scope: str) -> list[str]:
        """Target names present for a scope, in first-seen order."""
        seen: dict[str, None] = {}
        for _, sc, t, _ in self.stats:
            if sc == scope:
                seen.setdefault(t, None)
        return list(seen)


def fill_fold_mean_cis(
    lookup: MetricLookup,
    confusions: Mapping[str, CellConfusion],
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> int:
    """Give every cell's across-fold UAR / WAR / macro-F1 a CI when the table has none.

    The metrics table carries bootstrap CIs per fold; its across-fold mean of several folds
    has only a std. This adds the stratified bootstrap CI of the fold mean
    (:func:`fold_mean_ci`). Returns how many cells were filled.
    """
    filled = 0
    for cid, conf in confusions.items():
        need = [
            m
            for m in ("uar", "war", "macro_f1")
            if (s := lookup.get(cid, "overall", None, m)) is not None and s.lo is None
        ]
        if not need:
            continue
        cis = fold_mean_ci(conf.counts, n_resamples=n_resamples, seed=seed, level=level)
        for m in need:
            if m in cis:
                key = (cid, "overall", "", m)
                s = lookup.stats[key]
                lookup.stats[key] = Stat(s.value, s.std, cis[m][0], cis[m][1])
        filled += 1
    return filled


def metric_lookup(metrics: pl.DataFrame) -> MetricLookup:
    """Index the across-fold aggregate rows (``fold`` null) of a metrics table."""
    need = {"cell_id", "fold", "scope", "target", "metric", "value"}
    missing = need - set(metrics.columns)
    if missing:
        raise ReportError(f"metrics table lacks columns {sorted(missing)}")
    agg = metrics.filter(pl.col("fold").is_null())
    cols = ["cell_id", "scope", "target", "metric", "value"]
    extra = [c for c in ("std", "ci_lo", "ci_hi") if c in metrics.columns]
    out = MetricLookup()
    for row in agg.select(cols + extra).iter_rows(named=True):
        value = _num(row["value"])
        if value is None:
            continue
        key = (str(row["cell_id"]), str(row["scope"]), str(row["target"] or ""), row["metric"])
        out.stats[key] = Stat(
            value=value,
            std=_num(row.get("std")),
            lo=_num(row.get("ci_lo")),
            hi=_num(row.get("ci_hi")),
        )
    if "rule" in metrics.columns:
        rules = metrics.get_column("rule").drop_nulls().unique().to_list()
        out.rule = str(rules[0]) if rules else None
    return out


# ---------------------------------------------------------------------------------------
# Density sweeps


@dataclass
class Series:
    """One line of a metric-vs-density plot."""

    dataset: str
    unit: str
    model: str
    variant: dict[str, Any]
    x: list[float]
    cells: list[str]


def density_series(
    cells: pl.DataFrame, settings: Sequence[str]
) -> dict[tuple[str, str], list[Series]]:
    """Group the sweep cells into lines, per (dataset, density unit).

    A line is one model with every other setting fixed (sampler family, order, enrichment,
    re-balancing, prior correction, seed); its points are the densities. Cells sampling
    all frames (``density_unit == "all"``) have no x position and are left out.
    """
    fixed = [c for c in settings if c not in ("dataset", "model", "density", "sampler")]
    lines: dict[tuple[Any, ...], Series] = {}
    sweep = cells.filter(pl.col("density").is_not_null() & (pl.col("density_unit") != "all"))
    for row in sweep.sort("density").iter_rows(named=True):
        family = str(row.get("sampler") or "").split(":", 1)[0]
        variant = {"sampler": family, **{c: row.get(c) for c in fixed if c != "density_unit"}}
        key = (row["dataset"], row["density_unit"], row["model"], *map(str, variant.values()))
        if key not in lines:
            lines[key] = Series(
                dataset=row["dataset"],
                unit=row["density_unit"],
                model=row["model"],
                variant=variant,
                x=[],
                cells=[],
            )
        line = lines[key]
        d = float(row["density"])
        if d in line.x:  # duplicate density in one line (should not happen): keep first
            continue
        line.x.append(d)
        line.cells.append(str(row["cell_id"]))
    out: dict[tuple[str, str], list[Series]] = {}
    for line in lines.values():
        out.setdefault((line.dataset, line.unit), []).append(line)
    return out


# ---------------------------------------------------------------------------------------
# Original vs shuffled / reversed frame order


def order_pairs(cells: pl.DataFrame, settings: Sequence[str]) -> list[tuple[str, str]]:
    """(original cell, other-order cell) pairs that agree on every other setting."""
    others = [c for c in settings if c != "order" and c in cells.columns]
    originals: dict[tuple[str, ...], str] = {}
    rows = list(cells.iter_rows(named=True))
    for row in rows:
        if row.get("order") == "original":
            originals[tuple(str(row.get(c)) for c in others)] = str(row["cell_id"])
    pairs = []
    for row in rows:
        if row.get("order") in (None, "original"):
            continue
        base = originals.get(tuple(str(row.get(c)) for c in others))
        if base is not None:
            pairs.append((base, str(row["cell_id"])))
    return pairs


@dataclass(frozen=True)
class OrderComparison:
    """Original vs other-order macro-F1 of one setting, with paired tests over clips."""

    original: str
    other: str
    n_matched: int
    diff: float
    ci_lo: float | None
    ci_hi: float | None
    p_bootstrap: float
    p_mcnemar: float


def order_comparison(
    predictions: pl.DataFrame,
    original: str,
    other: str,
    labels: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> OrderComparison | None:
    """Paired bootstrap (macro-F1) and McNemar test on clips matched by (fold, clip_id).

    Returns None when no clip is matched. The bootstrap resamples the matched clips pooled
    over folds; ``diff`` is other - original on those pooled clips.
    """
    from emobench.metrics import mcnemar, paired_bootstrap

    a = predictions.filter(pl.col("cell_id") == original).select("fold", "clip_id", "label", "pred")
    b = predictions.filter(pl.col("cell_id") == other).select(
        "fold", "clip_id", pl.col("pred").alias("pred_b")
    )
    joined = a.join(b, on=["fold", "clip_id"], how="inner").sort(["fold", "clip_id"])
    if joined.height == 0:
        return None
    y = joined.get_column("label").to_numpy()
    pa = joined.get_column("pred").to_numpy()
    pb = joined.get_column("pred_b").to_numpy()
    boot = paired_bootstrap(
        y, pa, pb, list(labels), metric="macro_f1", n_resamples=n_resamples, seed=seed
    )
    mc = mcnemar(y, pa, pb)
    return OrderComparison(
        original=original,
        other=other,
        n_matched=joined.height,
        diff=float(boot["diff"]),
        ci_lo=_num(boot.get("ci_lo")),
        ci_hi=_num(boot.get("ci_hi")),
        p_bootstrap=float(boot["p_value"]),
        p_mcnemar=float(mc["p_value"]),
    )


# ---------------------------------------------------------------------------------------
# Long-tail switches: the same cell with a switch at its reference value vs another value


def switch_pairs(
    cells: pl.DataFrame, settings: Sequence[str], switch: str
) -> list[tuple[str, str]]:
    """(reference cell, switched cell) pairs that agree on every other setting.

    The reference cell has ``switch`` at its reference value (:func:`is_reference`), the
    switched cell any other value. Pairs come in the cells' row order; a switched cell with
    no reference counterpart is left out. Returns [] when ``cells`` lacks the column.
    """
    if switch not in cells.columns:
        return []
    others = [c for c in settings if c != switch and c in cells.columns]
    rows = list(cells.iter_rows(named=True))
    baselines: dict[tuple[str, ...], str] = {}
    for row in rows:
        if is_reference(switch, row.get(switch)):
            baselines.setdefault(tuple(str(row.get(c)) for c in others), str(row["cell_id"]))
    pairs = []
    for row in rows:
        if is_reference(switch, row.get(switch)):
            continue
        base = baselines.get(tuple(str(row.get(c)) for c in others))
        if base is not None:
            pairs.append((base, str(row["cell_id"])))
    return pairs
