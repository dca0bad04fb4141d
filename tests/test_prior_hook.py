"""The engine's prior-correction hook (issue 22 §4): held-out clips for ``calibrated-em``,
its own model group, the estimated prior recorded per cell with a collapse warning, and
each scored cell's ECE in metrics.parquet."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

from emobench.runner.prior_hook import (
    COLLAPSE_SHARE,
    HELD_OUT_SHARE,
    carve_out,
    prior_note,
)


def _train(counts: dict[str, int]) -> pl.DataFrame:
    rows = [(f"{lab}{i:03d}", lab) for lab, n in counts.items() for i in range(n)]
    return pl.DataFrame(rows, schema=["clip_id", "label"], orient="row")


def test_carve_out_is_stratified_seeded_and_disjoint() -> None:
    train = _train({"neutral": 50, "happiness": 30, "fear": 5, "disgust": 1})
    labels = ["neutral", "happiness", "fear", "disgust"]
    keep, held = carve_out(train, labels, seed=0, fold=1)
    assert set(keep["clip_id"]) | set(held["clip_id"]) == set(train["clip_id"])
    assert not set(keep["clip_id"]) & set(held["clip_id"])
    n = dict(held.group_by("label").len().iter_rows())
    # 20% of each class, at least 2 (fear), none from a class with a single clip (disgust
    # must keep its only training clip)
    assert n == {"neutral": 10, "happiness": 6, "fear": 2}
    assert HELD_OUT_SHARE == 0.2
    again = carve_out(train, labels, seed=0, fold=1)[1]
    assert again["clip_id"].to_list() == held["clip_id"].to_list()
    assert (
        carve_out(train, labels, seed=1, fold=1)[1]["clip_id"].to_list()
        != held["clip_id"].to_list()
    )


def test_prior_note_warns_when_one_class_holds_most_of_the_mass() -> None:
    labels = ["neutral", "happiness", "fear"]
    calm = prior_note("em-test-prior", np.array([0.4, 0.35, 0.25]), labels, {})
    assert "warning" not in calm and calm["max_class"] == "neutral"
    bad = prior_note("em-test-prior", np.array([0.05, 0.9, 0.05]), labels, {})
    assert COLLAPSE_SHARE == 0.5
    assert "90%" in bad["warning"] and "'happiness'" in bad["warning"]
    assert "calibrated-em" in bad["warning"]
    # a class that holds most of the training clips may hold most of the test clips too:
    # 0.7 is a collapse only from twice the class's training share (0.35) on
    est = np.array([0.7, 0.2, 0.1])
    assert "warning" not in prior_note("em", est, labels, {}, np.array([0.6, 0.3, 0.1]))
    assert "warning" not in prior_note("em", est, labels, {}, np.array([0.36, 0.34, 0.3]))
    assert "warning" in prior_note("em", est, labels, {}, np.array([0.35, 0.35, 0.3]))


def test_engine_runs_calibrated_em_on_held_out_clips(tmp_path) -> None:
    from emobench.config import validate_config
    from emobench.runner.execute import Engine

    root = make_synth(tmp_path / "synth", profile="exp:4", n_train=16, n_test=8, seed=3)
    cfg = validate_config(
        {
            "name": "cal",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": "openclip:emobench-tiny", "name": "zs"}],
            "sweep": {
                "sampler": ["uniform:2"],
                "prior_correction": ["none", "em-test-prior", "calibrated-em"],
            },
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )
    engine = Engine(cfg, tmp_path / "run", progress=False)
    engine.load_datasets()
    fitted = []
    real = Engine._fit

    def spy(self, cell, fold, labels, train, skips):
        fitted.append((cell.prior_correction, set(train["clip_id"])))
        return real(self, cell, fold, labels, train, skips)

    engine._fit = spy.__get__(engine)
    engine.execute()
    # calibrated-em has its own group, fitted without its held-out clips
    by = {}
    for name, ids in fitted:
        by.setdefault(name, []).append(ids)
    index = engine._indices["synth"]
    for ids_cal, ids_all in zip(by["calibrated-em"], by["none"], strict=True):
        assert ids_cal < ids_all
    assert "em-test-prior" not in by  # shares the plain group's model
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    info = manifest["cell_info"]
    cal = next(v for k, v in info.items() if "calibrated-em" in k)
    for note in (fold["prior_estimate"] for fold in cal.values()):
        assert note["correction"] == "calibrated-em" and note["held_out_clips"] > 0
        assert sum(note["estimated_prior"].values()) == pytest.approx(1.0, abs=1e-5)
    em = next(v for k, v in info.items() if "em-test-prior" in k)
    assert all("prior_estimate" in fold for fold in em.values())
    metrics = pl.read_parquet(tmp_path / "run" / "metrics.parquet")
    ece = metrics.filter(pl.col("metric") == "ece")
    assert ece["cell_id"].n_unique() == 3  # every cell of a scoring model has one
    assert index.height > 0
    # the report shows each scored cell's ECE and the estimated prior's largest share
    from emobench.report import report_run
    from emobench.report.options import ReportOptions

    out = report_run(
        tmp_path / "run", ReportOptions(n_resamples=20, formats="md", prior="train_freq")
    )
    summary = (out / "summary.md").read_text() if out.is_dir() else out.read_text()
    assert "Calibration of the scores" in summary and "ECE" in summary
    assert "estimated prior: largest share" in summary
