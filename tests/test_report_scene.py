"""The per-scene breakdown (FERV39k-style clips with a scene) against sklearn."""

from __future__ import annotations

import numpy as np
import polars as pl
from conftest import fake_predictions, fake_run
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from emobench.report.build import report_run
from emobench.report.options import ReportOptions
from emobench.report.section_scene import scene_scores

LABELS = ["happiness", "sadness", "neutral"]


def _run(tmp_path, with_scene=True):
    rng = np.random.default_rng(0)
    n = 90
    y = rng.choice(LABELS, size=n)
    pred = np.where(rng.random(n) < 0.6, y, rng.choice(LABELS, size=n))
    scenes = rng.choice(["Home", "School", "Crime"], size=n)
    extra = {"scene": scenes.tolist()} if with_scene else {}
    preds = fake_predictions(
        cell_id="c1",
        model="m",
        fold=1,
        clip_ids=[f"c{i:03d}" for i in range(n)],
        labels=y.tolist(),
        preds=pred.tolist(),
        **extra,
    )
    run = fake_run(
        tmp_path / "run",
        preds,
        labels=LABELS,
        train_counts={"1": {"happiness": 50, "sadness": 30, "neutral": 20}},
        n_clips=n,
        cells=[{"cell_id": "c1", "model": "m"}],
    )
    return run, preds, y, pred, scenes


def test_scene_scores_equal_sklearn(tmp_path):
    _, preds, y, pred, scenes = _run(tmp_path)
    rows = scene_scores(preds, "c1", LABELS)
    assert [r["scene"] for r in rows] == ["Crime", "Home", "School"]
    for r in rows:
        m = scenes == r["scene"]
        assert r["n"] == int(m.sum())
        assert r["war"] == accuracy_score(y[m], pred[m])
        assert abs(r["uar"] - balanced_accuracy_score(y[m], pred[m])) < 1e-12


def test_the_report_shows_scenes_only_when_there_are_any(tmp_path):
    run, *_ = _run(tmp_path)
    out = report_run(run.path, ReportOptions(formats=("md",), n_resamples=20))
    assert "Per-scene breakdown" in (out / "summary.md").read_text()
    run2, *_ = _run(tmp_path / "b", with_scene=False)
    out2 = report_run(run2.path, ReportOptions(formats=("md",), n_resamples=20))
    assert "Per-scene breakdown" not in (out2 / "summary.md").read_text()
    assert pl.read_parquet(run.path / "predictions.parquet")["scene"].null_count() == 0
