"""Results that cannot go stale or be mixed, damaged files repaired, one run per folder.

Each case reproduces a way results went stale or a run broke: a finished run, then
one change (to the data, the config, the code, a file of the run folder), then a rerun.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import polars as pl
import pytest
from conftest import make_synth

from emobench.config import ConfigError, validate_config
from emobench.results import RunFolder
from emobench.runner.execute import Engine, OutputFolderError
from emobench.runner.lock import PID_FILE, RunLock, RunLockedError

TINY = {"frame_size": 32, "encoder": {"widths": [8]}}
TRAIN = {"epochs": 1, "patience": 1, "batch_size": 16, "crt_epochs": 1, "encoder_frames": 2}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=28, n_test=10, seed=5)


def _cfg(root, **extra):
    data = {
        "name": "resume",
        "datasets": [{"name": "synth", "root": str(root)}],
        "models": [
            {"adapter": "baseline:mean", "name": "mean", "options": TINY},
            {"adapter": "baseline:gru", "name": "gru", "options": TINY},
        ],
        "sweep": {"sampler": ["uniform:2,4"]},
        "train": TRAIN,
        "device": "cpu",
        "metrics": {"n_resamples": 20},
        **extra,
    }
    return validate_config(data)


def _run(cfg, out, **kw):
    engine = Engine(cfg, out, progress=False, **kw)
    engine.load_datasets()
    return engine, engine.execute()


def _preds(out):
    df = RunFolder(out).read_predictions()
    cols = ["cell_id", "fold", "clip_id", "label", "pred"]
    cols += [c for c in df.columns if c.startswith("score:")]
    return df.select(cols).sort(["cell_id", "fold", "clip_id"])


@pytest.fixture(scope="module")
def reference(synth_root, tmp_path_factory):
    """An uninterrupted run: what every resumed or repaired run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "run"
    _, summary = _run(_cfg(synth_root), out)
    assert summary.parts_total == 4 and summary.parts_computed == 4
    return out


def _copy_run(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


# ----------------------------------------------------------------------------- stale


def test_edited_label_is_refused_then_recomputed(synth_root, reference, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    out = _copy_run(reference, tmp_path)
    ann = pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    test = ann.filter(pl.col("split") == "test")
    victim, old = test["clip_id"][0], test["label"][0]
    new = next(lb for lb in test["label"].unique().to_list() if lb != old)
    ann = ann.with_columns(
        pl.when(pl.col("clip_id") == victim).then(pl.lit(new)).otherwise("label").alias("label")
    )
    ann.write_csv(root / "annotations.csv")
    cfg = _cfg(root)
    # the copied run's parts were made from synth_root's annotations
    with pytest.raises(ConfigError, match="dataset annotations changed.*--recompute"):
        _run(cfg, out)
    assert _preds(out).equals(_preds(reference))  # nothing was touched
    manifest = RunFolder(out).read_manifest()
    assert manifest == RunFolder(reference).read_manifest()
    _, s = _run(cfg, out, recompute=True)
    assert s.parts_computed == 4
    got = _preds(out).filter(pl.col("clip_id") == victim)["label"].unique().to_list()
    assert got == [new]


def test_deleted_plan_and_other_config_is_refused(synth_root, reference, tmp_path):
    out = _copy_run(reference, tmp_path)
    (out / "plan.json").unlink()
    cfg = _cfg(synth_root, train={**TRAIN, "batch_size": 8})
    with pytest.raises(ConfigError, match=r"train.batch_size: 16 → 8"):
        _run(cfg, out)
    assert not (out / "plan.json").exists()  # refused before writing anything


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"models.0.options.crop": 24}, "models? changed|settings changed"),
        ({"limit": 5}, "settings changed"),
        ({"video.backend": "pyav"}, "settings changed"),
    ],
)
def test_setting_changes_are_stale(synth_root, reference, tmp_path, change, reason):
    from emobench.config import apply_overrides

    out = _copy_run(reference, tmp_path)
    base = _cfg(synth_root).model_dump(mode="json")
    if "video.backend" in change and "video" not in base:
        pytest.skip("no video section in this config version")
    sets = [f"{k}={json.dumps(v)}" for k, v in change.items()]
    cfg = validate_config(apply_overrides(base, sets))
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    states = set(engine.describe()["state"].to_list())
    assert "stale" in states
    with pytest.raises(ConfigError, match=reason):
        engine.execute()


