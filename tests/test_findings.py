"""The report's opening findings (emobench.report.findings) on runs whose numbers the test
controls: every clip's prediction is constructed, so each finding's number is known by hand.

Positive run: a zero-shot VLM whose per-class recall falls exactly with class frequency
(errors are invalid answers, so precision is 1 and F1 = 2r/(1+r) follows recall), a GRU
baseline that loses 6 of 20 clips per class when the frames are shuffled while the VLM
answers the same, a VLM density curve 0.40 / 0.45 / 0.543 / 0.55 at 2 / 4 / 8 / 16 frames,
and MSCE that turns every micro-expression clip right (keyframes alone: all wrong; dense
control: 2 of 5 right). The inverse run flips each construction; a third run has no MSCE
and no shuffled cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions, fake_run
from sklearn.metrics import balanced_accuracy_score

from emobench.report.build import ReportOptions, open_context
from emobench.report.findings import NOT_OBSERVED, OBSERVED, OPPOSITE, Finding, compute_findings

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust"]
VLM, GRU = "hf:tiny-vlm", "baseline:gru"
N = 20  # test clips per class and fold
FOLDS = (1, 2)
RESAMPLES = 200
#: correct clips (of N) per class of the head-bias cell, by training-frequency rank
CORRECT = [19, 17, 14, 11, 8, 5, 3]
#: micro-expression clips: every 4th clip of a class (5 of 20)
MICRO = {i for i in range(N) if i % 4 == 0}


def _word_order() -> list[str]:
    """LABELS by the English word frequency the head-bias finding uses (its
    ``web_word_freq`` prior: wordfreq, whatever its definition of a class's words)."""
    from emobench.report.findings_headbias import FREQUENCY_PRIORS
    from emobench.report.priors import get_prior

    word = next(p for p in FREQUENCY_PRIORS if p != "train_freq")
    freq = get_prior(word).fn({}, "synth", LABELS)
    return sorted(LABELS, key=lambda lab: -freq[lab])


ORDER = _word_order()  # training counts follow the word frequencies: both priors agree
TRAIN = dict(zip(ORDER, [200, 120, 80, 50, 30, 15, 8], strict=True))
RANK = {lab: i for i, lab in enumerate(ORDER)}


def _next(lab: str) -> str:
    return LABELS[(LABELS.index(lab) + 1) % len(LABELS)]


def _cell(
    model: str,
    sampler: str,
    correct,
    *,
    order="original",
    enrichment="none",
    wrong=None,
    unit="frames",
):
    """One cell on both folds: clip i of class lab is right when ``correct(lab, i)``,
    otherwise ``wrong(lab)`` (default: an invalid answer)."""
    frames = []
    k = int(sampler.split(":")[1])
    for fold in FOLDS:
        clips, labels, preds = [], [], []
        for lab in LABELS:
            for i in range(N):
                clips.append(f"f{fold}-{lab}-{i:02d}")
                labels.append(lab)
                ok = correct(lab, i)
                preds.append(lab if ok else (wrong(lab) if wrong else "invalid"))
        frames.append(
            fake_predictions(
                cell_id=f"{model}/{sampler}/{order}/{enrichment}",
                model=model,
                fold=fold,
                clip_ids=clips,
                labels=labels,
                preds=preds,
                sampler=sampler,
                density=float(k),
                density_unit=unit,
                order=order,
                enrichment=enrichment,
                micro=[int(c[-2:]) in MICRO for c in clips],
            )
        )
    return frames


def _predictions(sign: int, *, msce: bool = True, shuffle: str = "study") -> pl.DataFrame:
    """The positive (sign +1) or inverse (sign -1) constructions; ``shuffle``: ``study``
    (the sign's construction), ``same`` (both models answer shuffled clips unchanged) or
    ``none`` (no shuffled cells)."""
    head = CORRECT if sign > 0 else CORRECT[::-1]
    # correct clips per class at each density (positive: rising; inverse: falling)
    if sign > 0:
        by_k = {16: head, 8: [head[0] - 1, *head[1:]], 4: [c - 2 for c in head]}
        by_k[2] = [c - 3 for c in head]
    else:
        by_k = {2: head, 4: [c - 1 for c in head], 8: [c - 2 for c in head]}
        by_k[16] = [c - 3 for c in head]
    frames = []
    for k, counts in by_k.items():
        frames += _cell(VLM, f"uniform:{k}", lambda lab, i, c=counts: i < c[RANK[lab]])
    vlm16 = by_k[16]
    frames += _cell(GRU, "uniform:16", lambda lab, i: i < 14, wrong=_next)
    if shuffle != "none":
        same = shuffle == "same"
        vlm_shuf = (
            (lambda lab, i: i < vlm16[RANK[lab]]) if sign > 0 or same else (lambda lab, i: False)
        )
        gru_shuf = (lambda lab, i: i < 8) if sign > 0 and not same else (lambda lab, i: i < 14)
        frames += _cell(VLM, "uniform:16", vlm_shuf, order="shuffle")
        frames += _cell(GRU, "uniform:16", gru_shuf, order="shuffle", wrong=_next)
    if msce:
        sampler = "segment-random:2"
        keyframes_micro = sign < 0  # keyframes alone: micro clips all wrong (+), all right (-)
        frames += _cell(VLM, sampler, lambda lab, i: keyframes_micro if i in MICRO else i < 10)
        frames += _cell(
            VLM,
            sampler,
            lambda lab, i: (not keyframes_micro) if i in MICRO else i < 10,
            enrichment="msce",
        )
        frames += _cell(
            VLM,
            sampler,
            lambda lab, i: i in (0, 4) if i in MICRO else i < 10,
            enrichment="msce-dense",
        )
    return pl.concat(frames, how="diagonal_relaxed")


def _write(root: Path, predictions: pl.DataFrame):
    cells = [
        {"cell_id": r["cell_id"], "model": r["model"], "adapter": r["model"]}
        for r in predictions.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    ]
    return fake_run(
        root,
        predictions,
        labels=LABELS,
        train_counts={str(f): TRAIN for f in FOLDS},
        n_clips=len(FOLDS) * N * len(LABELS),
        cells=cells,
    )


def _findings(root: Path, sign: int, **kw) -> dict[str, Finding]:
    run = _write(root, _predictions(sign, **kw))
    ctx = open_context(run.path, ReportOptions(n_resamples=RESAMPLES, seed=3))
    return {f.key: f for f in compute_findings(ctx)}


@pytest.fixture(scope="module")
def positive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finding]:
    return _findings(tmp_path_factory.mktemp("pos") / "run", +1)


