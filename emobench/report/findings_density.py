"""Finding 3 of the study: UAR vs sampling density, and the shape of the curve.

The study's result is a bell: F1 rises from 1 to 5 FPS, then falls ("attentional
dilution"). For each model's line of densities (original order, switches off), on the
clips every density answered (pooled over folds) and one joint clip bootstrap of all its
densities: the peak UAR with its CI and the 95% interval of the peak's position (the
argmax of each resample), the rise to the peak (peak − sparsest) and the fall after it
(peak − densest), each with its paired CI and two-sided p (a side with the peak at its
end is 0 by construction and untested), and the curve's named shape from the two
Holm-adjusted tests: rises, rises then falls, flat or falls. Observed: rises then falls.
``fps:`` sweeps are read in FPS. The peak is the point estimate's argmax: its rise and
fall are measured at a setting the data picked, so a noisy flat curve leans towards
significance; Holm over the finding's tests and the peak's position interval keep that
visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emobench.metrics import MetricsError
from emobench.metrics.multi_bootstrap import joint_metric_draws
from emobench.report import analysis as an
from emobench.report.finding_stats import bootstrap_p, discrete_interval
from emobench.report.findings import Check, Estimate, FindingRun, fmt_number, register_finding
from emobench.report.findings_common import (
    ci,
    joined,
    num,
    primary_rank,
    reference_variant,
    unit_name,
)

#: Share of a line's peak UAR that counts as saturated.
SATURATION = 0.95
#: How the rise and fall are tested.
JOINT = "joint clip bootstrap of every density"


@register_finding(
    "density",
    "UAR vs sampling density",
    "For each model's line of densities (original order, switches off), on the clips "
    "every density answered: the peak UAR with its 95% CI and the bootstrap interval of "
    "the peak's position, the rise to the peak (peak − sparsest) and the fall after it "
    "(peak − densest), each with its paired CI and Holm-adjusted p, and the curve's shape "
    "(rises, rises then falls, flat, falls). Observed: rises then falls, the study's bell "
    "(F1 peaks at 5 FPS, then falls: attentional dilution). Primary comparison: the VLM's "
    "curve.",
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
            rank = reference_variant({**line.variant, "cell_id": line.cells[0]})
            if line.model not in chosen or rank < chosen[line.model][0]:
                chosen[line.model] = (rank, line)
        if not chosen:
            run.lack(ds, f"every model has a single density in {unit_name(unit)} (original order)")
            continue
        for _, (_, line) in sorted(chosen.items()):
            _statement(run, ds, info, unit, line)
    for ds in ctx.infos:
        if ds not in seen:
            run.lack(ds, "no density sweep (cells sample all frames)")


def _statement(run: FindingRun, ds: str, info: an.DatasetInfo, unit: str, line: an.Series) -> None:
    ctx = run.ctx
    clips = joined(ctx.predictions, line.cells)
    if clips.height == 0:
        run.lack(ds, f"`{line.model}`: no clip answered at every density")
        return
    try:
        point, draws = joint_metric_draws(
            clips.get_column("label").to_list(),
            [clips.get_column(f"pred_{i}").to_list() for i in range(len(line.cells))],
            info.labels,
            metric="uar",
            n_resamples=ctx.n_resamples,
            seed=ctx.seed,
        )
    except MetricsError:
        run.lack(ds, f"`{line.model}`: UAR undefined on the clips every density answered")
        return
    xs = np.asarray(line.x, dtype=np.float64)
    u = unit_name(unit)
    k = len(xs)
    peak = int(np.argmax(point))
    peak_est = Estimate(float(point[peak]), *ci(draws[:, peak]))
    where = discrete_interval(xs[np.argmax(draws, axis=1)])
    tests = []
    sides = {"rise": (peak, 0), "fall": (peak, k - 1)}
    side_text = {}
    for name, (i, j) in sides.items():
        if i == j:  # the peak is at this end: 0 by construction, not a test
            continue
        d = draws[:, i] - draws[:, j]
        est = Estimate(float(point[i] - point[j]), *ci(d))
        tests.append(Check(name, est, +1, bootstrap_p(d, est.value), JOINT))
        side_text[name] = est.text()
    rise = side_text.get("rise", f"none (the peak is the sparsest, {num(xs[0])} {u})")
    fall = side_text.get("fall", f"none (the peak is the densest, {num(xs[-1])} {u})")
    sat = xs[int(np.argmax(point >= SATURATION * point[peak]))]
    slope = float(np.polyfit(np.log2(xs), point, 1)[0]) if np.all(xs > 0) else float("nan")
    role = run.roles[line.model].role or "unknown role"
    pos = "" if where is None else f"; 95% bootstrap interval of its position {_span(where, u)}"
    text = (
        f"`{line.model}` ({role}) on {clips.height} clips every density answered: UAR "
        f"{point[0]:.3f} at {num(xs[0])} {u} → {point[-1]:.3f} at {num(xs[-1])} {u}; peak "
        f"{peak_est.text(signed=False)} at {num(xs[peak])} {u}{pos}; rise to the peak "
        f"(peak − sparsest) {rise}; fall after it (peak − densest) {fall}; "
        f"{SATURATION:.0%} of the peak from {num(sat)} {u}; slope "
        f"{fmt_number(slope, signed=True)} per doubling"
    )
    run.say_shape(
        ds,
        text,
        tests,
        estimate=peak_est,
        subject=f"`{line.model}` over {num(xs[0])}–{num(xs[-1])} {u}, {ds}",
        primary=primary_rank(run, ds, run.roles[line.model], None, line.cells[0])
        if run.roles[line.model].role == "vlm"
        else None,
    )


def _span(where: tuple[float, float], unit: str) -> str:
    lo, hi = where
    return f"{num(lo)} {unit}" if lo == hi else f"{num(lo)}–{num(hi)} {unit}"
