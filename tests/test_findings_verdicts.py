"""Issue 22 §1, §2 and the density item of §3: how the findings' numbers become verdicts.

Runs are built with test_findings' constructions (every prediction chosen, so each number
is known by hand): correlations over classes are tested over classes and Holm-adjusted
within the finding, a VLM that pools its frames is order-invariant by construction and
no evidence, the roll-up names the primary comparison and counts every outcome, and a
density curve gets its peak, rise, fall and named shape (in FPS on ``fps:`` sweeps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_finding_stats import _hand_permutation_p
from test_findings import FOLDS, GRU, LABELS, ORDER, RANK, TRAIN, VLM, N, _cell, _next, _write

from emobench.report.build import ReportOptions, open_context
from emobench.report.findings import (
    NOT_OBSERVED,
    OBSERVED,
    OPPOSITE,
    ORDER_INVARIANT,
    Check,
    Estimate,
    Statement,
    compute_findings,
    findings_record,
)
from emobench.report.verdicts import settle, verdict

CLIP = "openclip:tiny"  # the openclip family pools its frames: order-invariant


def _findings(root: Path, preds: pl.DataFrame, resamples: int = 200):
    run = _write(root, preds)
    ctx = open_context(run.path, ReportOptions(n_resamples=resamples, seed=3))
    return ctx, {f.key: f for f in compute_findings(ctx)}


# ---------------------------------------------------------------------------------------
# §1: correlations over classes, Holm within the finding


#: correct clips (of N) per class by training-frequency rank: three tail classes at F1 0
TIED = [12, 10, 0, 7, 0, 0, 3]


def test_rho_is_tested_over_classes_and_holm_adjusted_within_the_finding(tmp_path: Path):
    preds = pl.concat(
        _cell(VLM, "uniform:8", lambda lab, i: i < TIED[RANK[lab]]), how="diagonal_relaxed"
    )
    ctx, f = _findings(tmp_path / "run", preds)
    head = f["head-bias"]
    (train,) = [s for s in head.statements if "training-split class frequency" in s.text]
    # per-class F1 with invalid errors: precision 1, F1 = 2r / (1 + r), equal on both folds
    f1 = [2 * (c / N) / (1 + c / N) for c in TIED]
    prior = [TRAIN[lab] for lab in ORDER]
    want_p, _ = _hand_permutation_p(f1, prior)
    (t,) = train.tests
    assert t.p == pytest.approx(want_p, rel=1e-12)  # counts over 5040 orderings: float only
    assert "exact permutation over all 5040 orderings of 7 classes" in train.text
    # the old clip bootstrap kept the classes: its upper bound was the estimate itself
    assert train.estimate.hi > train.estimate.value + 0.05
    # Holm over every p of the finding, by hand
    raw = [s.tests[0].p for s in head.statements]
    order = np.argsort(raw, kind="stable")
    m, running, want = len(raw), 0.0, [0.0] * len(raw)
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * raw[i]))
        want[i] = running
    assert [s.tests[0].p_adj for s in head.statements] == pytest.approx(want, rel=1e-12)
    assert t.p_adj > 0.05 and train.status == NOT_OBSERVED  # 7 classes, ties: no evidence
    assert train.p_text() == f"Holm-adjusted p = {t.p_adj:.3g}"
    rec = findings_record([head])["findings"][0]
    rho = next(s for s in rec["statements"] if "training-split" in s["text"])
    assert rho["tests"][0]["p_holm"] == pytest.approx(t.p_adj)
    assert rho["tests"][0]["method"].startswith("exact permutation")


# ---------------------------------------------------------------------------------------
# §2: only evidence counts; the roll-up names its primary comparison and counts all


def _shuffle_run(with_vlm: bool = True) -> pl.DataFrame:
    frames = []
    frames += _cell(GRU, "uniform:16", lambda lab, i: i < 14, wrong=_next)
    frames += _cell(GRU, "uniform:16", lambda lab, i: i < 8, order="shuffle", wrong=_next)
    for order in ("original", "shuffle"):  # pooled frames: the same answers, by construction
        frames += _cell(CLIP, "uniform:16", lambda lab, i: i < 11, order=order)
        if with_vlm:
            frames += _cell(VLM, "uniform:16", lambda lab, i: i < 10, order=order)
    return pl.concat(frames, how="diagonal_relaxed")


def test_an_order_invariant_vlm_is_shown_but_left_out_of_the_shuffle_verdict(tmp_path: Path):
    _, f = _findings(tmp_path / "run", _shuffle_run())
    shuffle = f["shuffle"]
    clip = next(s for s in shuffle.statements if CLIP in s.text)
    assert clip.status == ORDER_INVARIANT and clip.excluded == ORDER_INVARIANT
    assert not clip.tests and "Δ UAR +0.000 [+0.000, +0.000] at uniform:16" in clip.text
    (vlm,) = [s for s in shuffle.statements if s.counted]
    assert vlm.status == OBSERVED and shuffle.primary is vlm
    assert shuffle.verdict == (
        f"{OBSERVED} in the primary comparison (`{GRU}` vs `{VLM}` at uniform:16, synth); "
        "of 1 comparison: 1 observed, 0 opposite, 0 not observed; 1 fixed by construction, "
        "left out"
    )
    assert findings_record([shuffle])["findings"][0]["counts"]["by_construction"] == 1


def test_only_order_invariant_vlms_make_the_shuffle_finding_not_measurable(tmp_path: Path):
    _, f = _findings(tmp_path / "run", _shuffle_run(with_vlm=False))
    assert f["shuffle"].verdict == (
        "not measurable in this run: every comparison is fixed by construction; "
        "1 fixed by construction, left out"
    )


def test_one_frame_per_clip_is_no_frame_order_evidence(tmp_path: Path):
    from emobench.report.findings_shuffle import SINGLE_FRAME

    frames = []
    for model in (GRU, VLM):
        for order in ("original", "shuffle"):
            frames += _cell(model, "uniform:1", lambda lab, i: i < 10, order=order)
    _, f = _findings(tmp_path / "run", pl.concat(frames, how="diagonal_relaxed"))
    (s,) = f["shuffle"].statements
    assert s.status == SINGLE_FRAME and not s.counted
    assert f["shuffle"].verdict.startswith("not measurable in this run: every comparison")


def test_roles_know_which_models_cannot_see_frame_order():
    from emobench.report.roles import model_roles

    names = [CLIP, "baseline:mean", "baseline:gru", "hf:x", "hfvideo:y", "openai:z"]
    roles = model_roles({"cells": [], "config": {}}, names)
    assert [roles[n].order_invariant for n in names] == [True, True, False, False, False, False]


def _st(status_sign: int, primary=None, subject="") -> Statement:
    """A one-test statement: +1 significant in the study's direction, -1 against, 0 none."""
    value = {1: 0.2, -1: -0.2, 0: 0.01}[status_sign]
    p = 0.001 if status_sign else 0.5
    test = Check("Δ", Estimate(value), +1, p, "hand")
    return Statement("ds", "t", tests=(test,), primary=primary, subject=subject)