@pytest.fixture(scope="module")
def inverse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finding]:
    return _findings(tmp_path_factory.mktemp("neg") / "run", -1)


def _recall_gap(correct: list[int]) -> float:
    """Head (training count >= 100) minus tail (< 40) mean recall, by hand."""
    head = [c / N for lab, c in zip(ORDER, correct, strict=True) if TRAIN[lab] >= 100]
    tail = [c / N for lab, c in zip(ORDER, correct, strict=True) if TRAIN[lab] < 40]
    return sum(head) / len(head) - sum(tail) / len(tail)


def test_head_bias_observed_with_rho_one_and_the_hand_gap(positive):
    f = positive["head-bias"]
    assert f.verdict == (
        f"{OBSERVED} in the primary comparison (`{VLM}` vs `{GRU}` head−tail gap, synth); "
        "of 3 comparisons: 3 observed, 0 opposite, 0 not observed"
    )
    train, word, gap = f.statements
    assert f.primary is gap  # the VLM against the vision-only specialist
    for s, axis in ((train, "training-split class frequency"), (word, "English frequency")):
        assert s.estimate.value == pytest.approx(1.0)
        assert axis in s.text and "Spearman ρ = +1.00 [" in s.text and "over 7 classes" in s.text
        assert 0 < s.estimate.lo <= s.estimate.hi <= 1.0
        assert s.status == OBSERVED
        # ρ = +1 over 7 classes: 2 of the 5040 orderings are as extreme (±1), exactly
        (t,) = s.tests
        assert t.p == pytest.approx(2 / 5040, rel=1e-12)  # a ratio of counts: float only
        assert "exact permutation over all 5040 orderings of 7 classes" in s.text
        # the GRU's per-class F1 is the same for every class
        assert f"(vision-only `{GRU}` ρ undefined (a constant F1 or prior" in s.text
    # VLM gap (0.9 - 0.2667) against the GRU's 0 (equal recall 0.7 everywhere)
    want = _recall_gap(CORRECT)
    assert want == pytest.approx(0.9 - 0.8 / 3)
    assert gap.estimate.value == pytest.approx(want)
    assert gap.estimate.lo > 0 and gap.status == OBSERVED
    assert f"`{VLM}` vs vision-only `{GRU}` on 280 shared clips" in gap.text
    assert f"head−tail recall gap {want:.3f} vs 0.000" in gap.text
    assert "WAR−UAR 0.000 vs 0.000, Δ = +0.000" in gap.text  # equal test supports


