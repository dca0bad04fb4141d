"""Data-parallel runs: ranks share one folder's work and give a single process's results.

The multi-process cases start real rank processes (``python -m emobench run`` with the
environment torchrun sets, or ``--num-processes``) on a tiny generated set; the reference
is a single in-process run with the CPU thread count each of two ranks gets, so that scores
must agree bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import make_synth

from emobench.config import validate_config
from emobench.errors import EmobenchError
from emobench.results import RunFolder
from emobench.runner.distributed import (
    DistributedError,
    Rank,
    merge_counts,
    rank_device,
    rank_from_env,
    shard,
)
from emobench.runner.execute import Engine
from emobench.runner.launcher import free_port, launch_env
from emobench.runner.lock import RankLock, RunLock, RunLockedError

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"epochs": 1, "patience": 1, "batch_size": 16, "crt_epochs": 1, "encoder_frames": 2}
#: 2 models × 2 seeds = 4 groups (units) of 2 cells each: 8 parts on the one fold
CONFIG = """
name = "dist"
device = "cpu"
[[datasets]]
name = "synth"
root = "{root}"
[[models]]
adapter = "baseline:mean"
name = "mean"
options = {{frame_size = 32, encoder = {{widths = [8]}}}}
[[models]]
adapter = "baseline:gru"
name = "gru"
options = {{frame_size = 32, encoder = {{widths = [8, 8]}}}}
[sweep]
sampler = ["uniform:2,4"]
seeds = [0, 1]
[train]
epochs = 1
patience = 1
batch_size = 16
crt_epochs = 1
encoder_frames = 2
[metrics]
n_resamples = 20
"""


# ----------------------------------------------------------------------------- pure parts


def test_shard_hand_checked():
    # equal weights alternate; ties go to the lower rank
    assert shard([2, 2, 2, 2], 2) == [[0, 2], [1, 3]]
    # longest first: the heavy unit alone balances the five light ones
    assert shard([5, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5]]
    # 0→r0 (3), 1→r1 (3), 2→r0 (5), 3→r1 (5), 4→r0 (7)
    assert shard([3, 3, 2, 2, 2], 2) == [[0, 2, 4], [1, 3]]
    assert shard([1], 3) == [[0], [], []]
    assert shard([], 2) == [[], []]
    assert shard([4, 1, 2], 1) == [[0, 1, 2]]
    with pytest.raises(ValueError):
        shard([1], 0)


def test_shard_is_disjoint_covering_balanced_and_deterministic():
    rng = random.Random(7)
    for _ in range(200):
        weights = [rng.randint(1, 9) for _ in range(rng.randint(0, 30))]
        world = rng.randint(1, 8)
        shares = shard(weights, world)
        flat = sorted(i for s in shares for i in s)
        assert flat == list(range(len(weights)))  # disjoint and covering
        assert all(s == sorted(s) for s in shares)  # the engine's order inside a share
        if weights:
            loads = [sum(weights[i] for i in s) for s in shares]
            assert max(loads) < sum(weights) / world + max(weights)
        assert shard(list(weights), world) == shares


def test_rank_from_env_and_device():
    assert rank_from_env({}) == Rank(0, 1, 0, 1)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    r = rank_from_env(env)
    assert (r.rank, r.world, r.local_rank, r.local_world, r.is_main) == (3, 4, 1, 2, False)
    assert r.prefix == "[rank 3/4] "
    with pytest.raises(DistributedError, match="RANK=4 is not in 0..WORLD_SIZE-1"):
        rank_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(DistributedError, match="WORLD_SIZE='two' is not an integer"):
        rank_from_env({"WORLD_SIZE": "two"})
    assert rank_device("cpu", r) == "cpu"
    assert rank_device("cuda:0", r) == "cuda:0"  # an explicit device is the user's choice
    assert rank_device("auto", Rank()) == "auto"  # a single process keeps its setting


def test_rank_device_on_gpus(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device("auto", Rank(1, 4, 1, 4)) == "cuda:1"
    assert rank_device("cuda", Rank(2, 4, 2, 4)) == "cuda:0"  # 4 local ranks on 2 GPUs
    assert rank_device("cpu", Rank(1, 4, 1, 4)) == "cpu"


def test_merge_counts_and_launch_env():
    a = {"fit": 1.5, "clips": {"pyav": 3}, "reasons": ["x"], "backend": "auto"}
    b = {"fit": 2.0, "clips": {"pyav": 1, "decord": 2}, "reasons": ["x", "y"], "score": 1}
    assert merge_counts(a, b) == {
        "fit": 3.5,
        "clips": {"pyav": 4, "decord": 2},
        "reasons": ["x", "y"],
        "backend": "auto",
        "score": 1,
    }
    env = launch_env(2, 1, 12345, base={"PATH": "/bin"})
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["MASTER_PORT"]) == (
        "1",
        "1",
        "2",
        "12345",
    )
    assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert launch_env(2, 0, 1, base={"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_a_launch_shares_its_folder_and_refuses_independent_runs(tmp_path, synth_root):
    out = tmp_path / "run"
    out.mkdir()
    busy = r"in use by another emobench run"
    with RunLock(out, launch="L1"):  # rank 0 of launch L1
        # rank 1 of the same launch joins; the same rank twice is refused
        with RankLock(out, "L1", 1), pytest.raises(RunLockedError, match="already taken"):
            RankLock(out, "L1", 1).__enter__()
        with pytest.raises(RunLockedError, match="not held by this launch"):
            RankLock(out, "L2", 1).__enter__()
        with pytest.raises(RunLockedError, match=busy):  # a second, independent run
            _engine(synth_root, out).execute()
    # rank 0 is gone but rank 1 still works: a new run must not start beside it
    rank0, rank1 = RunLock(out, launch="L1"), RankLock(out, "L1", 1)
    rank0.__enter__()
    rank1.__enter__()
    rank0.__exit__()
    try:
        with pytest.raises(RunLockedError, match=busy + r" \(rank 1 of launch"):
            RunLock(out).__enter__()
    finally:
        rank1.__exit__()
    with RunLock(out):  # free again
        pass


def _state(folder, rank, launch, state, **extra):
    from emobench.io import write_json_atomic

    info = {"launch": launch, "rank": rank, "pid": 40 + rank, "host": "h", "state": state}
    write_json_atomic(folder / ".emobench-launch" / f"rank-{rank}.json", {**info, **extra})


def test_rank_zero_waits_for_done_and_names_a_failed_or_silent_rank(tmp_path):
    from emobench.runner.distributed import Launch, RankLostError

    launch = Launch(Rank(0, 3), tmp_path, timeout=0.3)  # no process group needed here
    _state(tmp_path, 1, launch.id, "done", beat=3, summary={"parts": 2, "warnings": ["w"]})
    _state(tmp_path, 2, launch.id, "failed", beat=1, parts=1, error="boom")
    with pytest.raises(RankLostError, match=r"^rank 2 of 3 \(PID 42 on h, 1 part\(s\) written\)"):
        launch.wait_for_ranks(poll=0.01)
    # a rank whose heartbeat stays still is given up after the timeout
    _state(tmp_path, 2, launch.id, "working", beat=7, parts=0)
    t = time.monotonic()
    with pytest.raises(RankLostError, match="rank 2 of 3 .* no sign of life for 0.3 s"):
        launch.wait_for_ranks(poll=0.01)
    assert 0.3 <= time.monotonic() - t < 5
    # a file left by another launch counts as no report at all
    _state(tmp_path, 2, "other", "done", summary={})
    with pytest.raises(RankLostError, match=r"rank 2 of 3 \(never reported\)"):
        launch.wait_for_ranks(poll=0.01)
    _state(tmp_path, 2, launch.id, "done", summary={"parts": 1})
    assert launch.wait_for_ranks(poll=0.01) == {
        1: {"parts": 2, "warnings": ["w"]},
        2: {"parts": 1},
    }


def test_shared_feature_cache_readers_never_see_a_partial_file(tmp_path):
    """Ranks share ``<cache>/features``: writers of one clip race, a reader must get one
    writer's whole entry (atomic rename), never a mix or a torn file."""
    import threading

    import numpy as np

    from emobench.runner.cache import FeatureCache

    cache = FeatureCache(tmp_path)
    entries = {n: (np.arange(n), np.full((n, 64), float(n), dtype=np.float32)) for n in (3, 300)}
    stop = threading.Event()

    def writer(n):
        while not stop.is_set():
            cache.store("k", "abcdef", *entries[n])

    seen = set()
    threads = [threading.Thread(target=writer, args=(n,)) for n in entries]
    for t in threads:
        t.start()
    try:
        reads, t0 = 0, time.monotonic()
        while (reads < 200 or len(seen) < 2) and time.monotonic() - t0 < 10:
            reads += 1
            got = cache.load("k", "abcdef")
            if got is None:  # a torn or missing file reads as None
                assert not seen, "the entry vanished or was torn while being replaced"
                continue  # not written yet
            idx, feats = got
            n = len(idx)
            assert n in entries and np.array_equal(idx, entries[n][0])
            assert np.array_equal(feats, entries[n][1])
            seen.add(n)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen == set(entries)  # both writers' entries were read while being replaced
    assert not list(tmp_path.rglob("*.tmp"))