def test_roll_up_puts_the_primary_comparison_first_and_never_hides_the_opposite():
    settled = settle(
        [_st(+1, subject="a"), _st(-1, primary=(0,), subject="the VLM vs the specialist"), _st(0)]
    )
    assert [s.status for s in settled] == [OBSERVED, OPPOSITE, NOT_OBSERVED]
    # the old roll-up said "observed in 1 of 3 comparisons"
    assert verdict(settled, ()) == (
        f"{OPPOSITE} in the primary comparison (the VLM vs the specialist); of 3 "
        "comparisons: 1 observed, 1 opposite, 1 not observed"
    )
    # Holm by hand: 0.001 x 3, 0.001 x 2 -> monotone 0.003, then 0.5 x 1
    assert [s.tests[0].p_adj for s in settled] == [3 * 0.001, 3 * 0.001, 0.5]


def test_holm_can_turn_a_raw_significance_into_not_observed():
    raw = [0.02, 0.03, 0.04]
    settled = settle(
        [Statement("d", "t", tests=(Check("Δ", Estimate(0.1), +1, p, "h"),)) for p in raw]
    )
    # Holm: 0.02 x 3 = 0.06, then max(0.06, 0.03 x 2), then max(0.06, 0.04): all >= 0.05
    assert [s.tests[0].p_adj for s in settled] == [3 * 0.02, 3 * 0.02, 3 * 0.02]
    assert {s.status for s in settled} == {NOT_OBSERVED}


# ---------------------------------------------------------------------------------------
# §3 density: peak with CI, rise and fall, the named shape, in FPS


#: correct clips (of N, every class) at each FPS: a bell peaking at 5 FPS
BELL = {1: 8, 5: 16, 10: 12, 25: 9}