def test_head_bias_inverse_is_not_observed(inverse):
    f = inverse["head-bias"]
    assert f.verdict == (
        f"{OPPOSITE} in the primary comparison (`{VLM}` vs `{GRU}` head−tail gap, synth); "
        "of 3 comparisons: 0 observed, 3 opposite, 0 not observed"
    )
    train, word, gap = f.statements
    assert train.estimate.value == pytest.approx(-1.0) == word.estimate.value
    assert train.estimate.hi < 0 and train.status == word.status == OPPOSITE
    head = [c - 3 for c in CORRECT[::-1]]
    assert gap.estimate.value == pytest.approx(_recall_gap(head))
    assert gap.estimate.hi < 0 and gap.status == OPPOSITE


def test_shuffle_gru_drops_vlm_does_not(positive):
    f = positive["shuffle"]
    assert f.verdict == (
        f"{OBSERVED} in the primary comparison (`{GRU}` vs `{VLM}` at uniform:16, synth); "
        "of 1 comparison: 1 observed, 0 opposite, 0 not observed"
    )
    (s,) = f.statements
    # GRU 0.70 -> 0.40 per class; the VLM answers every clip the same
    assert s.estimate.value == pytest.approx(-0.3)
    assert s.estimate.hi < 0
    assert f"vision-only `{GRU}` Δ UAR -0.300 [" in s.text
    assert f"VLM `{VLM}` Δ UAR +0.000 [+0.000, +0.000]" in s.text
    assert "on 280 clips all four cells answered" in s.text and s.text.startswith("uniform:16")


def test_shuffle_inverse_vlm_collapses_is_not_observed(inverse):
    (s,) = inverse["shuffle"].statements
    # VLM: UAR 0.40 (head-bias cell of the inverse run) -> 0; GRU unchanged
    vlm16 = sum(c - 3 for c in CORRECT) / (N * len(LABELS))
    assert s.estimate.value == pytest.approx(vlm16)
    assert s.estimate.lo > 0 and s.status == OPPOSITE
    assert inverse["shuffle"].verdict.startswith(f"{OPPOSITE} in the primary comparison")


def test_density_curve_rises_to_the_densest_peak_saturation_and_slope(positive):
    f = positive["density"]
    (s,) = f.statements
    total = sum(CORRECT)
    uar = {k: (total - off) / (N * len(LABELS)) for k, off in ((2, 21), (4, 14), (8, 1), (16, 0))}
    # the peak is the densest setting: no fall to test, the rise is the whole gain
    assert s.status == "not observed: the curve rises" and s.note == "shape: rises"
    (rise,) = s.tests
    assert rise.name == "rise" and rise.estimate.value == pytest.approx(uar[16] - uar[2])
    assert rise.estimate.value == pytest.approx(0.15) and rise.p_adj < 0.05
    assert s.estimate.value == pytest.approx(uar[16])  # the peak
    assert f"UAR {uar[2]:.3f} at 2 frames → {uar[16]:.3f} at 16 frames; peak 0.550 [" in s.text
    assert "rise to the peak (peak − sparsest) +0.150 [" in s.text
    assert "fall after it (peak − densest) none (the peak is the densest, 16 frames)" in s.text
    assert "95% of the peak from 8 frames" in s.text
    # least squares on log2 density 1..4 by hand: sum((x - 2.5) * y) / 5
    slope = sum((x - 2.5) * uar[2**x] for x in (1, 2, 3, 4)) / 5
    assert f"slope {slope:+.3f} per doubling" in s.text
    assert s.text.startswith(f"`{VLM}` (vlm) on 280 clips every density answered")
    assert f.verdict == (
        f"not observed: the curve rises in the primary comparison (`{VLM}` over 2–16 frames, "
        "synth); of 1 comparison: 0 observed, 0 opposite, 1 not observed"
    )


def test_density_inverse_falls(inverse):
    (s,) = inverse["density"].statements
    (fall,) = s.tests
    assert fall.name == "fall" and fall.estimate.value == pytest.approx(0.15)
    assert fall.estimate.lo > 0 and s.status == "not observed: the curve falls"
    assert "rise to the peak (peak − sparsest) none (the peak is the sparsest, 2 frames)" in s.text


