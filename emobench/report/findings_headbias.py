"""Finding 1 of the study: head bias and its correlation with class and word frequency.

For each zero-shot VLM (reference cell, no prior correction): Spearman ρ of its per-class
F1 (fold means, as in the per-class table) with the training class frequency and with the
frequency of the class's emotion words, tested over the classes
(:func:`~emobench.report.finding_stats.spearman_permutation_test`: exact up to 8 classes,
Monte Carlo above) with a 95% CI resampling classes and the clips within them
(:func:`~emobench.report.finding_stats.class_bootstrap_rho`); and its head−tail recall
gap and WAR−UAR against each vision-only baseline on the same clips (paired clip
bootstrap). The primary comparison: the study's VLM's gap against the specialist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from emobench.metrics import MetricsError, prior_correlation
from emobench.metrics.multi_bootstrap import class_f1_draws, joint_metric_draws
from emobench.report import analysis as an
from emobench.report.finding_stats import (
    bootstrap_p,
    class_bootstrap_rho,
    spearman_permutation_test,
)
from emobench.report.findings import Estimate, FindingRun, fmt_number, register_finding
from emobench.report.findings_common import PAIRED, ci, paired, primary_rank
from emobench.report.priors import get_prior

#: The class priors of the finding (registered names, :mod:`emobench.report.priors`).
FREQUENCY_PRIORS: tuple[str, ...] = ("train_freq", "web_word_freq")


@register_finding(
    "head-bias",
    "Head bias and its correlation with class and word frequency",
    "Zero-shot VLM cells (reference cell, no prior correction): Spearman ρ of per-class F1 "
    "with the training class frequency and with the frequency of the class's emotion "
    "words, tested over the classes (exact permutation over every ordering of the "
    "classes up to 8, Monte Carlo above; 95% CI resampling the classes and the clips "
    "within them; observed: ρ > 0, Holm-adjusted p < 0.05), and the VLM's head−tail "
    "recall gap against each vision-only baseline on the same clips (observed: the VLM's "
    "gap larger, paired clip bootstrap; WAR−UAR alongside). Primary comparison: the VLM's "
    "gap against the vision-only specialist.",
)
def _head_bias(run: FindingRun) -> None:
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
                rho = rank_correlation(run, info, str(vlm["cell_id"]), prior)
                if isinstance(rho, str):
                    run.lack(ds, f"`{model}`: ρ of per-class F1 vs {axis} {rho}")
                    continue
                est, n, test = rho
                others = []
                for base in bases:  # the same correlation for each vision-only baseline
                    b = rank_correlation(run, info, str(base["cell_id"]), prior)
                    text = b if isinstance(b, str) else f"= {b[0].text(digits=2)}"
                    others.append(f"vision-only `{base['model']}` ρ {text}")
                run.say(
                    ds,
                    f"`{model}`: per-class F1 vs {axis}: Spearman ρ = {est.text(digits=2)} "
                    f"over {n} classes (p over the classes: {test.method})"
                    + (f" ({'; '.join(others)})" if others else ""),
                    est,
                    +1,
                    p=test.p_value,
                    method=test.method,
                    subject=f"`{model}` ρ vs {axis}, {ds}",
                )
            if not info.groups:
                run.lack(ds, "no training counts in the manifest: no head and tail classes")
                continue
            _gap_statements(run, ds, info, vlm, bases)


def rank_correlation(
    run: FindingRun, info: an.DatasetInfo, cid: str, prior: Mapping[str, float]
) -> tuple[Estimate, int, Any] | str:
    """Spearman ρ of a cell's per-class F1 (fold means) with ``prior``, its 95% CI
    resampling classes and the clips within them, the number of classes and the
    class-level permutation test (:class:`~emobench.report.finding_stats.PermutationResult`);
    or why there is none."""

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
    if corr.get("spearman") is None:
        n = corr.get("n", 0)
        return f"undefined (a constant F1 or prior, or fewer than 3 classes: {n})"
    labs = [p[0] for p in corr["points"]]
    values = [p[2] for p in corr["points"]]
    weights = [p[1] for p in corr["points"]]
    test = spearman_permutation_test(values, weights, seed=ctx.seed)
    idx = [info.labels.index(lab) for lab in labs]
    draws = class_f1_draws(conf.counts, n_resamples=ctx.n_resamples, seed=ctx.seed)
    lo, hi = ci(class_bootstrap_rho(draws[:, idx], weights, seed=ctx.seed))
    return Estimate(test.statistic, lo, hi), len(labs), test


def _gap_statements(
    run: FindingRun,
    ds: str,
    info: an.DatasetInfo,
    vlm: Mapping[str, Any],
    bases: Sequence[Mapping[str, Any]],
) -> None:
    """The VLM's head−tail recall gap and WAR−UAR, against each vision-only baseline
    (paired on the clips both answered), or on its own when the run has none."""
    cid, model = str(vlm["cell_id"]), str(vlm["model"])
    if not bases:
        _own_gap(run, ds, info, vlm)
        return
    for base in bases:
        bname = str(base["model"])
        gap = paired(
            run, str(base["cell_id"]), cid, info.labels, metric="head_tail_gap", groups=info.groups
        )
        wu = paired(
            run, str(base["cell_id"]), cid, info.labels, metric="war_minus_uar", groups=info.groups
        )
        if gap is None or wu is None:
            run.lack(ds, f"`{model}` and `{bname}` share no clips with head and tail classes")
            continue
        run.say(
            ds,
            f"`{model}` vs vision-only `{bname}` on {gap.n} shared clips: head−tail recall gap "
            f"{fmt_number(gap.new.value)} vs {fmt_number(gap.base.value)}, Δ = "
            f"{gap.diff.text()}; WAR−UAR {fmt_number(wu.new.value)} vs "
            f"{fmt_number(wu.base.value)}, Δ = {wu.diff.text()}",
            gap.diff,
            +1,
            p=gap.p,
            method=PAIRED,
            subject=f"`{model}` vs `{bname}` head−tail gap, {ds}",
            primary=primary_rank(run, ds, run.role(vlm), run.role(base), cid),
        )


def _own_gap(run: FindingRun, ds: str, info: an.DatasetInfo, vlm: Mapping[str, Any]) -> None:
    """The VLM's own head−tail gap (no vision-only baseline in the run), tested against 0
    by its clip bootstrap (pooled over folds)."""

    ctx = run.ctx
    cid, model = str(vlm["cell_id"]), str(vlm["model"])
    sub = ctx.predictions.filter(pl.col("cell_id") == cid)
    y, p = sub.get_column("label").to_list(), [sub.get_column("pred").to_list()]
    est: dict[str, tuple[Estimate, float]] = {}
    for metric in ("head_tail_gap", "war_minus_uar"):
        try:
            point, draws = joint_metric_draws(
                y,
                p,
                info.labels,
                metric=metric,
                n_resamples=ctx.n_resamples,
                seed=ctx.seed,
                groups=info.groups,
            )
        except MetricsError:
            run.lack(ds, f"`{model}`: no head or no tail clips to compare")
            return
        value = float(point[0])
        est[metric] = (Estimate(value, *ci(draws[:, 0])), bootstrap_p(draws[:, 0], value))
    (gap, p_gap), (wu, _) = est["head_tail_gap"], est["war_minus_uar"]
    run.say(
        ds,
        f"`{model}`: head−tail recall gap {gap.text()}, WAR−UAR {wu.text()} (clips pooled "
        "over folds; no vision-only baseline in this run to compare with)",
        gap,
        +1,
        p=p_gap,
        method="clip bootstrap",
        subject=f"`{model}` head−tail gap, {ds}",
        primary=primary_rank(run, ds, run.role(vlm), None, cid),
    )
    run.lack(ds, "no vision-only baseline to compare the VLM's head bias with")
