"""Same command, same predictions; nothing stale survives ``--recompute``.

Each case changes one input of a finished run (the bytes of training videos, the decoding
backend, the code version, the cache's state) and checks the rerun against a fresh run of
the changed inputs, score for score with exact equality: the runs are on one machine at
one thread count, and every path they take is bit-identical (README, "What is
bit-identical").
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

from emobench.config import ConfigError, validate_config
from emobench.results import RunFolder
from emobench.runner.execute import DecodeFailureError, Engine
from emobench.video.frames import available_backends, decode_stats, reset_decode_stats

#: 64 px clips decoded at their native size: the pair decord decodes bit-identically to
#: PyAV on the CPUs tried (scaled sizes differ, and decord fails on 32 px on some CPUs).
SIDE = 64
#: an encoder whose CPU kernels change below 16 frames a call (widths [8]: below 6)
TINY = {"frame_size": SIDE, "crop": 48, "encoder": {"widths": [16, 32]}}
TRAIN = {"epochs": 1, "patience": 1, "batch_size": 16, "crt_epochs": 1, "encoder_frames": 2}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, size=SIDE, profile="exp:3", n_train=24, n_test=10, seed=3)


def _cfg(root, cache, **extra):
    data = {
        "name": "repro",
        "datasets": [{"name": "synth", "root": str(root)}],
        "models": [
            {"adapter": "baseline:mean", "name": "mean", "options": TINY},
            {"adapter": "baseline:gru", "name": "gru", "options": TINY},
        ],
        "sweep": {"sampler": ["uniform:2,4"]},
        "train": TRAIN,
        "device": "cpu",
        "cache": {"dir": str(cache)},
        "metrics": {"n_resamples": 10},
        **extra,
    }
    return validate_config(data)


def _run(cfg, out, **kw):
    engine = Engine(cfg, out, progress=False, **kw)
    engine.load_datasets()
    return engine, engine.execute()


def _scores(out) -> pl.DataFrame:
    df = RunFolder(out).read_predictions()
    cols = ["cell_id", "fold", "clip_id", "label", "pred"]
    cols += sorted(c for c in df.columns if c.startswith("score:"))
    return df.select(cols).sort(["cell_id", "fold", "clip_id"])


@pytest.fixture(scope="module")
def reference(synth_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("ref")
    _run(_cfg(synth_root, base / "cache"), base / "run")
    return base


def test_three_fresh_auto_runs_and_a_pyav_run_give_identical_scores(
    synth_root, reference, tmp_path
):
    """``auto`` is deterministic and gives PyAV's exact pixels: three runs with fresh
    caches, and a ``--backend pyav`` run, score every clip identically."""
    ref = _scores(reference / "run")
    decoders: set[str] = set()
    for k in range(3):
        reset_decode_stats(forget_checks=True)
        _run(_cfg(synth_root, tmp_path / f"c{k}"), tmp_path / f"r{k}")
        decoders |= set(decode_stats().clips)
        assert _scores(tmp_path / f"r{k}").equals(ref)
    if "decord" in available_backends():  # every pair was decided by bit-identity alone
        checks = RunFolder(tmp_path / "r2").read_manifest()["decoding"]["this_run"]["checks"]
        for c in checks:
            identical = c["result"] == "decord bit-identical"
            assert identical == (c["max_diff"] == 0 and c["clips"] >= 3), c
    cfg = _cfg(synth_root, tmp_path / "cp", video={"backend": "pyav"})
    _run(cfg, tmp_path / "rp")
    assert _scores(tmp_path / "rp").equals(ref)
    assert decoders  # something was decoded (no stale cache served it all)


def test_partly_damaged_shared_cache_gives_identical_scores(synth_root, reference, tmp_path):
    """A shared cache with one clip's features missing and another's damaged: the rerun
    encodes those few frames alone (a call of under 16 frames without the padding) and
    still scores exactly as the reference."""
    cache = tmp_path / "cache"
    shutil.copytree(reference / "cache", cache)
    files = sorted((cache / "features").rglob("*.npz"))
    assert len(files) > 4
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:50])
    _, summary = _run(_cfg(synth_root, cache), tmp_path / "run")
    assert summary.parts_computed == 4
    assert _scores(tmp_path / "run").equals(_scores(reference / "run"))


def test_resume_after_lost_parts_gives_identical_scores(synth_root, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference / "run", out)
    for p in sorted((out / "parts").glob("*gru*"))[:2]:
        p.unlink()
    _, summary = _run(_cfg(synth_root, reference / "cache"), out)
    assert summary.parts_computed == 1 or summary.parts_computed == 2
    assert _scores(out).equals(_scores(reference / "run"))


def _copy_data(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root, copy_function=shutil.copy2)
    return root


def _train_videos(root):
    ann = pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    train = ann.filter(pl.col("split") == "train").sort("clip_id")
    return [root / p for p in train["path"].to_list()], train["label"].to_list()


def _recompute_equals_fresh(root, out, cache, tmp_path, **extra):
    """``--recompute`` on the finished run ``out`` equals a fresh run on the same inputs."""
    with pytest.raises(ConfigError, match="--recompute"):
        _run(_cfg(root, cache, **extra), out)
    _run(_cfg(root, cache, **extra), out, recompute=True)
    _run(_cfg(root, tmp_path / "fresh-cache", **extra), tmp_path / "fresh")
    assert _scores(out).equals(_scores(tmp_path / "fresh"))


def test_swapped_training_video_bytes_retrain(synth_root, tmp_path):
    """Training videos of two classes swap their bytes: the checkpoints are retrained."""
    root = _copy_data(synth_root, tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    _run(_cfg(root, cache), out)
    before = _scores(out)
    videos, labels = _train_videos(root)
    pairs = [(i, j) for i in range(len(videos)) for j in range(i) if labels[i] != labels[j]]
    swapped = 0
    for i, j in pairs[:: max(1, len(pairs) // 6)][:6]:
        a, b = videos[i].read_bytes(), videos[j].read_bytes()
        videos[i].write_bytes(b)
        videos[j].write_bytes(a)
        swapped += 1
    assert swapped >= 3
    ckpts = {p.name for p in (out / "checkpoints").rglob("*.safetensors")}
    _recompute_equals_fresh(root, out, cache, tmp_path)
    after = {p.name for p in (out / "checkpoints").rglob("*.safetensors")}
    assert after - ckpts, "no new checkpoint: the old ones were reused"
    assert not _scores(out).equals(before)


@pytest.mark.skipif("decord" not in available_backends(), reason="decord is not installed")
def test_another_backend_keys_new_checkpoints(synth_root, tmp_path):
    """``--backend decord`` after ``pyav``: other pixels, so other checkpoint folders (the
    same file name never holds other weights) and a recompute equal to a fresh run."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    _run(_cfg(synth_root, cache, video={"backend": "pyav"}), out)
    folders = {p.parent for p in (out / "checkpoints").rglob("*.safetensors")}
    _recompute_equals_fresh(synth_root, out, cache, tmp_path, video={"backend": "decord"})
    new = {p.parent for p in (out / "checkpoints").rglob("*.safetensors")} - folders
    assert new and all('"frames": "decord"' in (f / "inputs.json").read_text() for f in new)