# ----------------------------------------------------------------------------- real ranks


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_synth(root, profile="exp:3", n_train=24, n_test=8, seed=5)
    # one undecodable test clip: every part lists a skip, whichever rank wrote it
    ann = pl.read_csv(root / "annotations.csv", schema_overrides={"clip_id": pl.Utf8})
    victim = ann.filter(pl.col("split") == "test").sort("clip_id").row(0, named=True)
    (root / victim["path"]).write_bytes(b"this is not a video" * 10)
    return root


@pytest.fixture(scope="module")
def config(synth_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "dist.toml"
    path.write_text(CONFIG.format(root=synth_root))
    return path


def _engine(synth_root, out):
    import tomllib

    data = tomllib.loads(CONFIG.format(root=synth_root))
    engine = Engine(validate_config(data), out, progress=False)
    engine.load_datasets()
    return engine


def _single(synth_root, out):
    """A one-process run with the CPU threads each of two ranks gets (scores then agree
    bit for bit)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(launch_env(2, 0, 1)["OMP_NUM_THREADS"]))  # what a rank gets
    try:
        return _engine(synth_root, out).execute()
    finally:
        torch.set_num_threads(threads)


def _preds(out):
    df = RunFolder(out).read_predictions()
    return df.drop("latency_s").sort(["cell_id", "fold", "clip_id"])


@pytest.fixture(scope="module")
def reference(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = _single(synth_root, out)
    assert summary.parts_computed == 8
    return out


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A copy of the emobench package for the rank processes: every rank of a launch must
    run the same code (rank 0 checks), even while this working tree is being edited."""
    import shutil

    root = tmp_path_factory.mktemp("code")
    shutil.copytree(
        ROOT / "emobench", root / "emobench", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def _env(snapshot, **extra):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot), env.get("PYTHONPATH")]))
    return env