def test_touched_media_and_changed_code_are_stale(synth_root, reference, tmp_path, monkeypatch):
    import emobench.runner.parts as parts

    root = tmp_path / "data"
    shutil.copytree(synth_root, root, copy_function=shutil.copy2)  # keeps mtimes
    out = _copy_run(reference, tmp_path)
    engine = Engine(_cfg(root), out, progress=False)
    engine.load_datasets()
    assert set(engine.describe()["state"].to_list()) == {"done"}  # same content, moved
    video = next((root / "videos").glob("*.mp4"))
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    with pytest.raises(ConfigError, match="media files changed"):
        _run(_cfg(root), out)
    monkeypatch.setattr(
        parts, "code_version", lambda: {"emobench": "0.1.0", "source": "0123456789abcdef"}
    )
    out2 = _copy_run(reference, tmp_path / "b")
    with pytest.raises(ConfigError, match="emobench code changed"):
        _run(_cfg(synth_root), out2)


def test_new_cells_extend_a_folder_without_touching_finished_ones(synth_root, reference, tmp_path):
    out = _copy_run(reference, tmp_path)
    cfg = _cfg(synth_root, sweep={"sampler": ["uniform:2,4,8"]})
    _, s = _run(cfg, out)
    assert (s.parts_done_before, s.parts_computed) == (4, 2)
    both = _preds(out).filter(pl.col("cell_id").str.contains("uniform-8").not_())
    assert both.equals(_preds(reference))


# ----------------------------------------------------------------------------- damaged


def _truncate(p):
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _empty(p):
    p.write_bytes(b"")


def _garbage(p):
    p.write_bytes(b"\x00garbage{" * 7)


@pytest.mark.parametrize(
    ("target", "damage", "warning"),
    [
        ("parts/*mean*uniform-2*.parquet", _truncate, "damaged result part"),
        ("parts/*gru*uniform-4*.parquet", _empty, "damaged result part"),
        ("parts/*mean*uniform-4*.skipped.json", _garbage, "damaged result part"),
        ("plan.json", _garbage, "damaged plan.json"),
        ("checkpoints/**/encoder-*.safetensors", _truncate, "damaged checkpoint"),
    ],
)
def test_damaged_files_are_reported_removed_and_recomputed(
    synth_root, reference, tmp_path, target, damage, warning
):
    out = _copy_run(reference, tmp_path)
    victim = sorted(out.glob(target))[0]
    damage(victim)
    if victim.suffix == ".safetensors":  # a checkpoint is only read when a part is missing
        for p in (out / "parts").glob("*.parquet"):
            p.unlink()
    engine, _ = _run(_cfg(synth_root), out)
    hits = [w for w in engine.warnings if warning in w]
    assert len(hits) == 1, engine.warnings
    assert _preds(out).equals(_preds(reference))
    _, again = _run(_cfg(synth_root), out)  # repaired: the next run computes nothing
    assert again.parts_computed == 0


# ----------------------------------------------------------------------------- interruptions


@pytest.mark.parametrize("stop_after", [1, 3])
def test_interrupted_runs_resume_to_the_uninterrupted_predictions(
    synth_root, reference, tmp_path, stop_after
):
    seen = []

    def stop(cell, fold):
        seen.append(cell.cell_id)
        if len(seen) == stop_after:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(_cfg(synth_root), out, on_part=stop)
    assert len(list((out / "parts").glob("*.parquet"))) == stop_after
    assert not (out / PID_FILE).exists()  # released on the way out
    _, s = _run(_cfg(synth_root), out)
    assert (s.parts_done_before, s.parts_computed) == (stop_after, 4 - stop_after)
    assert _preds(out).equals(_preds(reference))