def _micro_uar(preds: pl.DataFrame, cell: str) -> float:
    sub = preds.filter((pl.col("cell_id") == cell) & pl.col("micro"))
    return balanced_accuracy_score(sub["label"].to_list(), sub["pred"].to_list())


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_msce_helps_micro_clips_against_keyframes_and_dense(positive):
    f = positive["msce"]
    assert f.verdict == (
        f"{OBSERVED} in the primary comparison (`{VLM}` msce − none at segment-random:2, "
        "synth); of 2 comparisons: 2 observed, 0 opposite, 0 not observed"
    )
    none, dense = f.statements
    preds = _predictions(+1)
    base = f"{VLM}/segment-random:2/original/"
    msce = _micro_uar(preds, base + "msce")
    assert none.estimate.value == pytest.approx(msce - _micro_uar(preds, base + "none")) == 1.0
    assert dense.estimate.value == pytest.approx(msce - _micro_uar(preds, base + "msce-dense"))
    assert dense.estimate.value == pytest.approx(0.6)
    assert (none.estimate.lo, none.estimate.hi) == (pytest.approx(1.0), pytest.approx(1.0))
    assert dense.estimate.lo > 0
    assert "Δ (msce − none) = +1.000 [+1.000, +1.000] on 70 micro-expression clips" in none.text
    assert "Δ (msce − msce-dense) = +0.600 [" in dense.text


def test_msce_inverse_is_not_observed(inverse):
    none, dense = inverse["msce"].statements
    assert none.estimate.value == pytest.approx(-1.0)
    assert dense.estimate.value == pytest.approx(-0.4)
    assert none.status == dense.status == OPPOSITE


def test_missing_cells_are_not_measurable_and_no_effect_is_not_observed(tmp_path: Path):
    f = _findings(tmp_path / "run", +1, msce=False, shuffle="same")
    assert (
        f["msce"].verdict
        == "not measurable in this run: synth: no `msce` cell (original frame order)"
    )
    assert f["msce"].statements == ()
    # neither model changes a single answer: Δs and their difference are 0 [0, 0]
    (s,) = f["shuffle"].statements
    assert (s.estimate.value, s.estimate.lo, s.estimate.hi) == (0.0, 0.0, 0.0)
    assert s.status == NOT_OBSERVED and s.tests[0].p == 1.0
    assert f["shuffle"].verdict.startswith(f"{NOT_OBSERVED} in the primary comparison")
    assert f["density"].statements  # what the run has is still reported


def test_a_run_without_shuffled_cells_or_baselines_says_so(tmp_path: Path):
    preds = _predictions(+1, msce=False, shuffle="none").filter(pl.col("model") != GRU)
    run = _write(tmp_path / "run", preds)
    ctx = open_context(run.path, ReportOptions(n_resamples=RESAMPLES, seed=3))
    f = {x.key: x for x in compute_findings(ctx)}
    assert f["shuffle"].verdict == (
        "not measurable in this run: synth: no cells that differ only in frame order "
        "(original vs shuffle)"
    )
    # head bias without a vision-only baseline: the VLM's own gap, pooled over folds
    train, word, gap = f["head-bias"].statements
    assert gap.estimate.value == pytest.approx(_recall_gap(CORRECT))
    assert gap.estimate.lo > 0 and gap.status == OBSERVED
    assert f"`{VLM}`: head−tail recall gap {_recall_gap(CORRECT):+.3f} [" in gap.text
    assert f["head-bias"].missing == (
        "synth: no vision-only baseline to compare the VLM's head bias with",
    )


