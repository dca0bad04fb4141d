"""The study's four findings, registered for the report's opening section
(:mod:`emobench.report.findings`).

Each finding is computed from the run's own tables (predictions, metrics, manifest); its
cells are picked by their settings and by the role of their model
(:mod:`emobench.report.roles`: VLM or vision-only, zero-shot or trained, order-aware or
not), never by a model's name:

1. **Head bias** -- for each zero-shot VLM (reference cell, no prior correction): Spearman
   ρ of per-class F1 with the training class frequency and with the English frequency of
   the class's emotion words (95% CI: stratified clip bootstrap of the fold-mean F1), and
   its head−tail recall gap and WAR−UAR against each vision-only baseline (paired clip
   bootstrap of the difference).
2. **Shuffle sensitivity** -- for each (order-aware vision-only baseline, VLM) pair, at
   the densest sampling both were shuffled at: Δ UAR (shuffled − original) of each
   (paired bootstrap) and the difference of the two Δs on the clips all four cells
   answered (joint bootstrap). Observed when the baseline drops significantly more.
3. **Metric vs density** -- for each model's line of densities (original order, switches
   off): UAR at the sparsest and densest setting, the gain with its paired CI, the peak,
   the smallest density reaching 95% of the peak and the slope per doubling.
4. **MSCE on micro-expression clips** -- Δ UAR (msce − none) and (msce − msce-dense) on the
   clips flagged ``micro``, paired bootstrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from emobench.report import analysis as an
from emobench.report import generative as gen
from emobench.report.findings import Estimate, FindingRun, fmt_number, register_finding

#: The class priors of finding 1 (registered names, :mod:`emobench.report.priors`).
FREQUENCY_PRIORS: tuple[str, ...] = ("train_freq", "web_word_freq")
#: The frame order the shuffle finding compares with ``original``.
SHUFFLED = "shuffle"
#: Share of a line's peak UAR that counts as saturated (finding 3).
SATURATION = 0.95


# ---------------------------------------------------------------------------------------
# shared helpers


def _ci(values: np.ndarray) -> tuple[float | None, float | None]:
    from emobench.metrics.multi_bootstrap import percentile_ci

    ci = percentile_ci(values)
    return (None, None) if ci is None else ci


def _paired(
    run: FindingRun,
    base: str,
    new: str,
    labels: Sequence[str],
    *,
    metric: str = "uar",
    micro_only: bool = False,
    groups: Mapping[str, str] | None = None,
) -> tuple[Estimate, Estimate, Estimate, int] | None:
    """metric(base), metric(new) and Δ = new − base [95% CI] on the clips both answered
    (pooled over folds, :func:`~emobench.metrics.paired_bootstrap`); None without clips or
    when the metric is undefined there."""
    from emobench.metrics import MetricsError, paired_bootstrap

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
    return Estimate(float(boot["a"])), Estimate(float(boot["b"])), diff, joined.height


def _reference_variant(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key preferring every long-tail switch and the enrichment off, then low seeds."""
    seed = row.get("seed")
    return (
        not an.is_off(row.get("enrichment")),
        not an.is_reference("rebalancing", row.get("rebalancing")),
        not an.is_reference("prior_correction", row.get("prior_correction")),
        seed if isinstance(seed, int | float) else 0,
        str(row["cell_id"]),
    )


