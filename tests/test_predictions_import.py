"""``predictions:<file>``: other code's predictions imported as cells, checked clip by clip.

A baseline run's predictions, exported per fold (CSV) and as one file (Parquet, ``fold``
column), come back with identical metrics; a file with missing, extra, duplicated and
misspelled rows reports each clip id with its problem; prior corrections on imported scores
equal the corrections computed by hand; the config rejects a sweep over an imported model's
settings and expands the per-model sampler/order overrides to the hand-listed cells.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

from emobench.config import ConfigError, validate_config
from emobench.results import RunFolder
from emobench.runner.execute import Engine

LABELS4 = "happiness,sadness,neutral,anger"
TINY = {"frame_size": 32, "encoder": {"widths": [8, 16]}}
TRAIN = {"epochs": 1, "patience": 1, "batch_size": 16, "crt_epochs": 1, "encoder_frames": 2}
ONE = {"sampler": ["uniform:4"], "order": ["original"]}


@pytest.fixture(scope="module")
def synth5(tmp_path_factory):
    """40 clips, 4 classes, 5 subject-disjoint folds (fold 1: 12 test clips)."""
    root = tmp_path_factory.mktemp("synth5")
    return make_synth(
        root,
        profile=f"exp:4:{LABELS4}",
        n_train=30,
        n_test=10,
        folds=5,
        seed=2,
        n_train_subjects=5,
        n_test_subjects=2,
    )


def _index(root) -> pl.DataFrame:
    return pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})


def _cfg(root, models, folds=(1, 2), **extra):
    return validate_config(
        {
            "name": "imp",
            "datasets": [{"name": "synth", "root": str(root), "folds": list(folds)}],
            "models": models,
            "sweep": extra.pop("sweep", ONE),
            "train": TRAIN,
            "device": "cpu",
            "metrics": {"n_resamples": 0},
            **extra,
        }
    )


def _run(cfg, out):
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    summary = engine.execute()
    return engine, summary, RunFolder(out)


def _values(metrics: pl.DataFrame, model: str) -> dict[tuple, float]:
    sub = metrics.filter(pl.col("model") == model)
    keys = ["prior_correction", "fold", "scope", "target", "metric"]
    return {tuple(r[k] for k in keys): r["value"] for r in sub.iter_rows(named=True)}


# --------------------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def original(synth5, tmp_path_factory):
    out = tmp_path_factory.mktemp("orig") / "run"
    cfg = _cfg(
        synth5,
        [{"adapter": "baseline:mean", "name": "mean", "options": TINY}],
        sweep={**ONE, "prior_correction": ["none", "logit-adjust"]},
    )
    return _run(cfg, out)[2]


def test_exported_predictions_import_with_identical_metrics(original, synth5, tmp_path):
    preds = original.read_predictions()
    labels = original.read_manifest()["datasets"]["synth"]["labels"]
    raw = preds.filter(pl.col("prior_correction") == "none")
    cols = ["clip_id", "pred", "n_frames", *[f"score:{lb}" for lb in labels]]
    for fold in (1, 2):
        sub = raw.filter(pl.col("fold") == fold).select(cols)
        # other code's spelling: capitalised label names are mapped by name
        sub.with_columns(pl.col("pred").str.to_titlecase()).rename(
            {f"score:{lb}": f"score:{lb.title()}" for lb in labels}
        ).write_csv(tmp_path / f"mean_fold{fold}.csv")
    raw.select(["fold", *cols]).write_parquet(tmp_path / "mean_all.parquet")
    # no fold information: each fold takes its test clips, other folds' clips are expected
    raw.select(cols).write_csv(tmp_path / "mean_nofold.csv")
    imports = [
        {"adapter": f"predictions:{tmp_path}/mean_nofold.csv", "name": "nofold"},
        {"adapter": f"predictions:{tmp_path}/mean_fold{{fold}}.csv", "name": "csv"},
        {
            "adapter": "predictions:mean_all.parquet",
            "name": "pq",
            "options": {"base_dir": str(tmp_path)},
        },
    ]
    cfg = _cfg(synth5, imports, sweep={**ONE, "prior_correction": ["none", "logit-adjust"]})
    engine, summary, run = _run(cfg, tmp_path / "imp")
    assert summary.skipped == []
    # only the file without fold information has rows for training clips of a fold (the
    # other fold's test clips): said once per fold, as expected or a possible leak
    assert len(engine.warnings) == 2, engine.warnings
    for fold, line in zip((1, 2), engine.warnings, strict=True):
        assert line.startswith(f"predictions:{tmp_path}/mean_nofold.csv synth fold {fold}: ")
        assert " other-fold " in line and "possible leak" in line
    mine = run.read_metrics()
    ref = _values(original.read_metrics(), "mean")
    assert len(ref) > 40
    for model in ("csv", "pq", "nofold"):
        got = _values(mine, model)
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (model, key)
    # the predictions themselves, logit-adjusted ones included, are the original run's
    new = run.read_predictions()
    key = ["prior_correction", "fold", "clip_id", "pred", "n_frames"]
    for model in ("csv", "pq", "nofold"):
        a = new.filter(pl.col("model") == model).select(key).sort(key)
        assert a.equals(preds.select(key).sort(key))
    info = run.read_manifest()["cell_info"]
    csv_cell = next(c for c in info if c.startswith("synth__csv"))
    rec = info[csv_cell]["2"]
    assert rec["imported_from"] == str(tmp_path / "mean_fold2.csv")
    import hashlib

    assert rec["sha256"] == hashlib.sha256((tmp_path / "mean_fold2.csv").read_bytes()).hexdigest()
    # settings recorded as given: the imported cells carry the sampler named in the config
    assert set(new["sampler"].to_list()) == {"uniform:4"}


# --------------------------------------------------------------------------- a bad file


def test_bad_rows_are_reported_clip_by_clip(synth5, tmp_path):
    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    test = test.sort("clip_id")
    ids, true = test["clip_id"].to_list(), test["label"].to_list()
    assert len(ids) == 12
    rows = [
        {"clip_id": c, "pred": lb, "raw_text": f"It is {lb}."}
        for c, lb in zip(ids, true, strict=True)
    ]
    missing = ids[:2]
    rows = rows[2:]  # two test clips without a row
    same, differ, typo, foreign = ids[2], ids[3], ids[4], ids[5]
    rows.append(dict(rows[0]))  # ids[2] twice, identical: one kept
    rows.append({**rows[1], "pred": "anger" if true[3] != "anger" else "sadness"})  # differ
    rows[2]["pred"] = "hapiness"  # misspelled
    rows[3]["pred"] = "contempt"  # a label, but not one of this dataset's
    rows += [{"clip_id": "nosuch_1", "pred": "anger"}, {"clip_id": "nosuch_2", "pred": "anger"}]
    pl.DataFrame(rows).write_csv(tmp_path / "bad.csv")
    cfg = _cfg(synth5, [{"adapter": f"predictions:{tmp_path}/bad.csv", "name": "bad"}], folds=(1,))
    engine, summary, run = _run(cfg, tmp_path / "r")

    skipped = {s["clip_id"]: s["reason"] for s in summary.skipped}
    assert set(skipped) == {*missing, differ}
    assert all(skipped[c].startswith("imported: no row in bad.csv") for c in missing)
    assert skipped[differ] == "imported: 2 differing rows in bad.csv"
    preds = run.read_predictions()
    assert sorted(preds["clip_id"].to_list()) == sorted(set(ids) - {*missing, differ})
    got = dict(zip(preds["clip_id"], preds["pred"], strict=True))
    assert got[typo] == "invalid" and got[foreign] == "invalid"
    assert got[same] == true[2]
    assert dict(zip(preds["clip_id"], preds["raw_text"], strict=True))[same] == f"It is {true[2]}."
    # the file gives no frame counts, latencies or scores: they stay empty
    assert preds["n_frames"].null_count() == preds["latency_s"].null_count() == 9
    assert not [c for c in preds.columns if c.startswith("score:")] or all(
        preds[c].null_count() == 9 for c in preds.columns if c.startswith("score:")
    )

    report_path = next((tmp_path / "r" / "checkpoints").rglob("imported/*.json"))
    report = json.loads(report_path.read_text())
    by_kind: dict[str, list[str]] = {}
    for p in report["problems"]:
        by_kind.setdefault(p["problem"], []).append(p["clip_id"])
    assert by_kind == {
        "duplicate": sorted([same, differ]),
        "extra": ["nosuch_1", "nosuch_2"],
        "missing": missing,
        "unknown-label": [typo, foreign],
    }
    details = {p["clip_id"]: p["detail"] for p in report["problems"]}
    assert "did you mean 'happiness'?" in details[typo]
    assert "'contempt' is not a label of this dataset" in details[foreign]
    assert "identical rows: one kept" in details[same]
    assert report["counts"] == {"duplicate": 2, "extra": 2, "missing": 2, "unknown-label": 2}
    assert report["test_clips"] == 12 and report["imported"] == 9
    warnings = run.read_manifest()["warnings"]
    assert len(warnings) == 4
    line = next(w for w in warnings if " missing " in w)
    assert f"2 missing ({missing[0]}: " in line and str(report_path) in line


def test_unusable_files_are_one_line_naming_the_file(synth5, tmp_path):
    from emobench.errors import EmobenchError
    from emobench.models.registry import create_model

    with pytest.raises(EmobenchError, match=r"^predictions file not found: .*nope\.csv$"):
        create_model(f"predictions:{tmp_path}/nope.csv")
    pl.DataFrame({"id": ["a"], "pred": ["anger"]}).write_csv(tmp_path / "noid.csv")
    pl.DataFrame({"clip_id": ["a"], "raw_text": ["angry"]}).write_csv(tmp_path / "nopred.csv")
    for name, why in (("noid", "has no clip_id column"), ("nopred", "has neither a pred column")):
        cfg = _cfg(synth5, [{"adapter": f"predictions:{tmp_path}/{name}.csv"}], folds=(1,))
        engine = Engine(cfg, tmp_path / name, progress=False)
        engine.load_datasets()
        with pytest.raises(EmobenchError, match=rf"predictions file .*{name}\.csv {why}"):
            engine.execute()


def test_edited_file_makes_its_parts_stale(synth5, tmp_path):
    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    path = tmp_path / "p.csv"
    test.select("clip_id", pl.col("label").alias("pred")).write_csv(path)
    cfg = _cfg(synth5, [{"adapter": f"predictions:{path}", "name": "p"}], folds=(1,))
    _run(cfg, tmp_path / "r")
    assert Engine(cfg, tmp_path / "r", progress=False).cells[0].inputs is not None
    again = Engine(cfg, tmp_path / "r", progress=False)
    again.load_datasets()
    assert again.execute().parts_computed == 0  # unchanged: reused
    test.select("clip_id", pl.lit("anger").alias("pred")).write_csv(path)
    edited = Engine(cfg, tmp_path / "r", progress=False)
    edited.load_datasets()
    assert set(edited.describe()["state"].to_list()) == {"stale"}
    with pytest.raises(ConfigError):
        edited.execute()


# --------------------------------------------------------------------------- prior correction


def _scores_file(synth5, tmp_path, probabilities=False):
    index = _index(synth5)
    test = index.filter((pl.col("fold") == 1) & (pl.col("split") == "test")).sort("clip_id")
    rng = np.random.default_rng(7)
    labels = ["neutral", "happiness", "sadness", "anger"]
    s = rng.normal(size=(test.height, 4)) * 2.0
    if probabilities:
        s = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    table = pl.DataFrame(
        {"clip_id": test["clip_id"], **{f"score:{lb}": s[:, j] for j, lb in enumerate(labels)}}
    )
    table.write_csv(tmp_path / "s.csv")
    train = index.filter((pl.col("fold") == 1) & (pl.col("split") == "train"))
    return test, train, s, labels


def test_prior_correction_on_imported_scores_matches_hand_computation(synth5, tmp_path):
    test, train, s, labels = _scores_file(synth5, tmp_path)
    cfg = _cfg(
        synth5,
        [{"adapter": f"predictions:{tmp_path}/s.csv", "name": "s"}],
        folds=(1,),
        sweep={**ONE, "prior_correction": ["none", "logit-adjust", "batch-calibration"]},
    )
    _, _, run = _run(cfg, tmp_path / "r")
    preds = run.read_predictions()
    order = run.read_manifest()["datasets"]["synth"]["labels"]
    perm = [labels.index(lb) for lb in order]
    s = s[:, perm]
    counts = train.group_by("label").len()
    n = dict(zip(counts["label"], counts["len"], strict=True))
    prior = np.array([n.get(lb, 0) for lb in order], dtype=float) + 1e-9
    prior /= prior.sum()
    expected = {
        "none": s,
        "logit-adjust": s - np.log(prior)[None, :],
        "batch-calibration": s - s.mean(axis=0, keepdims=True),
    }
    for name, want in expected.items():
        sub = preds.filter(pl.col("prior_correction") == name).sort("clip_id")
        assert sub["clip_id"].to_list() == test["clip_id"].to_list()
        got = sub.select([f"score:{lb}" for lb in order]).to_numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        assert sub["pred"].to_list() == [order[i] for i in want.argmax(axis=1)]
    # logit adjustment moves at least one prediction here (a non-trivial check)
    a = preds.filter(pl.col("prior_correction") == "none").sort("clip_id")["pred"]
    b = preds.filter(pl.col("prior_correction") == "logit-adjust").sort("clip_id")["pred"]
    assert (a != b).any()


def test_probabilities_become_log_probabilities(synth5, tmp_path):
    _, _, p, labels = _scores_file(synth5, tmp_path, probabilities=True)
    cfg = _cfg(
        synth5,
        [{"adapter": f"predictions:{tmp_path}/s.csv", "options": {"scores": "probabilities"}}],
        folds=(1,),
    )
    _, _, run = _run(cfg, tmp_path / "r")
    got = run.read_predictions().sort("clip_id").select([f"score:{lb}" for lb in labels])
    np.testing.assert_allclose(got.to_numpy(), np.log(p), rtol=0, atol=1e-9)


def test_prior_correction_without_scores_is_one_line(synth5, tmp_path):
    from emobench.errors import EmobenchError

    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    model = [{"adapter": f"predictions:{tmp_path}/p{{fold}}.csv"}]
    sweep = {**ONE, "prior_correction": ["logit-adjust"]}
    cfg = _cfg(synth5, model, folds=(1,), sweep=sweep)  # no file yet: checked at run time
    test.select("clip_id", pl.col("label").alias("pred")).write_csv(tmp_path / "p1.csv")
    with pytest.raises(EmobenchError, match=r"has no score:<label> columns: prior correction"):
        _run(cfg, tmp_path / "r")
    with pytest.raises(ConfigError, match=r"models.0 .*'logit-adjust' needs scores, and .*p1.csv"):
        _cfg(synth5, model, folds=(1,), sweep=sweep)  # the file exists: at config load


def test_score_problems_are_reported_and_scores_decide(synth5, tmp_path):
    test, _, s, labels = _scores_file(synth5, tmp_path)
    table = pl.read_csv(tmp_path / "s.csv", schema_overrides={"clip_id": pl.Utf8})
    ids = table["clip_id"].to_list()
    kept = [j for j, lb in enumerate(labels) if lb != "sadness"]  # its column is misnamed
    best = [labels[kept[int(i)]] for i in s[:, kept].argmax(axis=1)]
    other = [labels[(labels.index(b) + 1) % 4] for b in best]
    true = test["label"].to_list()
    table = table.with_columns(
        # ids[0]: the pred disagrees with the scores; ids[1]: its pred is all it has (below)
        pl.Series("pred", [other[0], other[1], *best[2:]]),
        pl.Series("label", [*true[:-1], "neutral" if true[-1] != "neutral" else "anger"]),
        pl.col("score:anger").cast(pl.Utf8),
    )
    table = table.with_columns(  # ids[1]: a score that is not a number
        pl.when(pl.col("clip_id") == ids[1])
        .then(pl.lit("n/a"))
        .otherwise(pl.col("score:anger"))
        .alias("score:anger")
    )
    table = table.drop("score:sadness").with_columns(pl.lit(0.5).alias("score:sadnes"))
    table.write_csv(tmp_path / "s.csv")
    cfg = _cfg(synth5, [{"adapter": f"predictions:{tmp_path}/s.csv"}], folds=(1,))
    _, summary, run = _run(cfg, tmp_path / "r")
    assert summary.skipped == []
    report = json.loads(next((tmp_path / "r").rglob("imported/*.json")).read_text())
    got = {(p["problem"], p["clip_id"]) for p in report["problems"]}
    assert got == {
        ("pred-vs-scores", ids[0]),
        ("bad-score", ids[1]),
        ("label-mismatch", ids[-1]),
        ("unknown-score-label", None),
        ("missing-score-label", None),
    }
    detail = {p["problem"]: p["detail"] for p in report["problems"]}
    assert "'score:sadnes' ignored" in detail["unknown-score-label"]
    assert "did you mean 'sadness'?" in detail["unknown-score-label"]
    assert detail["missing-score-label"].startswith("no score:sadness column")
    preds = run.read_predictions().sort("clip_id")
    order = run.read_manifest()["datasets"]["synth"]["labels"]
    # the highest of the usable scores; ids[1] has none: the file's pred
    assert preds["pred"].to_list() == [best[0], other[1], *best[2:]]
    assert preds["score:sadness"].null_count() == preds.height
    assert preds.filter(pl.col("clip_id") == ids[1])[[f"score:{lb}" for lb in order]].row(0) == (
        None,
    ) * len(order)
    assert preds["label"].to_list() == true  # the dataset's labels, not the file's


# --------------------------------------------------------------------------- config


def test_sweep_over_an_imported_models_sampler_is_one_error_line(synth5, tmp_path):
    path = tmp_path / "p.csv"
    pl.DataFrame({"clip_id": ["x"], "pred": ["anger"]}).write_csv(path)
    model = {"adapter": f"predictions:{path}"}
    with pytest.raises(ConfigError) as err:
        _cfg(synth5, [model], sweep={"sampler": ["uniform:4,8"]})
    msg = str(err.value)
    assert "\n" not in msg
    assert "models.0" in msg and "one sampler" in msg and "uniform:4, uniform:8" in msg
    # the model's own override fixes it; a sweep over its order does not
    _cfg(synth5, [{**model, "sampler": ["uniform:16"]}], sweep={"sampler": ["uniform:4,8"]})
    with pytest.raises(ConfigError, match="one order"):
        _cfg(synth5, [model], sweep={**ONE, "order": ["original", "shuffle"]})
    with pytest.raises(ConfigError, match="one rebalancing"):
        _cfg(synth5, [{**model, "rebalancing": ["instance-balanced", "class-balanced"]}])
    with pytest.raises(ConfigError, match=r"2 seeds; put a \{seed\} placeholder"):
        _cfg(synth5, [model], sweep={**ONE, "seeds": [0, 1]})
    _cfg(
        synth5,
        [{"adapter": f"predictions:{tmp_path}/p{{seed}}.csv"}],
        sweep={**ONE, "seeds": [0, 1]},
    )


def test_per_model_sampler_and_order_overrides_expand_to_these_cells(synth5, tmp_path):
    from emobench.runner.plan import expand

    path = tmp_path / "p.csv"
    pl.DataFrame({"clip_id": ["x"], "pred": ["anger"]}).write_csv(path)
    cfg = _cfg(
        synth5,
        [
            {"adapter": "baseline:mean", "name": "m", "options": TINY},
            {
                "adapter": "baseline:gru",
                "name": "g",
                "options": TINY,
                "sampler": ["window:16"],
                "order": ["reverse", "original"],
            },
            {
                "adapter": f"predictions:{path}",
                "name": "p",
                "sampler": ["uniform:16"],
                "order": ["shuffle"],
            },
        ],
        sweep={"sampler": ["uniform:2,4"], "order": ["original", "shuffle"]},
    )
    got = [(c.model, c.sampler, c.order) for c in expand(cfg)]
    assert got == [
        ("m", "uniform:2", "original"),
        ("m", "uniform:2", "shuffle"),
        ("m", "uniform:4", "original"),
        ("m", "uniform:4", "shuffle"),
        ("g", "window:16", "reverse"),
        ("g", "window:16", "original"),
        ("p", "uniform:16", "shuffle"),
    ]
    with pytest.raises(ConfigError, match=r"models.0.order: .*'sideways'"):
        _cfg(synth5, [{"adapter": "baseline:mean", "order": ["sideways"]}])
    with pytest.raises(ConfigError, match=r"models.0.sampler"):
        _cfg(synth5, [{"adapter": "baseline:mean", "sampler": ["uniform:0"]}])


def test_label_aliases_map_the_files_own_names(synth5, tmp_path):
    """Another program's class indices (a Parquet integer column) are named by the options."""
    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    test = test.sort("clip_id")
    codes = {"happiness": 0, "sadness": 1, "neutral": 2, "anger": 3}
    table = test.select("clip_id", pl.col("label").replace_strict(codes).alias("pred"))
    table.write_parquet(tmp_path / "codes.parquet")
    aliases = {str(v): k for k, v in codes.items()}
    model = {"adapter": f"predictions:{tmp_path}/codes.parquet", "name": "codes"}
    cfg = _cfg(synth5, [{**model, "options": {"label_aliases": aliases}}], folds=(1,))
    engine, _, run = _run(cfg, tmp_path / "r")
    assert engine.warnings == []
    preds = run.read_predictions().sort("clip_id")
    assert preds["pred"].to_list() == test["label"].to_list()
    # without the aliases every row is an unknown label, counted as invalid and reported
    engine, _, run = _run(_cfg(synth5, [model], folds=(1,)), tmp_path / "r2")
    assert set(run.read_predictions()["pred"].to_list()) == {"invalid"}
    assert len(engine.warnings) == 1 and "12 unknown-label" in engine.warnings[0]
    with pytest.raises(ConfigError, match=r"models.0.options.label_aliases: label_aliases.HAP: "):
        _cfg(synth5, [{**model, "options": {"label_aliases": {"HAP": "glee"}}}])