def test_changed_code_retrains(synth_root, tmp_path, monkeypatch):
    import sys

    import emobench.provenance as provenance

    out, cache = tmp_path / "run", tmp_path / "cache"
    _run(_cfg(synth_root, cache), out)
    first = {p.parent for p in (out / "checkpoints").rglob("*.safetensors")}
    other = {"emobench": "0.1.0", "source": "0123456789abcdef"}
    real = provenance.code_version
    # every module that bound the function by name (``from emobench.provenance import ...``)
    for name, module in list(sys.modules.items()):
        if name.startswith("emobench") and getattr(module, "code_version", None) is real:
            monkeypatch.setattr(module, "code_version", lambda: other)
    with pytest.raises(ConfigError, match="emobench code changed"):
        _run(_cfg(synth_root, cache), out)
    _run(_cfg(synth_root, cache), out, recompute=True)
    second = {p.parent for p in (out / "checkpoints").rglob("*.safetensors")} - first
    assert second and all(other["source"] in (f / "inputs.json").read_text() for f in second)
    features = {p.name for p in (cache / "features").iterdir()}
    assert any(other["source"] in name for name in features)


def test_deleted_training_videos_refuse_under_recompute_as_fresh(synth_root, tmp_path):
    root = _copy_data(synth_root, tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    _run(_cfg(root, cache), out)
    videos, _ = _train_videos(root)
    for v in videos[: len(videos) // 2]:
        v.unlink()
    with pytest.raises(DecodeFailureError, match="training clips.*could not be read"):
        _run(_cfg(root, tmp_path / "c2"), tmp_path / "fresh")
    with pytest.raises(DecodeFailureError, match="training clips.*could not be read"):
        _run(_cfg(root, cache), out, recompute=True)


def _rewrite_same_size_and_time(video) -> None:
    """Change bytes of a video's payload in place, restoring its size and times."""
    st = video.stat()
    data = bytearray(video.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(255 - b for b in data[mid : mid + 8])
    video.write_bytes(bytes(data))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert video.stat().st_size == st.st_size and video.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("mode", ["stat", "content"])
def test_content_fingerprint_sees_a_same_size_same_time_rewrite(synth_root, tmp_path, mode):
    root = _copy_data(synth_root, tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    cache_opts = {"fingerprint": mode}
    cfg = _cfg(root, cache)
    cfg = cfg.model_copy(update={"cache": cfg.cache.model_copy(update=cache_opts)})
    _run(cfg, out)
    test = pl.read_csv(root / "annotations.csv").filter(pl.col("split") == "test")
    _rewrite_same_size_and_time(root / test["path"][0])
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    states = set(engine.describe()["state"].to_list())
    assert states == ({"stale"} if mode == "content" else {"done"})


def test_file_token_modes(tmp_path):
    from emobench.provenance import file_token, media_fingerprint

    f = tmp_path / "a.mp4"
    f.write_bytes(b"x" * 100)
    st = f.stat()
    stat_tok, content_tok = file_token(f), file_token(f, "content")
    import hashlib

    assert content_tok == hashlib.blake2b(b"x" * 100, digest_size=16).hexdigest()
    assert stat_tok == f"100:{st.st_mtime_ns}"
    f.write_bytes(b"y" * 100)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_token(f) == stat_tok and file_token(f, "content") != content_tok
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert file_token(f) != stat_tok  # a touch: stat sees it, content does not
    assert file_token(f, "content") == hashlib.blake2b(b"y" * 100, digest_size=16).hexdigest()
    assert file_token(tmp_path / "gone") == "missing"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert file_token(loop).startswith("unreadable")
    d = tmp_path / "frames"
    d.mkdir()
    (d / "1.jpg").write_bytes(b"a")
    before = file_token(d, "content")
    (d / "1.jpg").write_bytes(b"b")  # a frame rewritten in place: the folder's own mtime stays
    assert file_token(d, "content") != before
    fp = media_fingerprint([("c1", str(f))], "content")
    assert fp == media_fingerprint([("c1", str(f))], "content") and len(fp) == 16
    assert np.all([len(file_token(f, m)) > 0 for m in ("stat", "content")])


def test_model_fingerprints_see_a_change_in_the_middle_of_the_weights(tmp_path):
    """hf:/hfvideo: model folders and maedfer: weights files are fingerprinted by all of
    their bytes: a byte changed in the middle of a 3 MiB weights file (a layer re-trained
    and saved at the same size) is another model; a copy elsewhere, with other times, is
    the same one."""
    from emobench.models.hf.loading import model_hash
    from emobench.models.maedfer.adapter import _fingerprint

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "x"}')
    weights = folder / "model.safetensors"
    blob = bytearray(np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8))
    weights.write_bytes(bytes(blob))
    before, before_file = model_hash(folder), _fingerprint(weights)
    copy = tmp_path / "copy" / "m"
    shutil.copytree(folder, copy)
    os.utime(copy / "model.safetensors", (1, 1))
    assert model_hash(copy) == before and _fingerprint(copy / "model.safetensors") == before_file
    blob[len(blob) // 2] ^= 1  # one bit, 1.5 MiB from either end
    weights.write_bytes(bytes(blob))
    assert model_hash(folder) != before
    assert _fingerprint(weights) != before_file