def _sampling(row: Mapping[str, Any]) -> str:
    """How a cell samples its frames, for a statement (``uniform:8``)."""
    return str(row.get("sampler") or f"{row.get('density')} {row.get('density_unit')}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ---------------------------------------------------------------------------------------
# 1. head bias


@register_finding(
    "head-bias",
    "Head bias and its correlation with class and word frequency",
    "Zero-shot VLM cells (reference cell, no prior correction): per-class F1 against the "
    "training class frequency and the English frequency of the class's emotion words "
    "(observed: Spearman ρ > 0 with its 95% CI above 0; CI from a stratified clip "
    "bootstrap of the fold-mean F1), and the VLM's head−tail recall gap against each "
    "vision-only baseline on the same clips (observed: the VLM's gap larger, Δ CI above "
    "0; WAR−UAR alongside).",
)
def _head_bias(run: FindingRun) -> None:
    from emobench.report.priors import get_prior

    ctx = run.ctx
    for ds, info in ctx.infos.items():
        refs = ctx.dataset_refs(ds)
        vlms = [
            r
            for r in refs
            if run.role(r).zero_shot_vlm
            and an.is_reference("prior_correction", r.get("prior_correction"))
        ]
        bases = [r for r in refs if run.role(r).role == "vision-only"]
        if not vlms:
            run.lack(ds, "no zero-shot VLM cell without prior correction")
            continue
        priors = {}
        for name in FREQUENCY_PRIORS:
            spec = get_prior(name)
            values = spec.fn(ctx.manifest, ds, info.labels)
            if values and any(v > 0 for v in values.values()):
                priors[name] = (spec.axis_label, values)
            else:
                run.lack(ds, f"prior `{name}` ({spec.axis_label}) is unavailable")
        for vlm in vlms:
            model = str(vlm["model"])
            for axis, prior in priors.values():
                rho = _rank_correlation(run, info, str(vlm["cell_id"]), prior)
                if isinstance(rho, str):
                    run.lack(ds, f"`{model}`: ρ of per-class F1 vs {axis} {rho}")
                    continue
                est, n = rho
                others = []
                for base in bases:  # the same correlation for each vision-only baseline
                    b = _rank_correlation(run, info, str(base["cell_id"]), prior)
                    text = b if isinstance(b, str) else f"= {b[0].text(digits=2)}"
                    others.append(f"vision-only `{base['model']}` ρ {text}")
                run.say(
                    ds,
                    f"`{model}`: per-class F1 vs {axis}: Spearman ρ = {est.text(digits=2)} "
                    f"over {n} classes" + (f" ({'; '.join(others)})" if others else ""),
                    est,
                    +1,
                )
            if not info.groups:
                run.lack(ds, "no training counts in the manifest: no head and tail classes")
                continue
            _gap_statements(run, ds, info, vlm, bases)


def _rank_correlation(
    run: FindingRun, info: an.DatasetInfo, cid: str, prior: Mapping[str, float]
) -> tuple[Estimate, int] | str:
    """Spearman ρ of a cell's per-class F1 (fold means, as in the per-class table) with
    ``prior``, its 95% CI from the stratified clip bootstrap of those F1s, and the number
    of classes; or why there is none. Resampling noise in the F1s reorders close classes,
    which pulls resampled ρ toward 0: the percentile CI leans toward 0, so "observed"
    (CI above 0) errs on the safe side."""
    from emobench.metrics import prior_correlation
    from emobench.metrics.multi_bootstrap import class_f1_draws, rank_correlation_draws

    ctx = run.ctx
    conf = ctx.confusions.get(cid)
    if conf is None:
        return "undefined (no predictions)"
    f1 = {
        lab: v
        for lab in info.labels
        if (v := ctx.lookup.value(cid, "class", lab, "f1")) is not None
    }
    corr = prior_correlation(f1, prior)
    rho = corr.get("spearman")
    if rho is None:
        n = corr.get("n", 0)
        return f"undefined (a constant F1 or prior, or fewer than 3 classes: {n})"
    labs = [p[0] for p in corr["points"]]
    idx = [info.labels.index(lab) for lab in labs]
    draws = class_f1_draws(conf.counts, n_resamples=ctx.n_resamples, seed=ctx.seed)
    lo, hi = _ci(rank_correlation_draws(draws[:, idx], [prior[lab] for lab in labs]))
    return Estimate(float(rho), lo, hi), len(labs)


def _gap_statements(
    run: FindingRun,
    ds: str,
    info: an.DatasetInfo,
    vlm: Mapping[str, Any],
    bases: Sequence[Mapping[str, Any]],
) -> None:
    """The VLM's head−tail recall gap and WAR−UAR, against each vision-only baseline
    (paired on the clips both answered), or on its own when the run has none."""
    from emobench.metrics import bootstrap_ci, longtail

    ctx = run.ctx
    cid, model = str(vlm["cell_id"]), str(vlm["model"])
    if not bases:
        sub = ctx.predictions.filter(pl.col("cell_id") == cid)
        y, p = sub.get_column("label").to_list(), sub.get_column("pred").to_list()
        point = longtail(y, p, list(info.labels), info.groups)
        cis = bootstrap_ci(
            y,
            p,
            list(info.labels),
            info.groups,
            n_resamples=ctx.n_resamples,
            seed=ctx.seed,
            metrics=("head_tail_gap", "war_minus_uar"),
        )
        if "head_tail_gap" not in point:
            run.lack(ds, f"`{model}`: no head or no tail clips to compare")
            return
        gap = Estimate(point["head_tail_gap"], *cis.get("head_tail_gap", (None, None)))
        wu = Estimate(point["war_minus_uar"], *cis.get("war_minus_uar", (None, None)))
        run.say(
            ds,
            f"`{model}`: head−tail recall gap {gap.text()}, WAR−UAR {wu.text()} (clips pooled "
            "over folds; no vision-only baseline in this run to compare with)",
            gap,
            +1,
        )
        run.lack(ds, "no vision-only baseline to compare the VLM's head bias with")
        return
    for base in bases:
        bname = str(base["model"])
        gap = _paired(
            run, str(base["cell_id"]), cid, info.labels, metric="head_tail_gap", groups=info.groups
        )
        wu = _paired(
            run, str(base["cell_id"]), cid, info.labels, metric="war_minus_uar", groups=info.groups
        )
        if gap is None or wu is None:
            run.lack(ds, f"`{model}` and `{bname}` share no clips with head and tail classes")
            continue
        g_base, g_vlm, d_gap, n = gap
        w_base, w_vlm, d_wu, _ = wu
        run.say(
            ds,
            f"`{model}` vs vision-only `{bname}` on {n} shared clips: head−tail recall gap "
            f"{fmt_number(g_vlm.value)} vs {fmt_number(g_base.value)}, Δ = {d_gap.text()}; WAR−UAR "
            f"{fmt_number(w_vlm.value)} vs {fmt_number(w_base.value)}, Δ = {d_wu.text()}",
            d_gap,
            +1,
        )


# ---------------------------------------------------------------------------------------
# 2. shuffle sensitivity


@register_finding(
    "shuffle",
    "Frame-order shuffling: temporal baselines vs VLMs",
    "Δ UAR = shuffled − original at the same sampling, for each order-aware vision-only "
    "baseline and each VLM (paired clip bootstrap); observed when the baseline's Δ minus "
    "the VLM's Δ has its 95% CI below 0 (a joint bootstrap over the clips all four cells "
    "answered): the baseline uses the frame order, the VLM hardly does.",
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
            key = (str(o_row["model"]), _sampling(o_row))
            rank = _reference_variant(o_row)
            if key not in best or rank < best[key][0]:
                best[key] = (rank, orig, other)
        # model -> sampling -> (original cell, shuffled cell)
        pairs: dict[str, dict[str, tuple[str, str]]] = {}
        for (model, sampling), (_, orig, other) in sorted(best.items()):
            pairs.setdefault(model, {})[sampling] = (orig, other)
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
        for b_model in temporal:
            for v_model in vlms:
                shared = set(pairs[b_model]) & set(pairs[v_model])
                if not shared:
                    run.lack(
                        ds, f"`{b_model}` and `{v_model}` were shuffled at different samplings"
                    )
                    continue
                # the densest sampling both were shuffled at (the reference-cell convention)
                sampling = max(
                    shared, key=lambda s, m=b_model: _density_rank(ctx.rows[pairs[m][s][0]])
                )
                _shuffle_statement(
                    run,
                    ds,
                    info,
                    sampling,
                    (b_model, *pairs[b_model][sampling]),
                    (v_model, *pairs[v_model][sampling]),
                    len(shared),
                )


def _density_rank(row: Mapping[str, Any]) -> float:
    """How dense a cell's sampling is: its density, all frames densest of all."""
    d = row.get("density")
    return float("inf") if row.get("density_unit") == "all" or d is None else float(d)


def _shuffle_statement(
    run: FindingRun,
    ds: str,
    info: an.DatasetInfo,
    sampling: str,
    base: tuple[str, str, str],
    vlm: tuple[str, str, str],
    n_shared: int,
) -> None:
    from emobench.metrics import MetricsError
    from emobench.metrics.multi_bootstrap import joint_metric_draws

    (b_model, b_orig, b_shuf), (v_model, v_orig, v_shuf) = base, vlm
    db = _paired(run, b_orig, b_shuf, info.labels)
    dv = _paired(run, v_orig, v_shuf, info.labels)
    joined = _joined(run.ctx.predictions, [b_orig, b_shuf, v_orig, v_shuf])
    if db is None or dv is None or joined.height == 0:
        run.lack(ds, f"`{b_model}` and `{v_model}` share no clips at {sampling}")
        return
    try:
        point, draws = joint_metric_draws(
            joined.get_column("label").to_list(),
            [joined.get_column(f"pred_{i}").to_list() for i in range(4)],
            info.labels,
            metric="uar",
            n_resamples=run.ctx.n_resamples,
            seed=run.ctx.seed,
        )
    except MetricsError:
        run.lack(ds, f"UAR undefined on the clips `{b_model}` and `{v_model}` share")
        return
    contrast = (draws[:, 1] - draws[:, 0]) - (draws[:, 3] - draws[:, 2])
    est = Estimate(float((point[1] - point[0]) - (point[3] - point[2])), *_ci(contrast))
    run.say(
        ds,
        f"{sampling}: vision-only `{b_model}` Δ UAR {db[2].text()} vs VLM `{v_model}` Δ UAR "
        f"{dv[2].text()}; difference of the Δs {est.text()} on {joined.height} clips all four "
        "cells answered"
        + (
            f" (the densest of {n_shared} samplings both were shuffled at; the frame-order "
            "table has the others)"
            if n_shared > 1
            else ""
        ),
        est,
        -1,
    )


def _joined(predictions: pl.DataFrame, cells: Sequence[str]) -> pl.DataFrame:
    """The clips every cell answered (by fold and clip id): label and ``pred_<i>``."""
    out: pl.DataFrame | None = None
    for i, cid in enumerate(cells):
        part = predictions.filter(pl.col("cell_id") == cid).select(
            "fold", "clip_id", "label", pl.col("pred").alias(f"pred_{i}")
        )
        out = part if out is None else out.join(part.drop("label"), on=["fold", "clip_id"])
    assert out is not None
    return out.sort("fold", "clip_id")


# ---------------------------------------------------------------------------------------
# 3. metric vs density


@register_finding(
    "density",
    "UAR vs sampling density",
    "For each model's line of densities (original order, switches off): UAR (mean over "
    "folds) at the sparsest and the densest setting, the gain densest − sparsest with its "
    "paired clip-bootstrap CI (observed: CI above 0, denser sampling helps), the peak, "
    f"the smallest density reaching {SATURATION:.0%} of the peak UAR and the least-squares "
    "slope per doubling of the density.",
)
def _density(run: FindingRun) -> None:
    ctx = run.ctx
    series = an.density_series(ctx.cells, ctx.settings)
    seen = set()
    for (ds, unit), lines in sorted(series.items()):
        seen.add(ds)
        info = ctx.infos[ds]
        chosen: dict[str, tuple[tuple[Any, ...], an.Series]] = {}
        for line in lines:
            if len(line.x) < 2 or line.variant.get("order") not in (None, "original"):
                continue
            rank = _reference_variant({**line.variant, "cell_id": line.cells[0]})
            if line.model not in chosen or rank < chosen[line.model][0]:
                chosen[line.model] = (rank, line)
        if not chosen:
            run.lack(ds, f"every model has a single density in {unit} (original order)")
            continue
        for _, (_, line) in sorted(chosen.items()):
            _density_statement(run, ds, info, unit, line)
    for ds in ctx.infos:
        if ds not in seen:
            run.lack(ds, "no density sweep (cells sample all frames)")


def _density_statement(
    run: FindingRun, ds: str, info: an.DatasetInfo, unit: str, line: an.Series
) -> None:
    ctx = run.ctx
    points = [
        (x, cid, s)
        for x, cid in zip(line.x, line.cells, strict=True)
        if (s := ctx.lookup.get(cid, "overall", None, "uar")) is not None
    ]
    if len(points) < 2:
        run.lack(ds, f"`{line.model}`: fewer than 2 densities with a UAR")
        return
    xs = np.array([p[0] for p in points])
    ys = np.array([p[2].value for p in points])
    gain = _paired(run, points[0][1], points[-1][1], info.labels)
    if gain is None:
        run.lack(ds, f"`{line.model}`: its sparsest and densest cells share no clips")
        return
    peak = int(np.argmax(ys))
    sat = xs[int(np.argmax(ys >= SATURATION * ys[peak]))]
    slope = float(np.polyfit(np.log2(xs), ys, 1)[0]) if np.all(xs > 0) else float("nan")
    role = run.roles[line.model].role or "unknown role"
    u = {"frames": "frames", "fps": "fps"}.get(unit, unit)
    text = (
        f"`{line.model}` ({role}): UAR {ys[0]:.3f} at {_num(xs[0])} {u} → {ys[-1]:.3f} at "
        f"{_num(xs[-1])} {u}, gain {gain[2].text()} ({gain[3]} clips); peak {ys[peak]:.3f} at "
        f"{_num(xs[peak])} {u}; {SATURATION:.0%} of the peak from {_num(sat)} {u}; slope "
        f"{fmt_number(slope, signed=True)} per doubling"
    )
    if 0 < peak < len(points) - 1:
        fall = _paired(run, points[peak][1], points[-1][1], info.labels)
        if fall is not None:
            text += f"; densest − peak {fall[2].text()}"
    run.say(ds, text, gain[2], +1)


# ---------------------------------------------------------------------------------------
# 4. MSCE on micro-expression clips


@register_finding(
    "msce",
    "MSCE on micro-expression clips",
    "On the clips flagged `micro`: Δ UAR of `msce` (keyframes + motion descriptions) "
    "against `none` (the keyframes alone) and against `msce-dense` (the keyframes plus the "
    "in-between frames themselves), every other setting equal, paired clip bootstrap; "
    "observed when the Δ's 95% CI lies above 0.",
)
def _msce(run: FindingRun) -> None:
    ctx = run.ctx
    for ds, info in ctx.infos.items():
        rows = ctx.dataset_rows(ds)
        others = [c for c in ctx.settings if c != "enrichment"]
        twins = {
            (str(r.get("enrichment")), tuple(str(r.get(c)) for c in others)): str(r["cell_id"])
            for r in rows
        }
        msce = [
            r
            for r in rows
            if r.get("enrichment") == "msce" and r.get("order") in (None, "original")
        ]
        if not msce:
            run.lack(ds, "no `msce` cell (original frame order)")
            continue
        for row in sorted(msce, key=_reference_variant):
            key = tuple(str(row.get(c)) for c in others)
            cid, model = str(row["cell_id"]), str(row["model"])
            none = next((v for (e, k), v in twins.items() if k == key and an.is_off(e)), None)
            dense = twins.get(("msce-dense", key))
            for base, name in ((none, "none"), (dense, "msce-dense")):
                if base is None:
                    run.lack(
                        ds,
                        f"`{model}` at {_sampling(row)}: no `{name}` cell to compare `msce` with",
                    )
                    continue
                micro = _paired(run, base, cid, info.labels, micro_only=True)
                if micro is None:
                    run.lack(ds, f"`{model}` at {_sampling(row)}: no clip flagged `micro`")
                    continue
                every = _paired(run, base, cid, info.labels)
                rest = "" if every is None else f" (all {every[3]} clips: {every[2].text()})"
                run.say(
                    ds,
                    f"`{model}` at {_sampling(row)}: UAR {micro[0].value:.3f} → "
                    f"{micro[1].value:.3f}, Δ (msce − {name}) = {micro[2].text()} on "
                    f"{micro[3]} micro-expression clips{rest}",
                    micro[2],
                    +1,
                )
