"""The results store: predictions schema, atomic writes, run folders, manifests."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions
from polars.testing import assert_frame_equal

from emobench.config import MetricsConfig
from emobench.data.index import make_index
from emobench.io import JsonValueError
from emobench.labels import INVALID
from emobench.results import (
    METRICS_SCHEMA,
    PREDICTION_SCHEMA,
    SETTING_COLUMNS,
    Manifest,
    ResultsError,
    RunFolder,
    RunFolderError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    build_manifest,
    dataset_entry,
    git_commit,
    manifest_labels,
    manifest_train_counts,
    open_run,
    score_columns,
    scores_matrix,
    validate_metrics,
    validate_predictions,
    write_json_atomic,
    write_parquet_atomic,
)

LABELS = ["neutral", "happiness", "sadness"]


def _preds(n: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return fake_predictions(
        cell_id="c1",
        model="openclip:tiny",
        fold=1,
        clip_ids=[f"clip{i}" for i in range(n)],
        labels=[LABELS[i % 3] for i in range(n)],
        preds=[LABELS[(i + 1) % 3] if i else INVALID for i in range(n)],
        raw_text=[None, *["a face"] * (n - 1)],
        n_frames=8,
        n_unique_frames=8,
        latency_s=rng.random(n),
        **{f"score:{lab}": rng.random(n) for lab in LABELS},
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- predictions


def test_validate_predictions_fills_and_casts() -> None:
    df = pl.DataFrame(
        {
            "cell_id": ["c1", "c1"],
            "dataset": ["synth", "synth"],
            "model": ["m", "m"],
            "fold": pl.Series([1, 1], dtype=pl.Int32),
            "density": [5, 5],
            "clip_id": ["a", "b"],
            "label": ["fear", "anger"],
            "pred": ["fear", None],
            "score:fear": [1, 2],
        }
    )
    out = validate_predictions(df)
    assert list(out.columns) == [*PREDICTION_SCHEMA, "score:fear"]
    assert out.schema["fold"] == pl.Int64 and out.schema["density"] == pl.Float64
    assert out.schema["score:fear"] == pl.Float64
    assert out["pred"].to_list() == ["fear", INVALID]  # no answer is an invalid answer
    assert out["raw_text"].null_count() == 2
    assert score_columns(out) == ["score:fear"]
    kept = validate_predictions(df.with_columns(subject=pl.lit("s1")))
    assert kept.columns[-1] == "subject"  # extra columns pass through


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop("clip_id"), "required column.*clip_id"),
        (lambda d: d.with_columns(label=pl.lit("glee")), "label.*glee"),
        (lambda d: d.with_columns(pred=pl.lit("happy")), "pred.*happy"),
        (lambda d: d.with_columns(clip_id=pl.lit("same")), "repeat clip 'same'"),
        (lambda d: d.with_columns(fold=pl.lit("one")), "'fold'.*does not cast"),
        (lambda d: d.with_columns(pl.lit(1.0).alias("score:glee")), "score column.*glee"),
        (lambda d: d.with_columns(dataset=pl.lit(None, dtype=pl.Utf8)), "'dataset' has 6 null"),
        (
            lambda d: d.with_columns(seed=pl.Series([0, 0, 0, 1, 1, 1])),
            "cell 'c1' has more than one combination",
        ),
    ],
)
def test_validate_predictions_errors(
    change: Callable[[pl.DataFrame], pl.DataFrame], message: str
) -> None:
    with pytest.raises(ResultsError, match=message):
        validate_predictions(change(_preds()))


def test_scores_matrix() -> None:
    df = _preds().with_columns(pl.lit(None, dtype=pl.Float64).alias("score:sadness"))
    mat = scores_matrix(df, ["happiness", "sadness"])
    assert mat.shape == (6, 2)
    np.testing.assert_allclose(mat[:, 0], df["score:happiness"].to_numpy())
    assert np.isnan(mat[:, 1]).all()
    with pytest.raises(ResultsError, match="score:fear"):
        scores_matrix(df, ["fear"])


# --------------------------------------------------------------------------- atomic writes


def test_atomic_writes_replace_and_leave_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    write_json_atomic(tmp_path / "x.json", {"p": Path("/a"), "v": np.float64(0.5), "s": {2, 1}})
    assert json.loads((tmp_path / "x.json").read_text()) == {"p": "/a", "v": 0.5, "s": [1, 2]}
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_failed_parquet_write_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "predictions.parquet"
    old = _preds()
    write_parquet_atomic(target, old)
    before = target.read_bytes()

    def broken(self: pl.DataFrame, file: IO[bytes], **kwargs: object) -> None:
        file.write(b"PAR1 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_parquet_atomic(target, old.head(2))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert_frame_equal(pl.read_parquet(target), old)
    assert _leftovers(tmp_path) == []


def test_failed_json_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(JsonValueError, match="manifest.json.*JSON"):
        write_json_atomic(target, {"a": float("nan")})
    with pytest.raises(JsonValueError, match="not JSON serialisable"):
        write_json_atomic(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == []


def test_atomic_path_for_writers_that_need_a_file_name(tmp_path: Path) -> None:
    target = tmp_path / "w.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()
        pl.DataFrame({"a": [1]}).write_csv(tmp)
    assert target.read_text() == "a\n1\n"
    with pytest.raises(RuntimeError, match="half"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("half written")
    assert target.read_text() == "a\n1\n" and _leftovers(tmp_path) == []


def test_interrupt_mid_write_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- run folder


def _manifest() -> dict:
    return build_manifest(
        run_name="t",
        config={"preset": "quickstart", "root": Path("/data")},
        datasets={
            "synth": {
                "fingerprint": "abc",
                "labels": LABELS,
                "train_counts": {"1": {"neutral": 5, "happiness": 3, "sadness": 1}},
                "n_clips": 6,
            }
        },
        cells=[{"cell_id": "c1", "model": "openclip:tiny"}],
        skipped=[{"cell_id": "c1", "fold": 1, "clip_id": "x", "reason": "decode error"}],
        seeds={"run": 0},
    )


def test_run_folder_round_trip(tmp_path: Path) -> None:
    from emobench.results.metrics_table import compute_metrics

    run = RunFolder(tmp_path / "run")
    preds = _preds()
    manifest = _manifest()
    run.write_manifest(manifest)
    run.write_predictions(preds)
    opened = open_run(tmp_path / "run")
    assert opened.read_manifest() == manifest
    back = opened.read_predictions()
    assert_frame_equal(back, validate_predictions(preds))
    assert back["raw_text"][0] is None
    metrics = compute_metrics(back, manifest, MetricsConfig(n_resamples=20))
    run.write_metrics(metrics)
    assert_frame_equal(opened.read_metrics(), metrics)
    assert opened.report_dir == tmp_path / "run" / "report"
    assert _leftovers(run.path) == []


def test_open_run_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no such run folder"):
        open_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is not a folder"):
        open_run(tmp_path / "file")
    run = RunFolder(tmp_path / "r")
    run.path.mkdir()
    with pytest.raises(RunFolderError, match="manifest.json and predictions.parquet missing"):
        open_run(run.path)
    run.write_predictions(_preds())
    with pytest.raises(RunFolderError, match=r"r: manifest.json missing"):
        open_run(run.path)
    run.write_manifest({"run_name": "r"})
    run.predictions_path.unlink()
    with pytest.raises(RunFolderError, match=r"r: predictions.parquet missing"):
        open_run(run.path)
    run.write_predictions(_preds())
    with pytest.raises(RunFolderError, match="metrics.parquet is missing"):
        open_run(run.path).read_metrics()


def test_open_run_names_what_is_malformed(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "x")
    run.write_predictions(_preds())
    run.manifest_path.write_text('{\n  "a": 1,\n  "b": ,\n}\n')
    with pytest.raises(RunFolderError, match=r"x: manifest.json is not valid JSON \(line 3"):
        open_run(run.path)
    run.manifest_path.write_text("[1, 2]")
    with pytest.raises(RunFolderError, match="not a JSON object"):
        open_run(run.path)
    run.manifest_path.write_text('{"datasets": []}')
    with pytest.raises(RunFolderError, match="'datasets' should be a JSON object"):
        open_run(run.path)
    run.write_manifest({})
    run.predictions_path.write_bytes(b"not parquet")
    with pytest.raises(RunFolderError, match="predictions.parquet is not a readable Parquet"):
        open_run(run.path)
    write_parquet_atomic(run.predictions_path, _preds().drop("label"))
    with pytest.raises(RunFolderError, match="lacks required column.*label"):
        open_run(run.path)
    write_parquet_atomic(run.predictions_path, _preds().with_columns(label=pl.lit("glee")))
    with pytest.raises(RunFolderError, match="predictions.parquet: .*glee"):
        open_run(run.path).read_predictions()


def test_validate_metrics_rejects_nan_and_bad_scope() -> None:
    row = {c: None for c in METRICS_SCHEMA} | {
        "cell_id": "c",
        "scope": "overall",
        "target": "",
        "metric": "uar",
        "value": 0.5,
        "rule": "relative",
    }
    df = pl.DataFrame([row], schema=METRICS_SCHEMA)
    assert validate_metrics(df).height == 1
    with pytest.raises(ResultsError, match="'value' has 1 NaN"):
        validate_metrics(df.with_columns(value=pl.lit(float("nan"))))
    with pytest.raises(ResultsError, match="unknown scope"):
        validate_metrics(df.with_columns(scope=pl.lit("misc")))
    with pytest.raises(ResultsError, match="lacks column.*rule"):
        validate_metrics(df.drop("rule"))


# --------------------------------------------------------------------------- manifest


def test_build_manifest_fields(tmp_path: Path) -> None:
    m = _manifest()
    for key in (
        "emobench_version",
        "created",
        "run_name",
        "config",
        "git_commit",
        "versions",
        "hardware",
        "seeds",
        "datasets",
        "cells",
        "skipped",
    ):
        assert key in m
    assert m["config"]["root"] == "/data"  # JSON-ready
    assert {"numpy", "polars"} <= set(m["versions"])
    assert m["hardware"]["cpu_count"] >= 1 and m["hardware"]["python"]
    assert manifest_labels(m, "synth") == LABELS
    assert manifest_labels(m, "dfew") is None
    assert manifest_train_counts(m, "synth", 1) == {"neutral": 5, "happiness": 3, "sadness": 1}
    assert manifest_train_counts(m, "synth", 2) is None
    assert git_commit(tmp_path) is None  # not a repository: tolerated
    if shutil.which("git") and git_commit() is not None:
        assert len(git_commit() or "") == 40


def test_dataset_entry_from_clip_index() -> None:
    rows = []
    for fold in (1, 2):
        for i, (lab, split) in enumerate(
            [("happiness", "train"), ("happiness", "train"), ("fear", "train"), ("fear", "test")]
        ):
            rows.append(
                dict(
                    clip_id=f"c{i}",
                    path=f"/v/c{i}.mp4",
                    media="video",
                    label=lab,
                    split=split if fold == 1 else "train",
                    fold=fold,
                    n_frames=50,
                    fps=25.0,
                )
            )
    entry = dataset_entry(make_index(rows))
    assert entry["labels"] == ["happiness", "fear"]  # canonical order
    assert entry["train_counts"] == {
        "1": {"happiness": 2, "fear": 1},
        "2": {"happiness": 2, "fear": 2},
    }
    assert entry["n_clips"] == 4 and len(entry["fingerprint"]) == 16


def test_setting_columns_are_in_schema() -> None:
    assert all(c in PREDICTION_SCHEMA for c in SETTING_COLUMNS)
    assert all(c in METRICS_SCHEMA for c in SETTING_COLUMNS)


def test_typed_manifest_accessors_and_dict_access(tmp_path: Path) -> None:
    m = _manifest()
    m["datasets"]["synth"]["train_counts"]["2"] = {"neutral": 3, "happiness": 1}
    m["cache"] = {"hits": 3}  # runs add fields the model does not name
    run = RunFolder(tmp_path / "run")
    run.write_manifest(m)
    typed = run.manifest()
    assert run.manifest() is typed  # read once
    assert isinstance(typed, Manifest) and typed.run_name == "t"
    assert typed.labels("synth") == manifest_labels(m, "synth") == LABELS
    assert typed.labels("dfew") is None
    assert typed.train_counts("synth", 1) == manifest_train_counts(m, "synth", 1)
    assert typed.train_counts("synth", 3) is None
    assert typed.train_counts_total("synth") == {"neutral": 8, "happiness": 4, "sadness": 1}
    assert typed.train_counts_mean("synth") == {"neutral": 4.0, "happiness": 2.0, "sadness": 0.5}
    assert typed.cell_ids() == ["c1"]
    assert typed.dataset("synth").fingerprint == "abc"
    # dict-style reads give the JSON as read, extras included
    assert typed["cache"] == {"hits": 3} and typed.get("nope", 1) == 1 and "skipped" in typed
    assert typed.as_dict() == run.read_manifest()
    run.write_manifest(typed)  # a Manifest writes back as the same JSON
    assert run.read_manifest() == m and run.manifest() is not typed
    run.write_manifest({"versions": {"numpy": 2}})
    with pytest.raises(RunFolderError, match="manifest.json: manifest field 'versions.numpy'"):
        run.manifest()
