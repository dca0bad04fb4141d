"""Analysis of generative (free-text) cells and of MSCE enrichment for the report.

* :func:`generative_cells` -- the cells whose model answered in text (``raw_text`` set);
* :func:`invalid_rates` -- invalid-answer counts per cell, overall and per true class;
* :func:`top_unparsed` -- the most frequent raw answers that did not parse, per model;
* :func:`enrichment_comparison` -- an enrichment cell (``msce``, ``msce-text``,
  ``msce-dense``) against its ``none`` twin: UAR / WAR / macro-F1 of both on the same
  clips and a paired clip bootstrap of each difference, on all clips and on the
  micro-expression clips.

Plain polars / numpy (no matplotlib), like :mod:`emobench.report.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from emobench.labels import INVALID
from emobench.metrics import MetricsError, paired_bootstrap
from emobench.report.cells import is_off
from emobench.report.values import opt_float

#: How many unparsed raw answers the report lists per model.
TOP_UNPARSED = 10
#: The metrics of the enrichment comparison, in table order.
ENRICHMENT_METRICS: tuple[str, ...] = ("uar", "war", "macro_f1")


def generative_cells(predictions: pl.DataFrame) -> list[str]:
    """The cells with at least one raw text answer (generative models), in table order."""
    if "raw_text" not in predictions.columns:
        return []
    return (
        predictions.group_by("cell_id", maintain_order=True)
        .agg(pl.col("raw_text").is_not_null().any().alias("text"))
        .filter(pl.col("text"))
        .get_column("cell_id")
        .cast(pl.Utf8)
        .to_list()
    )


def has_enrichment(cells: pl.DataFrame) -> bool:
    """Whether any cell uses an enrichment other than ``none``."""

    if "enrichment" not in cells.columns:
        return False
    return any(not is_off(v) for v in cells.get_column("enrichment").to_list())


def invalid_rates(predictions: pl.DataFrame, cell_ids: Sequence[str]) -> pl.DataFrame:
    """Invalid answers of each cell, pooled over folds: one row per (cell, true class) and
    one per cell with ``label`` null (all clips). Columns: cell_id, label, n, n_invalid,
    rate (n_invalid / n)."""
    sub = predictions.filter(pl.col("cell_id").is_in(list(cell_ids)))
    inv = (pl.col("pred") == INVALID).cast(pl.Int64)
    per_class = sub.group_by("cell_id", "label").agg(
        pl.len().cast(pl.Int64).alias("n"), inv.sum().alias("n_invalid")
    )
    overall = sub.group_by("cell_id").agg(
        pl.lit(None, dtype=pl.Utf8).alias("label"),
        pl.len().cast(pl.Int64).alias("n"),
        inv.sum().alias("n_invalid"),
    )
    return (
        pl.concat([overall, per_class.select(overall.columns)])
        .with_columns((pl.col("n_invalid") / pl.col("n")).alias("rate"))
        .sort("cell_id", "label", nulls_last=False)
    )


def top_unparsed(
    predictions: pl.DataFrame, cell_ids: Sequence[str], n: int = TOP_UNPARSED
) -> dict[str, list[tuple[str | None, int]]]:
    """Per model, the ``n`` most frequent raw answers predicted ``invalid`` (over the given
    cells, every fold), as (raw text or None, count), most frequent first, ties by text."""
    sub = predictions.filter(pl.col("cell_id").is_in(list(cell_ids)) & (pl.col("pred") == INVALID))
    out: dict[str, list[tuple[str | None, int]]] = {}
    if sub.height == 0:
        return out
    counts = (
        sub.group_by("model", "raw_text")
        .agg(pl.len().alias("count"))
        .sort(["model", "count", "raw_text"], descending=[False, True, False], nulls_last=True)
    )
    for model in sorted(counts.get_column("model").unique().to_list()):
        rows = counts.filter(pl.col("model") == model).head(n)
        out[str(model)] = [(r["raw_text"], int(r["count"])) for r in rows.iter_rows(named=True)]
    return out


@dataclass(frozen=True)
class MetricDiff:
    """One metric of a baseline and an enriched cell on the same clips, with Δ = b − a."""

    metric: str
    a: float
    b: float
    diff: float
    ci_lo: float | None
    ci_hi: float | None
    p_value: float


@dataclass(frozen=True)
class EnrichmentComparison:
    """An enrichment cell against its ``none`` twin on one clip subset (scope)."""

    baseline: str
    enriched: str
    scope: str  # "all" or "micro"
    n_matched: int
    diffs: tuple[MetricDiff, ...]

    def get(self, metric: str) -> MetricDiff | None:
        """The comparison of one metric, when it could be computed."""
        return next((d for d in self.diffs if d.metric == metric), None)


def matched_clips(predictions: pl.DataFrame, baseline: str, enriched: str) -> pl.DataFrame:
    """Clips answered by both cells, matched by (fold, clip_id): fold, clip_id, label, micro,
    pred (baseline), pred_b (enriched); sorted by fold and clip."""
    cols = ["fold", "clip_id", "label", "pred"]
    a = predictions.filter(pl.col("cell_id") == baseline)
    micro = pl.col("micro") if "micro" in a.columns else pl.lit(None, dtype=pl.Boolean)
    a = a.select(*cols, micro.cast(pl.Boolean).alias("micro"))
    b = predictions.filter(pl.col("cell_id") == enriched).select(
        "fold", "clip_id", pl.col("pred").alias("pred_b")
    )
    return a.join(b, on=["fold", "clip_id"], how="inner").sort(["fold", "clip_id"])


def enrichment_comparison(
    predictions: pl.DataFrame,
    baseline: str,
    enriched: str,
    labels: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> list[EnrichmentComparison]:
    """The enriched cell against the baseline: on all matched clips and, when there are
    any, on the micro-expression clips (``micro`` true).

    Each metric's Δ = enriched − baseline on the matched clips pooled over folds; its 95%
    CI and p come from :func:`~emobench.metrics.paired_bootstrap`, which resamples the
    clips (with their true label and both predictions) and recomputes both cells' metric
    on every resample. A metric undefined on a subset is left out of it.
    """

    joined = matched_clips(predictions, baseline, enriched)
    scopes = [("all", joined)]
    micro = joined.filter(pl.col("micro").fill_null(False))
    if micro.height:
        scopes.append(("micro", micro))
    out = []
    for scope, sub in scopes:
        if sub.height == 0:
            continue
        y = sub.get_column("label").to_list()
        pa = sub.get_column("pred").to_list()
        pb = sub.get_column("pred_b").to_list()
        diffs = []
        for metric in ENRICHMENT_METRICS:
            try:
                boot = paired_bootstrap(
                    y, pa, pb, list(labels), metric=metric, n_resamples=n_resamples, seed=seed
                )
            except MetricsError:
                continue
            diffs.append(
                MetricDiff(
                    metric=metric,
                    a=float(boot["a"]),
                    b=float(boot["b"]),
                    diff=float(boot["diff"]),
                    ci_lo=opt_float(boot.get("ci_lo")),
                    ci_hi=opt_float(boot.get("ci_hi")),
                    p_value=float(boot["p_value"]),
                )
            )
        out.append(EnrichmentComparison(baseline, enriched, scope, sub.height, tuple(diffs)))
    return out