def test_num_processes_gives_the_single_process_results(config, reference, snapshot, tmp_path):
    out = tmp_path / "par" / "run"
    res = subprocess.run(
        [sys.executable, "-m", "emobench", "run", str(config), "--out", str(out)]
        + ["--num-processes", "2", "--no-progress"],
        env=_env(snapshot),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "[rank 1/2] done: 4 part(s) computed" in res.stdout
    assert res.stdout.count("8 cells × folds = 8 (0 already done, 8 computed)") == 1
    assert _preds(out).equals(_preds(reference))
    got, ref = RunFolder(out).read_manifest(), RunFolder(reference).read_manifest()
    assert got["parallel"]["world_size"] == 2
    assert [r["parts"] for r in got["parallel"]["ranks"]] == [4, 4]
    assert got["cells"] == ref["cells"] and got["skipped"] == ref["skipped"]
    assert len(got["skipped"]) == 8  # the bad clip, once per part: both ranks' skips
    assert got["cell_info"] == ref["cell_info"]
    # both ranks encoded frames: the merged count equals the single process's
    assert got["cache"]["miss_frames"] == ref["cache"]["miss_frames"]
    assert pl.read_parquet(out / "metrics.parquet").equals(
        pl.read_parquet(reference / "metrics.parquet")
    )
    assert not list((out / ".emobench-launch").glob("rank-*.json"))  # tidied up


def test_a_killed_rank_is_named_and_a_rerun_completes_it(
    config, synth_root, reference, snapshot, tmp_path, monkeypatch
):
    out = tmp_path / "kill" / "run"
    port = free_port()
    args = [sys.executable, "-m", "emobench", "run", str(config), "--out", str(out)]
    args += ["--no-progress", "--rank-timeout", "2"]
    procs = [
        subprocess.Popen(
            args,
            env=_env(snapshot, **launch_env(2, r, port)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    try:
        # rank 1's share is the seed-1 groups (units 1 and 3): kill it after its first part
        deadline = time.monotonic() + 90
        while not list((out / "parts").glob("*__s1__f1.parquet")):
            assert procs[1].poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        procs[1].send_signal(signal.SIGKILL)
        _, err = procs[0].communicate(timeout=90)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: rank 1 of 2 (PID")
    assert "no sign of life for 2 s" in lines[-1] and "are kept" in lines[-1]
    assert "Traceback" not in err
    parts = list((out / "parts").glob("*.parquet"))
    s1 = [p for p in parts if "__s1__" in p.name]
    assert len(parts) - len(s1) == 4  # rank 0 finished its share
    assert 1 <= len(s1) < 4  # rank 1 lost only its unfinished parts
    assert not (out / "predictions.parquet").exists()
    # the ranks ran the snapshot's code: stamp the rerun's parts with it too
    import emobench.runner.parts as parts_mod

    codes = {json.dumps(parts_mod.read_part(p)[1]["code"], sort_keys=True) for p in parts}
    assert len(codes) == 1  # one launch, one code
    monkeypatch.setattr(parts_mod, "code_version", lambda: json.loads(next(iter(codes))))
    summary = _single(synth_root, out)  # a one-process rerun completes the launch's work
    assert (summary.parts_done_before, summary.parts_computed) == (len(parts), 8 - len(parts))
    assert _preds(out).equals(_preds(reference))


def test_a_launch_on_a_busy_folder_stops_every_rank_with_one_line(config, snapshot, tmp_path):
    out = tmp_path / "busy" / "run"
    out.mkdir(parents=True)
    with RunLock(out):  # an independent run holds the folder
        res = subprocess.run(
            [sys.executable, "-m", "emobench", "run", str(config), "--out", str(out)]
            + ["-n", "2", "--no-progress"],
            env=_env(snapshot),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, res.stderr
    # rank 0 gives the usual lock line; rank 1 stops at once with rank 0's reason
    mine = [e for e in errors if e.startswith("error: [rank 1/2] ")]
    assert len(mine) == 1 and "rank 0 could not start the run: " in mine[0]
    rank0 = next(e for e in errors if e not in mine)
    assert f"is in use by another emobench run (PID {os.getpid()}" in rank0
    assert "in use by another emobench run" in mine[0]
    assert "Traceback" not in res.stderr
    assert not (out / "parts").exists()


class _FakeLaunch:
    """What a rank > 0 sees of its launch, without a process group."""

    def __init__(self, plan):
        self.plan, self.id, self.calls = plan, "L9", []

    def receive(self):
        return self.plan

    def heartbeat(self):
        self.calls.append("heartbeat")

    def part_done(self):
        self.calls.append("part")

    def finish(self, summary=None, error=None):
        self.calls.append(("finish", error))


def test_a_rank_with_other_code_or_cells_stops_and_tells_rank_zero(synth_root, tmp_path):
    from emobench.runner.parts import code_version

    engine = _engine(synth_root, tmp_path / "run")
    engine.rank = Rank(1, 2, 1, 2)
    other = {**code_version(), "source": "0123456789abcdef"}
    fake = _FakeLaunch({"code": other, "shares": [[], []]})
    with pytest.raises(DistributedError, match="rank 1 runs other emobench code than rank 0"):
        engine._execute_worker(fake)
    assert fake.calls[0] == "heartbeat" and fake.calls[-1][0] == "finish"
    assert "source 0123456789abcdef" in fake.calls[-1][1]  # rank 0 gets the same line
    fake = _FakeLaunch({"code": code_version(), "shares": [[], [(["no-such-cell"], 1)]]})
    with pytest.raises(EmobenchError, match="planned cell no-such-cell that rank 1"):
        engine._execute_worker(fake)
    assert "no-such-cell" in fake.calls[-1][1]


def test_rank_zero_merges_the_other_ranks_reports(synth_root, tmp_path):
    engine = _engine(synth_root, tmp_path / "run")
    engine.warnings = ["loaded"]
    engine.timings = {"fit": 1.0, "features": 0.5, "score": 0.25}
    engine.features.stats.miss_frames = 10
    reports = {
        1: {
            "parts": 3,
            "warnings": ["loaded", "damaged checkpoint x: removed"],
            "timings": {"fit": 2.0, "features": 0.5, "score": 0.25},
            "cache": {"hit_frames": 4, "miss_frames": 6, "encoder_calls": 2},
            "decoding": {},
            "device": "cuda:1",
        }
    }
    engine._merge_reports(reports, "L7", 5)
    assert engine.warnings == ["loaded", "damaged checkpoint x: removed"]  # no repeats
    assert engine.timings == {"fit": 3.0, "features": 1.0, "score": 0.5}
    stats = engine.features.stats
    assert (stats.hit_frames, stats.miss_frames, stats.encoder_calls) == (4, 16, 2)
    assert engine._parallel["ranks"] == [
        {"rank": 0, "parts": 5, "device": "cpu"},
        {"rank": 1, "parts": 3, "device": "cuda:1"},
    ]