def test_one_file_per_seed(synth5, tmp_path):
    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    test.select("clip_id", pl.lit("anger").alias("pred")).write_csv(tmp_path / "p0.csv")
    test.select("clip_id", pl.lit("neutral").alias("pred")).write_csv(tmp_path / "p1.csv")
    model = {"adapter": f"predictions:{tmp_path}/p{{seed}}.csv", "name": "p"}
    cfg = _cfg(synth5, [model], folds=(1,), sweep={**ONE, "seeds": [0, 1]})
    _, _, run = _run(cfg, tmp_path / "r")
    preds = run.read_predictions()
    got = {s: set(preds.filter(pl.col("seed") == s)["pred"].to_list()) for s in (0, 1)}
    assert got == {0: {"anger"}, 1: {"neutral"}}


def test_files_digest_follows_content_not_location(tmp_path):
    from emobench.models.predictions.adapter import files_digest

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for fold in (1, 2):
            pl.DataFrame({"clip_id": [f"c{fold}"], "pred": ["anger"]}).write_csv(
                tmp_path / folder / f"p{fold}.csv"
            )
    a = files_digest(f"predictions:{tmp_path}/a/p{{fold}}.csv", {})
    assert a == files_digest(f"predictions:{tmp_path}/b/p{{fold}}.csv", {})
    assert a == files_digest("predictions:p{fold}.csv", {"base_dir": str(tmp_path / "b")})
    (tmp_path / "b" / "p2.csv").write_text("clip_id,pred\nc2,neutral\n")
    assert a != files_digest(f"predictions:{tmp_path}/b/p{{fold}}.csv", {})
    (tmp_path / "a" / "p3.csv").write_text("clip_id,pred\nc3,neutral\n")  # a fold added
    assert a != files_digest(f"predictions:{tmp_path}/a/p{{fold}}.csv", {})


