"""Helpers shared by the study's findings (:mod:`emobench.report.findings_study`): paired
comparisons of two cells, the clips several cells answered, the reference variant of a
model, how a cell samples its frames, and the rank of a finding's primary comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from emobench.metrics import MetricsError, paired_bootstrap
from emobench.metrics.multi_bootstrap import percentile_ci
from emobench.report import analysis as an
from emobench.report import generative as gen
from emobench.report.findings import Estimate, FindingRun
from emobench.report.roles import ModelRole, specialist_rank, vlm_rank

#: How a paired Δ is tested (the method of its :class:`~emobench.report.verdicts.Test`).
PAIRED = "paired clip bootstrap"


class Paired(NamedTuple):
    """metric(base), metric(new), Δ = new − base [95% CI], matched clips, two-sided p."""

    base: Estimate
    new: Estimate
    diff: Estimate
    n: int
    p: float


def ci(values: np.ndarray) -> tuple[float | None, float | None]:
    """Percentile 95% interval of the finite ``values`` ((None, None) without any)."""

    out = percentile_ci(values)
    return (None, None) if out is None else out


def paired(
    run: FindingRun,
    base: str,
    new: str,
    labels: Sequence[str],
    *,
    metric: str = "uar",
    micro_only: bool = False,
    groups: Mapping[str, str] | None = None,
) -> Paired | None:
    """``metric`` of both cells and their Δ on the clips both answered (pooled over
    folds, :func:`~emobench.metrics.paired_bootstrap`); None without clips or when the
    metric is undefined there."""

    joined = gen.matched_clips(run.ctx.predictions, base, new)
    if micro_only:
        joined = joined.filter(pl.col("micro").fill_null(False))
    if joined.height == 0:
        return None
    try:
        boot = paired_bootstrap(
            joined.get_column("label").to_list(),
            joined.get_column("pred").to_list(),
            joined.get_column("pred_b").to_list(),
            list(labels),
            metric=metric,
            n_resamples=run.ctx.n_resamples,
            seed=run.ctx.seed,
            groups=groups,
        )
    except MetricsError:
        return None
    diff = Estimate(float(boot["diff"]), boot.get("ci_lo"), boot.get("ci_hi"))
    return Paired(
        Estimate(float(boot["a"])),
        Estimate(float(boot["b"])),
        diff,
        joined.height,
        float(boot["p_value"]),
    )


def joined(predictions: pl.DataFrame, cells: Sequence[str]) -> pl.DataFrame:
    """The clips every cell answered (by fold and clip id): label and ``pred_<i>``."""
    out: pl.DataFrame | None = None
    for i, cid in enumerate(cells):
        part = predictions.filter(pl.col("cell_id") == cid).select(
            "fold", "clip_id", "label", pl.col("pred").alias(f"pred_{i}")
        )
        out = part if out is None else out.join(part.drop("label"), on=["fold", "clip_id"])
    assert out is not None
    return out.sort("fold", "clip_id")


def reference_variant(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key preferring every long-tail switch and the enrichment off, then low seeds."""
    seed = row.get("seed")
    return (
        not an.is_off(row.get("enrichment")),
        not an.is_reference("rebalancing", row.get("rebalancing")),
        not an.is_reference("prior_correction", row.get("prior_correction")),
        seed if isinstance(seed, int | float) else 0,
        str(row["cell_id"]),
    )


def sampling(row: Mapping[str, Any]) -> str:
    """How a cell samples its frames, for a statement (``uniform:8``)."""
    return str(row.get("sampler") or f"{row.get('density')} {row.get('density_unit')}")


def density_rank(row: Mapping[str, Any]) -> float:
    """How dense a cell's sampling is: its density, all frames densest of all."""
    d = row.get("density")
    return float("inf") if row.get("density_unit") == "all" or d is None else float(d)


def num(x: float) -> str:
    """A density for reading: ``8``, ``2.5``."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def unit_name(unit: str) -> str:
    """A density unit for reading: ``frames``, ``FPS``."""
    return {"fps": "FPS"}.get(unit, unit)


def primary_rank(
    run: FindingRun,
    dataset: str,
    vlm: ModelRole,
    specialist: ModelRole | None = None,
    *rest: Any,
) -> tuple[Any, ...]:
    """Rank of a comparison as the finding's primary one (lower first): the run's first
    dataset, the study's VLM (sees frame order, zero-shot), the study's specialist
    (trained, order-aware vision-only), then ``rest`` (reference variants first)."""
    datasets = list(run.ctx.infos)
    pos = datasets.index(dataset) if dataset in datasets else len(datasets)
    spec = specialist_rank(specialist) if specialist is not None else (True, True, "")
    return (pos, vlm_rank(vlm), spec, *rest)
