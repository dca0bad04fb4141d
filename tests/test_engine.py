"""The sweep engine end to end on a tiny generated set: metrics, cache, resume, skips."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from conftest import make_synth
from sklearn.metrics import balanced_accuracy_score, f1_score

from emobench.config import validate_config
from emobench.metrics import overall
from emobench.results import RunFolder
from emobench.runner.execute import Engine
from emobench.video.frames import available_backends

TINY = {"frame_size": 32, "encoder": {"widths": [8, 16]}}
TRAIN = {"epochs": 2, "patience": 2, "batch_size": 16, "crt_epochs": 2, "encoder_frames": 2}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(
        root,
        profile="exp:4",
        n_train=42,
        n_test=14,
        max_seconds=1.2,
        n_train_subjects=6,
        n_test_subjects=3,
        seed=3,
    )


def _cfg(root, **extra):
    data = {
        "name": "tiny",
        "datasets": [{"name": "synth", "root": str(root)}],
        "models": [
            {"adapter": "baseline:gru", "name": "gru", "options": TINY},
            {"adapter": "baseline:mean", "name": "mean", "options": TINY},
        ],
        "sweep": {"sampler": ["uniform:2,8"], "order": ["original", "shuffle"]},
        "train": TRAIN,
        "device": "cpu",
        "metrics": {"n_resamples": 50},
        **extra,
    }
    return validate_config(data)


def _key_cols(df: pl.DataFrame) -> pl.DataFrame:
    cols = ["cell_id", "fold", "clip_id", "label", "pred", "n_frames", "n_unique_frames"]
    cols += [c for c in df.columns if c.startswith("score:")]
    return df.select(cols).sort(["cell_id", "fold", "clip_id"])


@pytest.fixture(scope="module")
def first_run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    engine = Engine(_cfg(synth_root), out, progress=False)
    engine.load_datasets()
    summary = engine.execute()
    return out, summary, engine


def test_metrics_recomputed_from_predictions(first_run):
    out, summary, _ = first_run
    run = RunFolder(out)
    preds = run.read_predictions()
    metrics = run.read_metrics()
    manifest = run.read_manifest()
    labels = manifest["datasets"]["synth"]["labels"]
    assert summary.parts_total == 2 * 2 * 2 == preds["cell_id"].n_unique()
    assert preds.height == 8 * 14
    for (cell,), sub in preds.group_by(["cell_id"]):
        y, p = sub["label"].to_list(), sub["pred"].to_list()
        ref = overall(y, p, labels)
        present = sorted(set(y))
        assert ref["uar"] == pytest.approx(balanced_accuracy_score(y, p))
        assert ref["macro_f1"] == pytest.approx(
            f1_score(y, p, labels=present, average="macro", zero_division=0)
        )
        row = metrics.filter(
            (pl.col("cell_id") == cell)
            & (pl.col("scope") == "overall")
            & (pl.col("metric") == "macro_f1")
            & pl.col("fold").is_not_null()
        )
        assert row["value"][0] == pytest.approx(ref["macro_f1"])
        # the prediction is the arg-max of the written scores
        scores = sub.select([f"score:{lb}" for lb in labels]).to_numpy()
        assert [labels[i] for i in scores.argmax(axis=1)] == p


def test_density_and_order_columns(first_run):
    out, _, _ = first_run
    preds = RunFolder(out).read_predictions()
    assert set(preds["density"].unique().to_list()) == {2.0, 8.0}
    assert set(preds["order"].unique().to_list()) == {"original", "shuffle"}
    two = preds.filter(pl.col("density") == 2.0)
    assert (two["n_frames"] == 2).all()


def test_feature_cache_computes_union_once(first_run, synth_root):
    _, summary, engine = first_run
    # gru and mean share the encoder, so the second group's test frames are all cache hits;
    # training features are the dense frames of every training clip, computed once.
    index = engine._indices["synth"]
    test = index.filter(pl.col("split") == "test")
    train = index.filter(pl.col("split") == "train")
    from emobench.runner.execute import clip_seed
    from emobench.video.sampling import sample

    union = 0
    for r in test.iter_rows(named=True):
        idx = [
            sample(r["n_frames"], r["fps"], s, clip_seed(0, r["clip_id"]))
            for s in ("uniform:2", "uniform:8")
        ]
        union += np.unique(np.concatenate(idx)).size
    dense_train = int(train["n_frames"].sum())
    assert summary.cache["miss_frames"] == union + dense_train


def test_rerun_computes_nothing(first_run, synth_root):
    out, _, _ = first_run
    before = RunFolder(out).read_predictions()
    engine = Engine(_cfg(synth_root), out, progress=False)
    engine.load_datasets()
    s = engine.execute()
    assert s.parts_computed == 0 and s.parts_done_before == s.parts_total
    assert s.cache["miss_frames"] == 0 and s.cache["hit_frames"] == 0
    after = RunFolder(out).read_predictions()
    assert _key_cols(before).equals(_key_cols(after))


def test_interrupted_run_resumes_to_identical_predictions(first_run, synth_root, tmp_path):
    ref_out, _, _ = first_run
    out = tmp_path / "b"
    seen = []

    def stop_after_three(cell, fold):
        seen.append(cell.cell_id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    engine = Engine(_cfg(synth_root), out, progress=False, on_part=stop_after_three)
    engine.load_datasets()
    with pytest.raises(KeyboardInterrupt):
        engine.execute()
    assert len(list((out / "parts").glob("*.parquet"))) == 3
    assert not (out / "predictions.parquet").exists()
    engine = Engine(_cfg(synth_root), out, progress=False)
    engine.load_datasets()
    s = engine.execute()
    assert s.parts_done_before == 3 and s.parts_computed == s.parts_total - 3
    a = _key_cols(RunFolder(ref_out).read_predictions())
    b = _key_cols(RunFolder(out).read_predictions())
    assert a.equals(b)


def test_corrupt_clip_is_skipped_counted_and_listed(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    ann = pl.read_csv(root / "annotations.csv")
    victim = ann.filter(pl.col("split") == "test")["clip_id"][0]
    path = root / ann.filter(pl.col("clip_id") == victim)["path"][0]
    path.write_bytes(b"this is not a video" * 10)
    cfg = _cfg(
        root,
        models=[{"adapter": "baseline:mean", "options": TINY}],
        sweep={"sampler": ["uniform:4"], "order": ["original"]},
    )
    out = tmp_path / "c"
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    s = engine.execute()
    assert {x["clip_id"] for x in s.skipped} == {victim}
    manifest = RunFolder(out).read_manifest()
    assert [x["clip_id"] for x in manifest["skipped"]] == [victim]
    assert (
        "corrupt" in manifest["skipped"][0]["reason"] or "decod" in manifest["skipped"][0]["reason"]
    )
    preds = RunFolder(out).read_predictions()
    assert victim not in preds["clip_id"].to_list()
    assert preds.height == 13


def test_changed_config_refuses_existing_folder(first_run, synth_root):
    from emobench.config import ConfigError

    out, _, _ = first_run
    cfg = _cfg(synth_root, train={**TRAIN, "epochs": 1})
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    grid = engine.describe()  # what --dry-run shows
    assert set(grid["state"].to_list()) == {"stale"}
    with pytest.raises(ConfigError, match=r"settings changed \(train.epochs: 2 → 1\)"):
        engine.execute()


def test_existing_synth_folder_with_other_settings_is_a_warning(synth_root, tmp_path):
    from emobench.data.synth.generate import SynthConfig, manifest_drift

    same = {
        "profile": "exp:4",
        "n_train": 42,
        "n_test": 14,
        "size": 32,
        "min_seconds": 1.0,
        "max_seconds": 1.2,
        "n_train_subjects": 6,
        "n_test_subjects": 3,
        "seed": 3,
    }
    ds = [{"name": "synth", "root": str(synth_root), "generate": same}]
    engine = Engine(_cfg(synth_root, datasets=ds), tmp_path / "a", progress=False)
    engine.load_datasets()
    assert engine.warnings == []
    other = [{**ds[0], "generate": {**same, "seed": 4}}]
    engine = Engine(_cfg(synth_root, datasets=other), tmp_path / "b", progress=False)
    engine.load_datasets()  # the existing folder is used as it is, with one warning
    assert len(engine.warnings) == 1 and "seed=3 (now 4)" in engine.warnings[0]
    assert manifest_drift(SynthConfig(**same), tmp_path) is None  # no synth.json there


def test_bad_model_option_stops_the_run_before_any_work(synth_root, tmp_path):
    from emobench.config import ConfigError

    models = [
        {"adapter": "baseline:gru", "name": "gru", "options": TINY},
        {"adapter": "baseline:mean", "name": "mean", "options": {**TINY, "crop": 500}},
    ]
    with pytest.raises(ConfigError, match=r"models.1.options: crop must be in 1..32"):
        _cfg(synth_root, models=models)  # at load, so --dry-run catches it too


def _one_cell(root, **extra):
    return _cfg(
        root,
        models=[{"adapter": "baseline:mean", "options": TINY}],
        sweep={"sampler": ["uniform:4"], "order": ["original"]},
        **extra,
    )


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_engine_runs_on_every_backend(synth_root, tmp_path, backend):
    """pyav and auto decode everywhere; decord either works or stops with one line."""
    from emobench.runner.execute import DecodeFailureError

    engine = Engine(
        _one_cell(synth_root, video={"backend": backend}), tmp_path / "r", progress=False
    )
    engine.load_datasets()
    try:
        s = engine.execute()
    except DecodeFailureError as exc:
        assert backend == "decord", exc
        assert "decoding backend 'decord'" in str(exc) and "--backend pyav" in str(exc)
        return
    assert s.skipped == []
    decoding = RunFolder(tmp_path / "r").read_manifest()["decoding"]
    assert decoding["backend"] == backend
    clips = decoding["this_run"]["clips"]
    assert sum(clips.values()) >= 42 + 14  # every training and test clip, at least once
    if backend != "auto":
        assert set(clips) == {backend}


def test_many_undecodable_clips_stop_the_run_with_the_first_reason(synth_root, tmp_path):
    from emobench.runner.execute import DecodeFailureError

    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    ann = pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    test = ann.filter(pl.col("split") == "test").sort("clip_id")
    for path in test["path"][:5]:
        (root / path).write_bytes(b"\x00not a video" * 20)
    engine = Engine(_one_cell(root, video={"backend": "pyav"}), tmp_path / "r", progress=False)
    engine.load_datasets()
    first = test["clip_id"][0]
    with pytest.raises(
        DecodeFailureError,
        match=rf"5 of 14 test clips of fold 1 could not be read \(decoding backend 'pyav'\); "
        rf"first: clip '{first}': pyav: ",
    ):
        engine.execute()
    assert not (tmp_path / "r" / "predictions.parquet").exists()


def test_deleted_video_and_wrong_frame_count_are_skipped_and_counted(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    ann = pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    test = ann.filter(pl.col("split") == "test").sort("clip_id")
    gone, short = test["clip_id"][0], test["clip_id"][1]
    (root / test["path"][0]).unlink()
    n = int(test["n_frames"][1])
    ann = ann.with_columns(
        pl.when(pl.col("clip_id") == short).then(n - 5).otherwise("n_frames").alias("n_frames")
    )
    ann.write_csv(root / "annotations.csv")
    engine = Engine(_one_cell(root, video={"backend": "pyav"}), tmp_path / "r", progress=False)
    engine.load_datasets()
    s = engine.execute()
    reasons = {x["clip_id"]: x["reason"] for x in s.skipped}
    assert reasons == {
        gone: "missing file",
        short: f"pyav: annotation says {n - 5} frames, the video has {n}",
    }
    preds = RunFolder(tmp_path / "r").read_predictions()
    assert preds.height == test.height - 2
    assert RunFolder(tmp_path / "r").read_manifest()["skipped"] == s.skipped
