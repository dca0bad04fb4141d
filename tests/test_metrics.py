"""Metrics against scikit-learn (random and hand-built cases) and hand computations."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from emobench.config import MetricsConfig
from emobench.labels import EMOTIONS, INVALID
from emobench.metrics import (
    FOLD_MEAN_CI_METRICS,
    GROUP_RULES,
    MetricsError,
    bootstrap_ci,
    class_groups,
    confusion_matrix,
    fold_mean_ci,
    fold_summary,
    group_classes,
    group_names,
    head_to_tail,
    longtail,
    mcnemar,
    normalize_rows,
    overall,
    paired_bootstrap,
    per_class,
    prior_correlation,
)
from emobench.results import METRICS_SCHEMA, SETTING_COLUMNS, validate_metrics
from emobench.results.metrics_table import compute_metrics

# --------------------------------------------------------------------------- oracles


def sk_overall(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, float]:
    """The documented definitions, computed with scikit-learn."""
    supported = [lab for lab in labels if lab in set(y_true)]
    kw = {"labels": supported, "zero_division": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "war": skm.accuracy_score(y_true, y_pred),
            "uar": skm.balanced_accuracy_score(y_true, y_pred),
            "macro_f1": skm.f1_score(y_true, y_pred, average="macro", **kw),
            "macro_precision": skm.precision_score(y_true, y_pred, average="macro", **kw),
            "macro_recall": skm.recall_score(y_true, y_pred, average="macro", **kw),
            "weighted_f1": skm.f1_score(
                y_true, y_pred, labels=labels, average="weighted", zero_division=0
            ),
        }


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], list[str], list[str]]:
    """Random labels (2-7 classes), true labels from a subset (classes absent from the test
    set), predictions that include invalid answers and an out-of-set emotion."""
    k = draw(st.integers(2, 7))
    labels = draw(st.permutations(EMOTIONS[:8]))[:k]
    used = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=k, unique=True))
    n = draw(st.integers(1, 60))
    y_true = draw(st.lists(st.sampled_from(used), min_size=n, max_size=n))
    outside = [e for e in EMOTIONS if e not in labels][0]
    y_pred = draw(st.lists(st.sampled_from([*labels, INVALID, outside]), min_size=n, max_size=n))
    return list(labels), y_true, y_pred


# --------------------------------------------------------------------------- sklearn checks


@settings(max_examples=80, deadline=None)
@given(cases())
def test_overall_matches_sklearn(case: tuple[list[str], list[str], list[str]]) -> None:
    labels, y_true, y_pred = case
    got = overall(y_true, y_pred, labels)
    for key, ref in sk_overall(y_true, y_pred, labels).items():
        assert got[key] == pytest.approx(ref, abs=1e-12), key
    assert got["n"] == len(y_true)
    assert got["invalid_rate"] == pytest.approx(sum(p not in labels for p in y_pred) / len(y_pred))
    assert all(math.isfinite(v) for v in got.values())


@settings(max_examples=60, deadline=None)
@given(cases())
def test_per_class_and_confusion_match_sklearn(
    case: tuple[list[str], list[str], list[str]],
) -> None:
    labels, y_true, y_pred = case
    table = per_class(y_true, y_pred, labels)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert table["label"].to_list() == labels
    np.testing.assert_allclose(table["precision"].to_numpy(), p, atol=1e-12)
    np.testing.assert_allclose(table["recall"].to_numpy(), r, atol=1e-12)
    np.testing.assert_allclose(table["f1"].to_numpy(), f, atol=1e-12)
    assert table["support"].to_list() == s.tolist()
    assert table.schema["support"] == pl.Int64

    cm = confusion_matrix(y_true, y_pred, labels)
    assert cm.shape == (len(labels), len(labels) + 1)
    np.testing.assert_array_equal(cm[:, :-1], skm.confusion_matrix(y_true, y_pred, labels=labels))
    for i, lab in enumerate(labels):
        n_out = sum(t == lab and q not in labels for t, q in zip(y_true, y_pred, strict=True))
        assert cm[i, -1] == n_out
    assert table["n_pred"].to_list() == cm[:, :-1].sum(axis=0).tolist()


@settings(max_examples=40, deadline=None)
@given(cases(), st.floats(0.3, 0.9), st.floats(0.0, 0.3))
def test_group_recall_matches_sklearn(
    case: tuple[list[str], list[str], list[str]], head: float, tail: float
) -> None:
    labels, y_true, y_pred = case
    rng = np.random.default_rng(len(y_true))
    counts = {lab: int(c) for lab, c in zip(labels, rng.integers(0, 200, len(labels)), strict=True)}
    groups = group_classes(counts, "relative", head, tail)
    got = longtail(y_true, y_pred, labels, groups)
    recall = dict(
        zip(
            labels,
            skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0),
            strict=True,
        )
    )
    for g in set(groups.values()):
        members = [lab for lab in labels if groups[lab] == g and lab in y_true]
        if members:
            assert got[f"recall_{g}"] == pytest.approx(np.mean([recall[m] for m in members]))
        else:
            assert f"recall_{g}" not in got
    assert all(math.isfinite(v) for v in got.values())


# --------------------------------------------------------------------------- hand-built


LAB3 = ["happiness", "sadness", "fear"]
T3 = ["happiness"] * 3 + ["sadness"] * 2 + ["fear"]
P3 = ["happiness", "sadness", INVALID, "sadness", "happiness", "happiness"]


def test_hand_built_overall() -> None:
    got = overall(T3, P3, LAB3)
    assert got["war"] == pytest.approx(2 / 6)
    assert got["uar"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert got["macro_precision"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert got["macro_f1"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert got["invalid_rate"] == pytest.approx(1 / 6)
    cm = confusion_matrix(T3, P3, LAB3)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 0, 0]])


def test_class_absent_from_test_set_is_not_averaged() -> None:
    """Adding a class that no clip has (but that is predicted) changes no macro value."""
    labs = [*LAB3, "anger"]
    pred = ["anger" if p == INVALID else p for p in P3]
    a, b = overall(T3, P3, LAB3), overall(T3, pred, labs)
    for key in ("uar", "macro_f1", "macro_recall", "weighted_f1", "war"):
        assert a[key] == pytest.approx(b[key])
    assert b["invalid_rate"] == 0.0
    row = per_class(T3, pred, labs).filter(pl.col("label") == "anger").row(0, named=True)
    assert row == {
        "label": "anger",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "n_pred": 1,
    }


def test_class_absent_from_predictions_scores_zero() -> None:
    got = per_class(T3, P3, LAB3).filter(pl.col("label") == "fear").row(0, named=True)
    assert (got["precision"], got["recall"], got["f1"], got["n_pred"]) == (0.0, 0.0, 0.0, 0)


def test_all_invalid_and_empty() -> None:
    got = overall(T3, [INVALID] * 6, LAB3)
    assert got["war"] == got["uar"] == got["macro_f1"] == 0.0
    assert got["invalid_rate"] == 1.0
    empty = overall([], [], LAB3)
    assert empty["n"] == 0
    assert all(v == 0.0 for k, v in empty.items() if k != "n")


def test_normalize_rows_keeps_zero_rows() -> None:
    cm = np.array([[2, 2, 0], [0, 0, 0], [1, 0, 3]])
    norm = normalize_rows(cm)
    np.testing.assert_allclose(norm, [[0.5, 0.5, 0], [0, 0, 0], [0.25, 0, 0.75]])
    assert not np.isnan(norm).any()


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(MetricsError, match="anger"):
        overall(["anger"], ["anger"], LAB3)
    with pytest.raises(MetricsError, match="2 entries"):
        overall(["fear", "fear"], ["fear"], LAB3)
    with pytest.raises(MetricsError, match="empty"):
        overall([], [], [])
    with pytest.raises(MetricsError, match="repeat"):
        overall(["fear"], ["fear"], ["fear", "fear"])


def test_inputs_may_be_numpy_or_polars() -> None:
    a = overall(T3, P3, LAB3)
    b = overall(np.array(T3), pl.Series(P3), tuple(LAB3))
    assert a == b


# --------------------------------------------------------------------------- groups


def test_relative_rule() -> None:
    counts = {"neutral": 100, "happiness": 50, "sadness": 49, "anger": 20, "fear": 19}
    counts["disgust"] = 0
    assert group_classes(counts) == {
        "neutral": "head",
        "happiness": "head",
        "sadness": "medium",
        "anger": "medium",
        "fear": "tail",
        "disgust": "tail",
    }
    assert group_classes(counts, head=0.4, tail=0.1)["sadness"] == "head"
    assert group_classes(counts, head=0.9, tail=0.1)["happiness"] == "medium"


def test_absolute_rule() -> None:
    counts = {"neutral": 100, "happiness": 99, "sadness": 20, "fear": 19, "anger": 500}
    assert group_classes(counts, "absolute") == {
        "neutral": "many",
        "happiness": "medium",
        "sadness": "medium",
        "fear": "few",
        "anger": "many",
    }
    assert group_classes(counts, "absolute", head=200, tail=50)["neutral"] == "medium"
    assert set(GROUP_RULES) >= {"relative", "absolute"}
    assert GROUP_RULES["absolute"].groups == ("many", "medium", "few")


def test_group_rule_errors() -> None:
    with pytest.raises(MetricsError, match="unknown grouping rule"):
        group_classes({"fear": 1}, "median")
    with pytest.raises(MetricsError, match="tail <= head"):
        group_classes({"fear": 1}, head=0.1, tail=0.5)
    assert group_classes({}) == {}


LT_LABELS = ["neutral", "happiness", "sadness", "fear", "disgust"]
LT_GROUPS = {
    "neutral": "head",
    "happiness": "head",
    "sadness": "medium",
    "fear": "tail",
    "disgust": "tail",
}
LT_TRUE = ["neutral"] * 4 + ["happiness"] * 4 + ["sadness"] * 2 + ["fear"] * 2 + ["disgust"] * 2
LT_PRED = (
    ["neutral"] * 3
    + ["happiness"]
    + ["happiness"] * 2
    + ["neutral"] * 2
    + ["sadness", "neutral"]
    + ["neutral", "happiness"]
    + ["disgust", INVALID]
)


def test_longtail_hand_computed() -> None:
    got = longtail(LT_TRUE, LT_PRED, LT_LABELS, LT_GROUPS)
    assert got["recall_head"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert got["recall_medium"] == pytest.approx(1 / 2)
    assert got["recall_tail"] == pytest.approx((0 + 1 / 2) / 2)
    assert got["head_tail_gap"] == pytest.approx(3 / 8)
    # neutral: tp 3, support 4, predicted 7 times; happiness: tp 2, support 4, predicted 4.
    assert got["f1_head"] == pytest.approx((6 / 11 + 4 / 8) / 2)
    assert got["collapse_rate"] == pytest.approx(2 / 4)  # both fear clips went to a head class
    assert got["neutral_sink"] == pytest.approx(4 / 10)  # 2 happy, 1 sad, 1 fear -> neutral
    assert got["war_minus_uar"] == pytest.approx(7 / 14 - (3 / 4 + 1 / 2 + 1 / 2 + 0 + 1 / 2) / 5)


def test_longtail_without_neutral_and_absolute_names() -> None:
    labels = LT_LABELS[1:]
    keep = [i for i, t in enumerate(LT_TRUE) if t != "neutral"]
    y_true = [LT_TRUE[i] for i in keep]
    y_pred = [LT_PRED[i] for i in keep]
    groups = {"happiness": "many", "sadness": "medium", "fear": "few", "disgust": "few"}
    got = longtail(y_true, y_pred, labels, groups)
    assert "neutral_sink" not in got
    assert got["recall_many"] == pytest.approx(1 / 2)
    assert got["head_tail_gap"] == pytest.approx(1 / 2 - 1 / 4)  # many - few
    # the fear clips were predicted neutral (out of set) and happiness (a "many" class)
    assert got["collapse_rate"] == pytest.approx(1 / 4)


def test_longtail_group_without_test_clips_is_absent() -> None:
    y_true = ["neutral", "happiness"]
    got = longtail(y_true, y_true, LT_LABELS, LT_GROUPS)
    assert "recall_tail" not in got and "head_tail_gap" not in got
    assert "collapse_rate" not in got
    assert got["recall_head"] == 1.0
    assert got["neutral_sink"] == 0.0


# --------------------------------------------------------------------------- uncertainty


def _random_case(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = LT_LABELS
    y_true = rng.choice(labels, n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).tolist()
    y_pred = [t if rng.random() < 0.5 else str(rng.choice([*labels, INVALID])) for t in y_true]
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_ci_contains_point_and_is_deterministic(seed: int) -> None:
    y_true, y_pred = _random_case(300, seed)
    ci = bootstrap_ci(y_true, y_pred, LT_LABELS, LT_GROUPS, n_resamples=500, seed=seed)
    point = {**overall(y_true, y_pred, LT_LABELS), **longtail(y_true, y_pred, LT_LABELS, LT_GROUPS)}
    assert set(ci) == {"uar", "war", "macro_f1", "head_tail_gap"}
    for name, (lo, hi) in ci.items():
        assert lo <= point[name] <= hi, name
        assert lo < hi
    again = bootstrap_ci(y_true, y_pred, LT_LABELS, LT_GROUPS, n_resamples=500, seed=seed)
    assert again == ci
    other = bootstrap_ci(y_true, y_pred, LT_LABELS, LT_GROUPS, n_resamples=500, seed=seed + 9)
    assert other != ci
    narrow = bootstrap_ci(y_true, y_pred, LT_LABELS, level=0.5, n_resamples=500, seed=seed)
    assert "head_tail_gap" not in narrow  # needs groups
    assert ci["uar"][0] <= narrow["uar"][0] <= narrow["uar"][1] <= ci["uar"][1]


def test_bootstrap_matches_naive_clip_resampling() -> None:
    """The multinomial shortcut has the spread of resampling clips with replacement."""
    y_true, y_pred = _random_case(200, 5)
    t, p = np.array(y_true), np.array(y_pred)
    rng = np.random.default_rng(0)
    naive = []
    for _ in range(600):
        idx = rng.integers(0, len(t), len(t))
        naive.append(overall(t[idx], p[idx], LT_LABELS)["macro_f1"])
    lo, hi = np.quantile(naive, [0.025, 0.975])
    got = bootstrap_ci(y_true, y_pred, LT_LABELS, n_resamples=2000, metrics=["macro_f1"])
    assert got["macro_f1"][0] == pytest.approx(lo, abs=0.02)
    assert got["macro_f1"][1] == pytest.approx(hi, abs=0.02)


def test_bootstrap_is_fast_and_rejects_unknown_metric() -> None:
    y_true, y_pred = _random_case(10_000, 3)
    start = time.perf_counter()
    bootstrap_ci(y_true, y_pred, LT_LABELS, LT_GROUPS, n_resamples=1000)
    assert time.perf_counter() - start < 10.0  # a guard against a pathological slowdown only
    with pytest.raises(MetricsError, match="no bootstrap"):
        bootstrap_ci(y_true, y_pred, LT_LABELS, metrics=["accuracy"])


def test_paired_bootstrap() -> None:
    y_true, pred_a = _random_case(400, 11)
    same = paired_bootstrap(y_true, pred_a, pred_a, LT_LABELS, n_resamples=300)
    assert same["diff"] == 0.0 and same["p_value"] == 1.0
    assert same["ci_lo"] == same["ci_hi"] == 0.0
    rng = np.random.default_rng(1)
    pred_b = [t if rng.random() < 0.5 else p for t, p in zip(y_true, pred_a, strict=True)]
    res = paired_bootstrap(y_true, pred_a, pred_b, LT_LABELS, n_resamples=500, seed=3)
    expect = (
        overall(y_true, pred_b, LT_LABELS)["macro_f1"]
        - overall(y_true, pred_a, LT_LABELS)["macro_f1"]
    )
    assert res["diff"] == pytest.approx(expect)
    assert 0 < res["ci_lo"] <= res["diff"] <= res["ci_hi"]
    assert res["p_value"] < 0.01
    assert paired_bootstrap(y_true, pred_a, pred_b, LT_LABELS, n_resamples=500, seed=3) == res
    rev = paired_bootstrap(y_true, pred_b, pred_a, LT_LABELS, metric="war", n_resamples=200)
    assert rev["diff"] < 0 and rev["metric"] == "war"


def test_mcnemar_exact_and_chi2_by_hand() -> None:
    def build(b: int, c: int, both: int = 5) -> tuple[list[str], list[str], list[str]]:
        y = ["fear"] * (b + c + both + 3)
        a = ["fear"] * b + [INVALID] * c + ["fear"] * both + ["anger"] * 3
        bb = ["anger"] * b + ["fear"] * c + ["fear"] * both + [INVALID] * 3
        return y, a, bb

    res = mcnemar(*build(3, 10))
    exact = 2 * sum(math.comb(13, k) for k in range(4)) / 2**13
    assert (res["b"], res["c"], res["method"]) == (3, 10, "exact")
    assert res["p_value"] == pytest.approx(exact)
    assert res["statistic"] == 3

    res = mcnemar(*build(30, 50))
    stat = (abs(30 - 50) - 1) ** 2 / 80
    assert res["method"] == "chi2"
    assert res["statistic"] == pytest.approx(stat)
    assert res["p_value"] == pytest.approx(math.erfc(math.sqrt(stat / 2)))  # chi2 sf, 1 dof

    none = mcnemar(["fear"], ["fear"], ["fear"])
    assert (none["b"], none["c"], none["p_value"]) == (0, 0, 1.0)


def test_fold_summary_against_numpy() -> None:
    rng = np.random.default_rng(0)
    vals = rng.random((3, 5))
    df = pl.DataFrame(
        {
            "metric": np.repeat(["uar", "war", "macro_f1"], 5),
            "fold": np.tile(np.arange(1, 6), 3),
            "value": vals.ravel(),
        }
    )
    out = fold_summary(df)
    assert out["metric"].to_list() == ["uar", "war", "macro_f1"]
    np.testing.assert_allclose(out["value"].to_numpy(), vals.mean(axis=1))
    np.testing.assert_allclose(out["std"].to_numpy(), vals.std(axis=1, ddof=1))
    assert out["n_folds"].to_list() == [5, 5, 5]
    one = fold_summary(df.filter(pl.col("fold") == 2), by=["metric"])
    assert one["std"].to_list() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(one["value"].to_numpy(), vals[:, 1])


def test_prior_correlation() -> None:
    f1 = {"neutral": 0.8, "happiness": 0.6, "sadness": 0.3, "fear": 0.1, "disgust": float("nan")}
    prior = {"neutral": 0.4, "happiness": 0.3, "sadness": 0.2, "fear": 0.05, "disgust": 0.05}
    res = prior_correlation(f1, prior)
    assert res["n"] == 4
    assert res["spearman"] == pytest.approx(1.0)
    x, y = [0.4, 0.3, 0.2, 0.05], [0.8, 0.6, 0.3, 0.1]
    assert res["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert res["points"][0] == ("neutral", 0.4, 0.8)
    few = prior_correlation({"fear": 0.1, "anger": 0.2}, {"fear": 1.0, "anger": 2.0})
    assert few["spearman"] is None and few["pearson_p"] is None and few["n"] == 2
    flat = prior_correlation(f1, dict.fromkeys(f1, 0.1))
    assert flat["spearman"] is None and flat["pearson"] is None


# --------------------------------------------------------------------------- metrics table


def _predictions() -> tuple[pl.DataFrame, dict]:
    """Two cells: c1 with folds 1 and 2, c2 with fold 1 only."""
    rng = np.random.default_rng(7)
    labels = LT_LABELS
    frames = []
    for cell, folds in (("c1", (1, 2)), ("c2", (1,))):
        for fold in folds:
            true, pred = [], []
            for _ in range(60):
                t = labels[min(int(rng.exponential(1.2)), 4)]
                true.append(t)
                pred.append(t if rng.random() < 0.6 else str(rng.choice([*labels, INVALID])))
            clips = [f"clip{i}" for i in range(60)]
            frames.append(
                fake_predictions(
                    cell_id=cell,
                    model="m" + cell,
                    fold=fold,
                    clip_ids=clips,
                    labels=true,
                    preds=pred,
                )
            )
    counts = {"neutral": 100, "happiness": 60, "sadness": 30, "fear": 15, "disgust": 5}
    manifest = {
        "datasets": {
            "synth": {
                "labels": labels,
                "train_counts": {"1": counts, "2": {**counts, "sadness": 55}},
            }
        },
        "cells": [{"cell_id": "c2"}, {"cell_id": "c1"}],
    }
    return pl.concat(frames), manifest


def test_compute_metrics_per_fold_and_aggregate() -> None:
    preds, manifest = _predictions()
    table = compute_metrics(preds, manifest, MetricsConfig(n_resamples=200))
    assert table.schema == pl.Schema(METRICS_SCHEMA)
    validate_metrics(table)  # no NaN, right types
    assert table["cell_id"].unique(maintain_order=True).to_list() == ["c2", "c1"]
    # per-fold rows first, then the aggregates
    fold_null = table["fold"].is_null().to_list()
    assert fold_null == sorted(fold_null)

    for fold in (1, 2):
        sub = preds.filter((pl.col("cell_id") == "c1") & (pl.col("fold") == fold))
        ref = sk_overall(sub["label"].to_list(), sub["pred"].to_list(), LT_LABELS)
        rows = table.filter(
            (pl.col("cell_id") == "c1") & (pl.col("fold") == fold) & (pl.col("scope") == "overall")
        )
        got = dict(zip(rows["metric"], rows["value"], strict=True))
        for key, val in ref.items():
            assert got[key] == pytest.approx(val), key
        uar = rows.filter(pl.col("metric") == "uar").row(0, named=True)
        assert uar["ci_lo"] <= uar["value"] <= uar["ci_hi"]
        assert uar["std"] is None

    per_fold = table.filter((pl.col("cell_id") == "c1") & pl.col("fold").is_not_null())
    agg = table.filter((pl.col("cell_id") == "c1") & pl.col("fold").is_null())
    key = ["scope", "target", "metric"]
    merged = agg.join(
        per_fold.group_by(key).agg(
            pl.col("value").mean().alias("m"), pl.col("value").std(ddof=1).alias("s")
        ),
        on=key,
    )
    assert merged.height == agg.height
    np.testing.assert_allclose(merged["value"].to_numpy(), merged["m"].to_numpy())
    np.testing.assert_allclose(merged["std"].to_numpy(), merged["s"].fill_null(0.0).to_numpy())
    # two folds: only the fold means of uar, war and macro_f1 get an interval (fold_mean_ci)
    with_ci = agg.filter(pl.col("ci_lo").is_not_null())
    assert sorted(with_ci["metric"]) == ["macro_f1", "uar", "war"]
    assert set(with_ci["scope"]) == {"overall"} and with_ci["ci_hi"].null_count() == 0
    for row in with_ci.iter_rows(named=True):
        assert row["ci_lo"] <= row["value"] <= row["ci_hi"]

    single = table.filter(
        (pl.col("cell_id") == "c2") & (pl.col("scope") == "overall") & (pl.col("metric") == "uar")
    )
    assert single.height == 2 and single["ci_lo"][0] == single["ci_lo"][1]
    assert single["std"][1] == 0.0

    # groups follow each fold's train counts: sadness is medium in fold 1, head in fold 2
    g1 = table.filter((pl.col("cell_id") == "c1") & (pl.col("scope") == "group"))
    assert set(g1["target"]) <= {"head", "medium", "tail"}
    sub2 = preds.filter((pl.col("cell_id") == "c1") & (pl.col("fold") == 2))
    head2 = {"neutral": "head", "happiness": "head", "sadness": "head"}
    lt = longtail(
        sub2["label"].to_list(),
        sub2["pred"].to_list(),
        LT_LABELS,
        {**head2, "fear": "tail", "disgust": "tail"},
    )
    row = table.filter(
        (pl.col("cell_id") == "c1")
        & (pl.col("fold") == 2)
        & (pl.col("scope") == "group")
        & (pl.col("target") == "head")
        & (pl.col("metric") == "recall")
    )
    assert row["value"][0] == pytest.approx(lt["recall_head"])
    assert set(table["rule"]) == {"relative"}
    for col in SETTING_COLUMNS:
        assert table[col].null_count() == 0


def test_compute_metrics_classes_and_options() -> None:
    preds, manifest = _predictions()
    table = compute_metrics(preds, manifest, MetricsConfig(n_resamples=0, rule="absolute"))
    assert table["ci_lo"].null_count() == table.height
    assert set(table.filter(pl.col("scope") == "group")["target"]) <= {"many", "medium", "few"}
    sub = preds.filter((pl.col("cell_id") == "c2") & (pl.col("fold") == 1))
    ref = per_class(sub["label"].to_list(), sub["pred"].to_list(), LT_LABELS)
    cls = table.filter(
        (pl.col("cell_id") == "c2")
        & (pl.col("fold") == 1)
        & (pl.col("scope") == "class")
        & (pl.col("metric") == "f1")
    )
    expect = ref.filter(pl.col("support") > 0)
    assert cls["target"].to_list() == expect["label"].to_list()
    np.testing.assert_allclose(cls["value"].to_numpy(), expect["f1"].to_numpy())

    # no train counts: no group rows, but the non-group long-tail rows remain
    bare = {"datasets": {"synth": {"labels": LT_LABELS}}}
    t2 = compute_metrics(preds, bare, MetricsConfig(n_resamples=0))
    assert t2.filter(pl.col("scope") == "group").height == 0
    assert set(t2.filter(pl.col("scope") == "longtail")["metric"]) == {
        "neutral_sink",
        "war_minus_uar",
    }
    # deterministic
    a = compute_metrics(preds, manifest, MetricsConfig(n_resamples=50, seed=1))
    assert a.equals(compute_metrics(preds, manifest, MetricsConfig(n_resamples=50, seed=1)))


def test_compute_metrics_rejects_label_outside_dataset() -> None:
    preds, manifest = _predictions()
    manifest["datasets"]["synth"]["labels"] = LT_LABELS[:-1]
    with pytest.raises(MetricsError, match="disgust"):
        compute_metrics(preds, manifest, MetricsConfig(n_resamples=0))


def test_compute_metrics_speed() -> None:
    rng = np.random.default_rng(0)
    n, labels = 100_000, LT_LABELS
    cell = rng.integers(0, 50, n)
    preds = pl.DataFrame(
        {
            "cell_id": [f"c{c}" for c in cell],
            "dataset": "synth",
            "model": "m",
            "seed": cell,
            "fold": rng.integers(1, 6, n),
            "clip_id": [f"clip{i}" for i in range(n)],
            "label": rng.choice(labels, n),
            "pred": rng.choice([*labels, INVALID], n),
        }
    )
    start = time.perf_counter()
    table = compute_metrics(preds, {}, MetricsConfig(n_resamples=100))
    assert time.perf_counter() - start < 30.0  # (speed is measured in benchmarks/)
    assert table.filter(pl.col("fold").is_null())["cell_id"].n_unique() == 50


def test_across_fold_cis_are_the_report_fold_mean_ci() -> None:
    preds, manifest = _predictions()
    table = compute_metrics(preds, manifest, MetricsConfig(n_resamples=300, seed=4))
    agg = table.filter(
        (pl.col("cell_id") == "c1") & pl.col("fold").is_null() & (pl.col("scope") == "overall")
    )
    got = {r["metric"]: (r["ci_lo"], r["ci_hi"]) for r in agg.iter_rows(named=True)}
    # the report's class order: head to tail by mean training count (sadness 42.5 > fear 15)
    counts = {"neutral": 100, "happiness": 60, "sadness": 42.5, "fear": 15, "disgust": 5}
    order = head_to_tail(LT_LABELS, counts)
    cms = [
        confusion_matrix(sub["label"].to_list(), sub["pred"].to_list(), order)
        for fold in (1, 2)
        if (sub := preds.filter((pl.col("cell_id") == "c1") & (pl.col("fold") == fold))).height
    ]
    expect = fold_mean_ci(np.stack(cms), n_resamples=300, seed=4)
    assert set(expect) == set(FOLD_MEAN_CI_METRICS)
    assert {m: got[m] for m in expect} == expect


def test_class_groups_and_head_to_tail() -> None:
    counts = {"neutral": 100, "happiness": 60, "sadness": 30, "fear": 15, "disgust": 5}
    groups, names = class_groups(counts)
    assert names == group_names("relative") == ("head", "medium", "tail")
    assert groups == group_classes(counts)
    assert class_groups(dict.fromkeys(counts, 0), rule="absolute") == (
        {},
        ("many", "medium", "few"),
    )
    assert head_to_tail(["fear", "neutral", "anger"], {"neutral": 3.0}) == [
        "neutral",
        "fear",
        "anger",
    ]
    with pytest.raises(MetricsError, match="unknown grouping rule"):
        group_names("quantile")