def test_dry_run_counts_no_model_call_for_imported_predictions(synth5, tmp_path):
    from emobench.runner.commands import model_call_counts

    test = _index(synth5).filter((pl.col("fold") == 1) & (pl.col("split") == "test"))
    path = tmp_path / "p.csv"
    test.select("clip_id", pl.col("label").alias("pred")).write_csv(path)
    cfg = _cfg(synth5, [{"adapter": f"predictions:{path}", "name": "p"}], folds=(1,))
    engine = Engine(cfg, tmp_path / "r", progress=False)
    engine.load_datasets()
    (st,) = model_call_counts(engine)
    assert (st["parts"], st["test_clips"], st["model_calls"]) == (1, test.height, 0)


def test_paths_with_glob_characters_are_read_as_written(original, synth5, tmp_path):
    """polars reads a path as a glob unless told not to: a folder named ``x [1]`` found no
    file. Dataset, predictions files, run folder and cache under such names give the same
    metrics, and the finished run opens."""
    import shutil

    from emobench.results import open_run

    data = tmp_path / "data [v1]"
    shutil.copytree(synth5, data)
    preds = original.read_predictions().filter(pl.col("prior_correction") == "none")
    labels = original.read_manifest()["datasets"]["synth"]["labels"]
    cols = ["clip_id", "pred", "n_frames", *[f"score:{lb}" for lb in labels]]
    files = tmp_path / "preds [a]*?"
    files.mkdir()
    for fold in (1, 2):
        preds.filter(pl.col("fold") == fold).select(cols).write_csv(files / f"m_{fold}.csv")
    preds.select(["fold", *cols]).write_parquet(files / "m.parquet")
    imports = [
        {"adapter": f"predictions:{files}/m_{{fold}}.csv", "name": "csv"},
        {"adapter": f"predictions:{files}/m.parquet", "name": "pq"},
    ]
    cfg = _cfg(data, imports, cache={"dir": str(tmp_path / "cache [3]")})
    out = tmp_path / "runs [2]" / "imp"
    _, summary, _ = _run(cfg, out)
    assert summary.skipped == []
    run = open_run(out)
    ref = {k: v for k, v in _values(original.read_metrics(), "mean").items() if k[0] == "none"}
    for model in ("csv", "pq"):
        assert _values(run.read_metrics(), model) == ref
    _run(cfg, out)  # a second run reads its finished parts back from the same folder
    assert open_run(out).read_predictions().height == run.read_predictions().height