def test_killed_run_leaves_temp_files_and_pid_that_the_next_run_cleans(
    synth_root, reference, tmp_path
):
    out = _copy_run(reference, tmp_path)
    victim = sorted((out / "parts").glob("*.parquet"))[0]
    victim.unlink()
    stray = out / "parts" / f".{victim.name}.abc123.tmp"
    stray.write_bytes(b"half a part")
    (out / PID_FILE).write_text(json.dumps({"pid": 2**22 + 12345, "started": "yesterday"}))
    engine, s = _run(_cfg(synth_root), out)
    assert s.parts_computed == 1
    assert not stray.exists()
    msg = [w for w in engine.warnings if "stopped without finishing" in w]
    assert len(msg) == 1 and str(2**22 + 12345) in msg[0] and "1 stray" in msg[0]
    assert _preds(out).equals(_preds(reference))


def test_one_run_per_folder(synth_root, reference, tmp_path):
    out = _copy_run(reference, tmp_path)
    busy = rf"in use by another emobench run \(PID {os.getpid()}"
    with RunLock(out), pytest.raises(RunLockedError, match=busy):
        _run(_cfg(synth_root), out)
    _run(_cfg(synth_root), out)  # free again


# ----------------------------------------------------------------------------- --out


def test_out_that_is_a_file(synth_root, tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        _run(_cfg(synth_root), out)
    with pytest.raises(OutputFolderError, match="cannot create results folder"):
        _run(_cfg(synth_root), out / "sub")


def test_read_only_out(synth_root, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(out) else real(p, m))
    with pytest.raises(OutputFolderError, match="is not writable"):
        _run(_cfg(synth_root), out)
    assert list(out.iterdir()) == []


def test_full_disk_is_one_line_and_keeps_finished_parts(
    synth_root, reference, tmp_path, monkeypatch
):
    import emobench.runner.execute as execute

    out = tmp_path / "full"
    real = execute.write_part
    calls = []

    def write_part(path, df, stamp, info=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, df, stamp, info)

    monkeypatch.setattr(execute, "write_part", write_part)
    with pytest.raises(OutputFolderError, match="No space left on device.*rerun resumes"):
        _run(_cfg(synth_root), out)
    assert len(list((out / "parts").glob("*.parquet"))) == 2
    assert not list(out.rglob("*.tmp")) and not (out / "predictions.parquet").exists()
    monkeypatch.setattr(execute, "write_part", real)
    _, s = _run(_cfg(synth_root), out)
    assert s.parts_done_before == 2
    assert _preds(out).equals(_preds(reference))


def test_cli_errors_are_one_line(synth_root, tmp_path):
    from typer.testing import CliRunner

    from emobench.cli import app

    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(
        'name = "x"\ndevice = "cpu"\n[[datasets]]\nname = "synth"\n'
        f'root = "{synth_root}"\n[[models]]\nadapter = "baseline:mean"\n'
    )
    out = tmp_path / "file"
    out.write_text("x")
    res = CliRunner().invoke(app, ["run", str(cfg_path), "--out", str(out), "--no-progress"])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "is a file, not a folder" in lines[-1]
    assert "Traceback" not in res.output


# ----------------------------------------------------------------------------- stamps


def _json_values():
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "b", "epochs", "lr"]), inner, max_size=3)
        ),
        max_leaves=8,
    )


def test_a_stamp_is_reused_only_when_everything_matches():
    """Any difference in settings, data, media or code makes a part stale, with a reason."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from emobench.runner.parts import make_stamp, stamp_change

    code = st.fixed_dictionaries({"emobench": st.just("0.1.0"), "source": st.text(max_size=2)})
    stamp = st.builds(
        make_stamp,
        st.dictionaries(st.sampled_from(["cell", "model", "train", "limit"]), _json_values()),
        st.text(max_size=2),
        st.text(max_size=2),
        code,
    )

    @settings(max_examples=300, deadline=None)
    @given(stamp, stamp)
    def check(a, b):
        why = stamp_change(a, b)
        assert (why is None) == (a == b)
        assert stamp_change(a, dict(a)) is None
        if why is not None:
            assert "\n" not in why and why

    check()