def test_findings_open_the_summary(tmp_path: Path):
    from typer.testing import CliRunner

    from emobench.cli import app

    run = _write(tmp_path / "run", _predictions(+1, msce=False))
    args = ["report", str(run.path), "--format", "md", "--resamples", str(RESAMPLES)]
    args += ["--seed", "3", "--max-confusion", "1", "--workers", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = run.path / "report"
    text = (out / "summary.md").read_text()
    sections = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert sections[:2] == ["## Findings in detail", "## This run"]
    # the summary opens with the findings table, one row per finding
    assert text.splitlines()[2].startswith("| finding | primary comparison | effect [95% CI] |")
    first = text.split("\n## ")[1]
    assert (
        "### 1. Head bias and its correlation with class and word frequency: observed in the "
        "primary comparison" in first
    )
    assert "### 2. Frame-order shuffling: temporal baselines vs VLMs: observed in the" in first
    assert "### 4. MSCE on micro-expression clips: not measurable in this run" in first
    assert "- not measurable in this run: synth: no `msce` cell (original frame order)" in first
    assert "Spearman ρ = +1.00 [" in first and "→ observed (Holm-adjusted p = " in first
    assert f"- primary comparison — synth: `{VLM}` vs vision-only `{GRU}`" in first
    # the same findings as data
    record = json.loads((out / "findings.json").read_text())
    by_key = {f["key"]: f for f in record["findings"]}
    assert list(by_key) == ["head-bias", "shuffle", "density", "msce"]
    for i, f in enumerate(record["findings"], start=1):
        assert f"### {i}. {f['title']}: {f['verdict']}" in first
    gap, rho = by_key["head-bias"]["statements"][:2]  # the primary comparison first
    assert gap["primary"] and not rho["primary"]
    assert by_key["head-bias"]["counts"] == {
        "observed": 3,
        "opposite": 0,
        "not_observed": 0,
        "by_construction": 0,
    }
    assert rho["value"] == pytest.approx(1.0) and rho["status"] == OBSERVED
    assert rho["tests"][0]["p"] == pytest.approx(2 / 5040, rel=1e-12)
    assert rho["tests"][0]["p_holm"] <= 3 * rho["tests"][0]["p"] + 1e-15
    assert 0 < rho["ci_lo"] <= rho["ci_hi"]
    assert by_key["shuffle"]["statements"][0]["value"] == pytest.approx(-0.3)
    assert by_key["msce"]["statements"] == []
    assert by_key["msce"]["missing"] == ["synth: no `msce` cell (original frame order)"]
    # and the terminal gets each verdict
    assert "findings.json" in result.output
    for i, f in enumerate(record["findings"], start=1):
        assert f"  {i}. {f['title']}: {f['verdict']}" in result.output


def test_roles_come_from_the_manifest_not_the_display_name():
    from emobench.report.roles import model_roles

    manifest = {
        "cells": [
            {"cell_id": "a", "model": "clip-zs", "adapter": "openclip:emobench-tiny@synth-web"},
            {"cell_id": "b", "model": "clip-probe", "adapter": "openclip:emobench-tiny@synth-web"},
            {"cell_id": "c", "model": "pooled", "adapter": "baseline:mean"},
            {"cell_id": "d", "model": "lora", "adapter": "hf:/w/tiny"},
        ],
        "config": {
            "models": [
                {"adapter": "openclip:emobench-tiny@synth-web", "name": "clip-zs"},
                {
                    "adapter": "openclip:emobench-tiny@synth-web",
                    "name": "clip-probe",
                    "options": {"probe": "linear"},
                },
                {"adapter": "baseline:transformer", "name": "attn"},
                {"adapter": "hf:/w/tiny", "name": "lora", "options": {"finetune": "lora"}},
                {"adapter": "hf:/w/tiny", "name": "zs", "options": {"finetune": "none"}},
            ]
        },
    }
    names = ["clip-zs", "clip-probe", "pooled", "attn", "lora", "zs", "mystery:x"]
    roles = model_roles(manifest, names)
    assert roles["clip-zs"].zero_shot_vlm and not roles["clip-probe"].zero_shot_vlm
    assert roles["clip-probe"].role == "vlm" and roles["clip-probe"].trained
    assert roles["pooled"].role == "vision-only" and not roles["pooled"].temporal_baseline
    assert roles["attn"].temporal_baseline  # adapter from the config, no cell record
    assert roles["lora"].role == "vlm" and roles["lora"].trained
    assert roles["zs"].zero_shot_vlm
    assert roles["mystery:x"].role is None and roles["mystery:x"].family == "mystery"


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_joint_draws_pair_like_paired_bootstrap_and_match_sklearn():
    from emobench.metrics import paired_bootstrap
    from emobench.metrics.multi_bootstrap import joint_metric_draws

    rng = np.random.default_rng(0)
    y = list(np.array(LABELS)[rng.integers(0, 7, 300)])
    a = [lab if rng.random() < 0.6 else LABELS[0] for lab in y]
    b = [lab if rng.random() < 0.4 else "invalid" for lab in y]
    point, draws = joint_metric_draws(y, [a, b], LABELS, metric="uar", n_resamples=300, seed=9)
    assert point == pytest.approx([balanced_accuracy_score(y, a), balanced_accuracy_score(y, b)])
    ref = paired_bootstrap(y, a, b, LABELS, metric="uar", n_resamples=300, seed=9)
    lo, hi = np.quantile(draws[:, 1] - draws[:, 0], [0.025, 0.975])
    assert (lo, hi) == (pytest.approx(ref["ci_lo"]), pytest.approx(ref["ci_hi"]))


def test_spearman_draws_match_scipy():
    from scipy.stats import spearmanr

    from emobench.metrics.multi_bootstrap import rank_correlation_draws

    rng = np.random.default_rng(1)
    values = rng.random((5, 6))
    values[2] = 0.5  # constant row: undefined
    values[3, :2] = values[3, 2]  # ties
    prior = [6.0, 1.0, 3.0, 3.0, 5.0, 2.0]
    got = rank_correlation_draws(values, prior)
    for i in (0, 1, 3, 4):
        assert got[i] == pytest.approx(spearmanr(values[i], prior).statistic)
    assert np.isnan(got[2])


def test_shuffle_pairs_meet_at_the_densest_sampling_both_were_shuffled_at(tmp_path: Path):
    frames = []
    for k, gru_shuffled in ((4, 14), (8, 14), (16, 6)):  # the GRU drops at 16 frames only
        frames += _cell(GRU, f"uniform:{k}", lambda lab, i: i < 14, wrong=_next)
        frames += _cell(
            GRU, f"uniform:{k}", lambda lab, i, c=gru_shuffled: i < c, order="shuffle", wrong=_next
        )
    for k in (4, 8):  # the VLM was not run at 16 frames
        for order in ("original", "shuffle"):
            frames += _cell(VLM, f"uniform:{k}", lambda lab, i: i < 10, order=order)
    run = _write(tmp_path / "run", pl.concat(frames, how="diagonal_relaxed"))
    ctx = open_context(run.path, ReportOptions(n_resamples=RESAMPLES, seed=3))
    f = {x.key: x for x in compute_findings(ctx)}
    (s,) = f["shuffle"].statements
    assert s.text.startswith("uniform:8: ") and "the densest of 2 samplings" in s.text
    assert s.estimate.value == 0.0 and s.status == NOT_OBSERVED


def test_imported_predictions_take_the_role_their_options_state():
    from emobench.report.roles import model_roles

    manifest = {
        "cells": [
            {"cell_id": "a", "model": "mae-dfer", "adapter": "predictions:mae/{fold}.csv"},
            {"cell_id": "b", "model": "gemini", "adapter": "predictions:gemini.csv"},
            {"cell_id": "c", "model": "unknown", "adapter": "predictions:other.csv"},
        ],
        "config": {
            "models": [
                {
                    "name": "mae-dfer",
                    "adapter": "predictions:mae/{fold}.csv",
                    "options": {"role": "vision-only", "trained": True, "temporal": True},
                },
                {"name": "gemini", "adapter": "predictions:gemini.csv", "options": {"role": "vlm"}},
                {"name": "unknown", "adapter": "predictions:other.csv"},
                {
                    "name": "pooled",
                    "adapter": "predictions:clip.csv",
                    "options": {"role": "vlm", "order_invariant": True},
                },
            ]
        },
    }
    manifest["cells"].append({"cell_id": "d", "model": "pooled", "adapter": "predictions:clip.csv"})
    roles = model_roles(manifest, ["mae-dfer", "gemini", "unknown", "pooled"])
    assert roles["mae-dfer"].temporal_baseline and roles["mae-dfer"].trained
    assert not roles["mae-dfer"].order_invariant
    assert roles["gemini"].zero_shot_vlm and not roles["gemini"].temporal
    assert not roles["gemini"].order_invariant  # not stated: its shuffle cells count
    assert roles["pooled"].order_invariant  # stated: shown, left out of the shuffle verdict
    assert roles["unknown"].role is None  # no role stated: left out of the findings


def test_predictions_role_option_is_validated():
    from pydantic import ValidationError

    from emobench.models.predictions.adapter import PredictionsOptions

    assert PredictionsOptions(role="vlm").role == "vlm"
    with pytest.raises(ValidationError):
        PredictionsOptions(role="specialist")
    with pytest.raises(ValidationError, match="contradict"):
        PredictionsOptions(role="vision-only", temporal=True, order_invariant=True)
