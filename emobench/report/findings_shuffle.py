"""Finding 2 of the study: frame-order shuffling of temporal baselines vs VLMs.

For each (order-aware vision-only baseline, VLM) pair, at the densest sampling both were
shuffled at: Δ UAR (shuffled − original) of each (paired bootstrap) and the difference of
the two Δs on the clips all four cells answered (joint bootstrap, two-sided p). Observed
when the baseline drops significantly more. A VLM that cannot see frame order (it pools
its frames, :attr:`~emobench.report.roles.ModelRole.order_invariant`) gives the same
answers shuffled by construction: it is listed as *order-invariant by construction* and
left out of the verdict. The primary comparison: the specialist against the study's VLM.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from emobench.metrics import MetricsError
from emobench.metrics.multi_bootstrap import joint_metric_draws
from emobench.report import analysis as an
from emobench.report.finding_stats import bootstrap_p
from emobench.report.findings import (
    ORDER_INVARIANT,
    Estimate,
    FindingRun,
    Part,
    register_finding,
)
from emobench.report.findings_common import (
    ci,
    density_rank,
    joined,
    paired,
    primary_rank,
    reference_variant,
    sampling,
)

#: The frame order the shuffle finding compares with ``original``.
SHUFFLED = "shuffle"
#: The status of a frame-order comparison at one frame per clip.
SINGLE_FRAME = "one frame, order fixed by construction (left out of the verdict)"


def _single_frame(row: dict[str, Any]) -> bool:
    """A cell that samples one frame per clip: its order cannot be shuffled."""
    d = row.get("density")
    return row.get("density_unit") == "frames" and d is not None and float(d) <= 1


@register_finding(
    "shuffle",
    "Frame-order shuffling: temporal baselines vs VLMs",
    "Δ UAR = shuffled − original at the same sampling, for each order-aware vision-only "
    "baseline and each VLM (paired clip bootstrap); observed when the baseline's Δ minus "
    "the VLM's Δ is below 0 with Holm-adjusted p < 0.05 (a joint bootstrap over the clips "
    "all four cells answered): the baseline uses the frame order, the VLM hardly does. A "
    "VLM that pools its frames cannot see their order: it is order-invariant by "
    "construction and no evidence. Primary comparison: the vision-only specialist against "
    "the VLM.",
)
def _shuffle(run: FindingRun) -> None:
    ctx = run.ctx
    for ds, info in ctx.infos.items():
        sub = ctx.cells.filter(pl.col("dataset") == ds)
        best: dict[tuple[str, str], tuple[tuple[Any, ...], str, str]] = {}
        for orig, other in an.order_pairs(sub, ctx.settings):
            o_row = ctx.rows[orig]
            if ctx.rows[other].get("order") != SHUFFLED:
                continue
            key = (str(o_row["model"]), sampling(o_row))
            rank = reference_variant(o_row)
            if key not in best or rank < best[key][0]:
                best[key] = (rank, orig, other)
        # model -> sampling -> (original cell, shuffled cell)
        pairs: dict[str, dict[str, tuple[str, str]]] = {}
        for (model, smp), (_, orig, other) in sorted(best.items()):
            pairs.setdefault(model, {})[smp] = (orig, other)
        temporal = [m for m in pairs if run.roles[m].temporal_baseline]
        vlms = [m for m in pairs if run.roles[m].role == "vlm"]
        if not temporal or not vlms:
            what = (
                "no cells that differ only in frame order (original vs shuffle)"
                if not best
                else "no order-aware vision-only baseline with original and shuffled cells"
                if not temporal
                else "no VLM with original and shuffled cells"
            )
            run.lack(ds, what)
            continue
        for v_model in [m for m in vlms if run.roles[m].order_invariant]:
            _invariant(run, ds, info, v_model, pairs[v_model])
        for b_model in temporal:
            for v_model in [m for m in vlms if not run.roles[m].order_invariant]:
                shared = set(pairs[b_model]) & set(pairs[v_model])
                if not shared:
                    run.lack(
                        ds, f"`{b_model}` and `{v_model}` were shuffled at different samplings"
                    )
                    continue
                # the densest sampling both were shuffled at (the reference-cell convention)
                smp = max(shared, key=lambda s, m=b_model: density_rank(ctx.rows[pairs[m][s][0]]))
                if _single_frame(ctx.rows[pairs[b_model][smp][0]]):
                    run.exclude(
                        ds,
                        f"{smp}: `{b_model}` vs `{v_model}` see one frame per clip: shuffling "
                        "cannot change it",
                        SINGLE_FRAME,
                        subject=f"`{b_model}` vs `{v_model}` at {smp}, {ds}",
                    )
                    continue
                _statement(
                    run,
                    ds,
                    info,
                    smp,
                    (b_model, *pairs[b_model][smp]),
                    (v_model, *pairs[v_model][smp]),
                    len(shared),
                )


def _statement(
    run: FindingRun,
    ds: str,
    info: an.DatasetInfo,
    smp: str,
    base: tuple[str, str, str],
    vlm: tuple[str, str, str],
    n_shared: int,
) -> None:
    (b_model, b_orig, b_shuf), (v_model, v_orig, v_shuf) = base, vlm
    db = paired(run, b_orig, b_shuf, info.labels)
    dv = paired(run, v_orig, v_shuf, info.labels)
    both = joined(run.ctx.predictions, [b_orig, b_shuf, v_orig, v_shuf])
    if db is None or dv is None or both.height == 0:
        run.lack(ds, f"`{b_model}` and `{v_model}` share no clips at {smp}")
        return
    try:
        point, draws = joint_metric_draws(
            both.get_column("label").to_list(),
            [both.get_column(f"pred_{i}").to_list() for i in range(4)],
            info.labels,
            metric="uar",
            n_resamples=run.ctx.n_resamples,
            seed=run.ctx.seed,
        )
    except MetricsError:
        run.lack(ds, f"UAR undefined on the clips `{b_model}` and `{v_model}` share")
        return
    contrast = (draws[:, 1] - draws[:, 0]) - (draws[:, 3] - draws[:, 2])
    value = float((point[1] - point[0]) - (point[3] - point[2]))
    est = Estimate(value, *ci(contrast))
    run.say(
        ds,
        f"{smp}: vision-only `{b_model}` Δ UAR {db.diff.text()} vs VLM `{v_model}` Δ UAR "
        f"{dv.diff.text()}; difference of the Δs {est.text()} on {both.height} clips all four "
        "cells answered"
        + (
            f" (the densest of {n_shared} samplings both were shuffled at; the frame-order "
            "table has the others)"
            if n_shared > 1
            else ""
        ),
        est,
        -1,
        p=bootstrap_p(contrast, value),
        method="joint clip bootstrap",
        subject=f"`{b_model}` vs `{v_model}` at {smp}, {ds}",
        primary=primary_rank(
            run, ds, run.roles[v_model], run.roles[b_model], -density_rank(run.ctx.rows[b_orig])
        ),
        parts=(
            Part(b_model, smp, db.diff, "vision-only"),
            Part(v_model, smp, dv.diff, "vlm"),
        ),
    )


def _invariant(
    run: FindingRun, ds: str, info: an.DatasetInfo, model: str, by: dict[str, tuple[str, str]]
) -> None:
    """List a VLM that pools its frames, with its Δ at its densest shuffled sampling, as
    order-invariant by construction."""
    smp = max(by, key=lambda s: density_rank(run.ctx.rows[by[s][0]]))
    d = paired(run, *by[smp], info.labels)
    delta = "" if d is None else f" (Δ UAR {d.diff.text()} at {smp} on {d.n} clips)"
    run.exclude(
        ds,
        f"VLM `{model}` pools its frames: shuffled, it gives the same answers by "
        f"construction{delta}; no evidence for or against the finding",
        ORDER_INVARIANT,
        subject=f"`{model}`, {ds}",
        parts=() if d is None else (Part(model, smp, d.diff, "vlm", "order-invariant"),),
    )
