"""Metric tables of a report: class groups per dataset (the metrics' group rules),
confusion counts per (cell, fold), across-fold CIs and the look-up of the metrics table.

Plain polars / numpy (no matplotlib, no torch); see :mod:`emobench.report.analysis`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from emobench.labels import INVALID
from emobench.metrics import class_groups, fold_mean_ci, head_to_tail
from emobench.report.cells import ReportError
from emobench.report.values import Stat, opt_float
from emobench.results import Manifest

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
    manifest: Manifest | Mapping[str, Any],
    predictions: pl.DataFrame,
    *,
    rule: str,
    head: float | None = None,
    tail: float | None = None,
) -> dict[str, DatasetInfo]:
    """Build a :class:`DatasetInfo` for every dataset in the predictions.

    Labels come from the manifest (plus any label seen in the predictions but missing
    there), ordered head to tail by training count (mean over folds; ties in manifest
    order; :func:`~emobench.metrics.head_to_tail`, as the metrics table orders them).
    Groups come from those mean counts (:func:`~emobench.metrics.class_groups`, for
    display; the metrics table groups each fold by that fold's own counts).
    ``head``/``tail`` None take the rule's defaults.
    """

    man = Manifest.from_dict(manifest)
    out: dict[str, DatasetInfo] = {}
    for name in sorted(predictions.get_column("dataset").unique().drop_nulls().to_list()):
        labels = man.labels(name) or []
        sub = predictions.filter(pl.col("dataset") == name)
        seen = sorted(set(sub.get_column("label").unique().drop_nulls().to_list()) - set(labels))
        labels += [lab for lab in seen if lab != INVALID]
        mean = man.train_counts_mean(name)
        counts = {lab: mean.get(lab, 0.0) for lab in labels}
        groups, names = class_groups(counts, rule=rule, head=head, tail=tail)
        entry = man.dataset(name)
        out[name] = DatasetInfo(
            name=name,
            labels=tuple(head_to_tail(labels, counts)),
            train_counts=counts,
            groups=groups,
            group_names=names,
            fingerprint=None if entry is None else entry.fingerprint,
        )
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


# ---------------------------------------------------------------------------------------
# Metric look-ups from the long metrics table


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

    A metrics table written by this version carries the across-fold interval already (the
    stratified bootstrap of the fold mean, :func:`emobench.metrics.fold_mean_ci`, classes
    head to tail); one written before did not. This fills the gaps with the same bootstrap
    so older run folders still get the CI column. Returns how many cells were filled.
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
    # cells scored on one fold have no spread: their std is shown as none, not "± 0.000"
    single = set(
        metrics.filter(pl.col("fold").is_not_null())
        .group_by("cell_id")
        .agg(pl.col("fold").n_unique().alias("n"))
        .filter(pl.col("n") <= 1)
        .get_column("cell_id")
        .to_list()
    )
    out = MetricLookup()
    for row in agg.select(cols + extra).iter_rows(named=True):
        value = opt_float(row["value"])
        if value is None:
            continue
        key = (str(row["cell_id"]), str(row["scope"]), str(row["target"] or ""), row["metric"])
        out.stats[key] = Stat(
            value=value,
            std=None if row["cell_id"] in single else opt_float(row.get("std")),
            lo=opt_float(row.get("ci_lo")),
            hi=opt_float(row.get("ci_hi")),
        )
    if "rule" in metrics.columns:
        rules = metrics.get_column("rule").drop_nulls().unique().to_list()
        out.rule = str(rules[0]) if rules else None
    return out