def _bell() -> pl.DataFrame:
    frames = []
    for fps, c in BELL.items():
        frames += _cell(VLM, f"fps:{fps}", lambda lab, i, c=c: i < c, unit="fps")
    return pl.concat(frames, how="diagonal_relaxed")


def _uar_ci_scipy(c: int, resamples: int) -> tuple[float, float]:
    """Percentile CI of UAR at one density from scipy's bootstrap of the pooled clips."""
    from scipy.stats import bootstrap

    n_cls, n = len(LABELS), len(FOLDS) * N
    y = np.repeat(np.arange(n_cls), n)
    ok = np.tile(np.arange(n) % N < c, n_cls)

    def uar(idx, axis=-1):
        idx = np.asarray(idx, dtype=np.int64)
        yy, hit = y[idx], ok[idx]
        rec = [(hit & (yy == k)).sum(-1) / (yy == k).sum(-1) for k in range(n_cls)]
        return np.mean(rec, axis=0)

    res = bootstrap(
        (np.arange(y.size),),
        uar,
        vectorized=True,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_density_bell_in_fps_rises_then_falls(tmp_path: Path):
    reps = 2000
    _, f = _findings(tmp_path / "run", _bell(), resamples=reps)
    (s,) = f["density"].statements
    uar = {fps: c / N for fps, c in BELL.items()}  # every class alike: UAR = c / N
    rise, fall = s.tests
    assert (rise.name, fall.name) == ("rise", "fall")
    assert rise.estimate.value == pytest.approx(uar[5] - uar[1], abs=1e-12)  # 0.4
    assert fall.estimate.value == pytest.approx(uar[5] - uar[25], abs=1e-12)  # 0.35
    # 8+ SDs from 0: no resample reaches it, p = 1 / (R + 1); Holm over the 2 tests
    assert rise.p == fall.p == 1 / (reps + 1)
    assert rise.p_adj == fall.p_adj == 2 * (1 / (reps + 1))
    assert s.status == OBSERVED and s.note == "shape: rises then falls"
    assert s.estimate.value == pytest.approx(uar[5], abs=1e-12)
    lo, hi = _uar_ci_scipy(BELL[5], 20000)
    # Monte Carlo error of a 2.5% / 97.5% quantile over 2000 resamples of a UAR with SD
    # about 0.024: about 0.0015; scipy's over 20000: 0.0005; 0.008 is 5 of their SEs
    assert s.estimate.lo == pytest.approx(lo, abs=0.008)
    assert s.estimate.hi == pytest.approx(hi, abs=0.008)
    assert "UAR 0.400 at 1 FPS → 0.450 at 25 FPS; peak 0.800 [" in s.text
    assert "at 5 FPS; 95% bootstrap interval of its position 5 FPS;" in s.text
    assert "rise to the peak (peak − sparsest) +0.400 [" in s.text
    assert "fall after it (peak − densest) +0.350 [" in s.text
    assert f["density"].verdict == (
        f"{OBSERVED} (shape: rises then falls) in the primary comparison (`{VLM}` over 1–25 "
        "FPS, synth); of 1 comparison: 1 observed, 0 opposite, 0 not observed"
    )
    assert s.p_text() == "Holm-adjusted p: rise < 0.001, fall < 0.001"  # 2 / 2001


def test_a_flat_curve_is_flat(tmp_path: Path):
    frames = []
    for fps in (1, 5, 25):
        frames += _cell(VLM, f"fps:{fps}", lambda lab, i: i < 10, unit="fps")
    _, f = _findings(tmp_path / "run", pl.concat(frames, how="diagonal_relaxed"))
    (s,) = f["density"].statements
    # equal everywhere: the peak is the sparsest (first maximum), the fall exactly 0, p 1
    (fall,) = s.tests
    assert fall.estimate.value == 0.0 and fall.p == 1.0
    assert s.status == NOT_OBSERVED and s.note == "shape: flat"


def test_findings_json_carries_tests_and_counts(tmp_path: Path):
    ctx, f = _findings(tmp_path / "run", _bell())
    rec = json.loads(json.dumps(findings_record(list(f.values()))))
    dens = next(x for x in rec["findings"] if x["key"] == "density")
    (st,) = dens["statements"]
    assert st["primary"] and st["note"] == "shape: rises then falls"
    assert [t["name"] for t in st["tests"]] == ["rise", "fall"]
    assert all(t["p_holm"] >= t["p"] for t in st["tests"])
    assert dens["counts"] == {"observed": 1, "opposite": 0, "not_observed": 0, "by_construction": 0}
