"""Decoding ahead of the model (emobench.runner.prefetch) and the device-side encode paths.

Every check compares against an independent reference: clips read one by one with
``read_clip`` (frames, order, skip reasons), counters of a decoder stand-in (queue bound),
hand-written preprocessing + the bare network (adapters' encode).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

from emobench.data.registry import load_index
from emobench.runner import prefetch
from emobench.runner.cache import FeatureCache, FrameCache, clip_key
from emobench.runner.media import MediaReader
from emobench.runner.prefetch import DecodeJob, Prefetcher, PrefetchError, default_workers
from emobench.runner.work import WorkProgress
from emobench.video import frames as video
from emobench.video.frames import FrameReadError, read_clip


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Ten synth test clips at 32 px."""
    root = make_synth(
        tmp_path_factory.mktemp("synth"), profile="uniform", n_train=7, n_test=10, seed=5
    )
    index = load_index("synth", root).sort("clip_id")
    return list(index.filter(pl.col("split") == "test").iter_rows(named=True))


@pytest.fixture(scope="module")
def broken(rows, tmp_path_factory):
    """The same clips with the 2nd overwritten by junk and the 5th deleted."""
    out = []
    base = tmp_path_factory.mktemp("broken")
    for i, r in enumerate(rows):
        path = base / f"{r['clip_id']}.mp4"
        shutil.copy(r["path"], path)
        if i == 1:
            path.write_bytes(b"\x00junk" * 50)
        if i == 4:
            path.unlink()
        out.append({**r, "path": str(path)})
    return out


def _wanted(rows: list[dict]) -> list[tuple[dict, np.ndarray]]:
    """Per clip an unsorted index list with a repeat, different for every clip."""
    out = []
    for i, r in enumerate(rows):
        n = int(r["n_frames"])
        out.append((r, np.array([n - 1 - i % 3, 0, i % n, i % n, n // 2])))
    return out


def _reference(wanted: list[tuple[dict, np.ndarray]]) -> list[np.ndarray | str]:
    """Frames or the FrameReadError reason of each clip, read one by one."""
    out: list[np.ndarray | str] = []
    for r, idx in wanted:
        try:
            out.append(read_clip(r, idx, size=24, backend="pyav"))
        except FrameReadError as exc:
            out.append(exc.reason)
    return out


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_prefetch_yields_serial_frames_in_order(rows, workers):
    wanted = _wanted(rows)
    ref = _reference(wanted)
    jobs = [DecodeJob(r, idx, 24, "pyav") for r, idx in wanted]
    got = list(Prefetcher(workers).run(jobs))
    assert [d.job.row["clip_id"] for d in got] == [r["clip_id"] for r in rows]
    for d, want in zip(got, ref, strict=True):
        assert d.ok and d.reason is None and not d.cached
        assert d.frames.shape == (5, 24, 24, 3)
        assert np.array_equal(d.frames, want)
    # the repeated index returns the same frame twice, the order follows the request
    assert np.array_equal(got[3].frames[2], got[3].frames[3])


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_clips_come_back_as_reasons_without_stopping_others(broken, workers):
    wanted = _wanted(broken)
    ref = _reference(wanted)
    assert isinstance(ref[1], str) and ref[4] == "missing file"  # the reference agrees
    got = list(Prefetcher(workers).run(DecodeJob(r, i, 24, "pyav") for r, i in wanted))
    assert len(got) == len(broken)
    for d, want in zip(got, ref, strict=True):
        if isinstance(want, str):
            assert d.frames is None and d.reason == want
        else:
            assert np.array_equal(d.frames, want)


def test_queue_never_holds_more_than_ahead(rows, monkeypatch):
    """A decoder stand-in counts the clips started; the consumer is slow, so the workers
    run ahead as far as they may: exactly ``ahead`` clips beyond the ones taken."""
    started = []
    lock = threading.Lock()

    def fake_read(row, indices, size=None, backend="auto"):
        with lock:
            started.append(row["clip_id"])
        time.sleep(0.01)
        return np.full((len(indices), 2, 2, 3), int(row["clip_id"][-1]), np.uint8)

    monkeypatch.setattr(video, "read_clip", fake_read)
    many = [{**r, "clip_id": f"{r['clip_id']}-{k}"} for k in range(3) for r in rows]
    ahead = 3
    pre = Prefetcher(workers=2, ahead=ahead)
    taken, beyond = 0, []
    for d in pre.run(DecodeJob(r, np.arange(2), None, "pyav") for r in many):
        taken += 1
        assert d.job.row["clip_id"] == many[taken - 1]["clip_id"]
        deadline = time.monotonic() + 2.0
        while len(started) < min(len(many), taken + ahead) and time.monotonic() < deadline:
            time.sleep(0.005)
        with lock:
            beyond.append(len(started) - taken)
    assert taken == len(many) == len(started)
    assert max(beyond) == ahead  # reached, never exceeded
    assert pre.peak == ahead


def test_lookup_answers_from_cache_without_decoding(rows, monkeypatch):
    calls = []
    real = video.read_clip
    monkeypatch.setattr(
        video, "read_clip", lambda row, *a, **k: calls.append(row["clip_id"]) or real(row, *a, **k)
    )
    marker = np.zeros((1, 1, 1, 3), np.uint8)
    from emobench.runner.prefetch import Decoded

    def lookup(job):
        return (
            Decoded(job, marker, cached=True) if job.row["clip_id"] == rows[2]["clip_id"] else None
        )

    got = list(Prefetcher(2).run((DecodeJob(r, np.arange(3), 24, "pyav") for r in rows), lookup))
    assert got[2].cached and got[2].frames is marker
    assert sorted(calls) == sorted(r["clip_id"] for i, r in enumerate(rows) if i != 2)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(PrefetchError, match="decode workers must be an integer >= 0, got -1"):
        Prefetcher(-1)
    with pytest.raises(PrefetchError, match="queue length must be an integer >= 1, got 0"):
        Prefetcher(2, ahead=0)
    with pytest.raises(PrefetchError, match="unknown prefetch worker kind 'fork'"):
        Prefetcher(1, kind="fork")
    n = prefetch.cpu_count()
    assert default_workers(cuda=True) == max(0, min(4, n - 1))
    assert default_workers(cuda=False) == min(1, n - 1)
    assert MediaReader(FrameCache(None), "pyav", WorkProgress(show=False)).workers is None


def test_process_workers_match_and_count_decodes(rows):
    wanted = _wanted(rows[:3])
    ref = _reference(wanted)
    video.reset_decode_stats()
    got = list(Prefetcher(1, kind="process").run(DecodeJob(r, i, 24, "pyav") for r, i in wanted))
    for d, want in zip(got, ref, strict=True):
        assert np.array_equal(d.frames, want)
    # the worker's decodes are counted in this process, as a thread's would be
    assert video.decode_stats().clips == {"pyav": 3}


@pytest.mark.parametrize("workers", [0, 2])
def test_whole_clips_fill_the_cache_and_count_skips(broken, workers, monkeypatch):
    reader = MediaReader(FrameCache(None), "pyav", WorkProgress(show=False), workers=workers)
    skips: dict[str, str] = {}
    table = pl.DataFrame(broken)
    frames, kept = reader.whole_clips(table, 24, skips, "training")
    assert kept == [0, 2, 3, 5, 6, 7, 8, 9]
    ref = _reference([(r, np.arange(r["n_frames"])) for r in broken])
    for arr, i in zip(frames, kept, strict=True):
        assert np.array_equal(arr, ref[i])
    assert skips == {
        broken[1]["clip_id"]: f"train: {ref[1]}",
        broken[4]["clip_id"]: "train: missing file",
    }
    # a second pass is served by the frame cache: nothing is decoded
    monkeypatch.setattr(video, "read_clip", lambda *a, **k: pytest.fail("decoded again"))
    again, kept2 = reader.whole_clips(table.filter(pl.int_range(pl.len()).is_in(kept)), 24, {}, "t")
    assert all(a is b for a, b in zip(again, frames, strict=True)) and kept2 == list(range(8))
    # read's cache path: a subset of a cached clip, in the requested order
    sub = next(reader.decode_ahead([(broken[0], np.array([3, 1]))], 24))
    assert sub.cached and np.array_equal(sub.frames, ref[0][[3, 1]])


class _MeanModel:
    """A frame-feature model whose features are each frame's per-channel mean (a
    reference anyone can compute), counting its encoder calls."""

    feature_key = "mean-rgb"
    frame_size = 24
    batch_size = 0

    def __init__(self) -> None:
        self.calls: list[int] = []  # real frames per call
        self.padded: list[int] = []  # frames per call, padding included

    def encode(self, frames: np.ndarray) -> np.ndarray:
        self.padded.append(len(frames))
        self.calls.append(int((frames.reshape(len(frames), -1).max(axis=1) > 0).sum()))
        return frames.reshape(len(frames), -1, 3).mean(1).astype(np.float32)


@pytest.mark.parametrize("workers", [0, 2])
def test_features_phase_matches_per_frame_reference(broken, tmp_path, workers):
    from emobench.runner import frame_features as ff
    from emobench.runner.scorers import Services

    reader = MediaReader(FrameCache(None), "pyav", WorkProgress(show=False), workers=workers)
    cache = FeatureCache(tmp_path)
    scorer = ff.FrameFeatureScorer(Services(cache, reader, WorkProgress(show=False), {}))
    model = _MeanModel()
    table = pl.DataFrame(broken)
    needed = {r["clip_id"]: np.array([5, 0, 2]) for r in broken}
    ff_step = ff.ENCODE_FRAMES
    try:
        ff.ENCODE_FRAMES = 7  # three clips of 3 frames per call, the last call short
        feats, bad, per_frame = scorer.features(model, table, needed, "test")
    finally:
        ff.ENCODE_FRAMES = ff_step
    assert model.calls == [9, 9, 6]  # 8 readable clips × 3 frames, grouped
    assert model.padded == [ff.ENCODE_PAD] * 3  # each call padded with black frames
    assert set(bad) == {broken[1]["clip_id"], broken[4]["clip_id"]} and per_frame > 0
    for i, r in enumerate(broken):
        if i in (1, 4):
            assert r["clip_id"] not in feats
            continue
        idx, f = feats[r["clip_id"]]
        want = read_clip(r, [0, 2, 5], size=24, backend="pyav").reshape(3, -1, 3).mean(1)
        assert idx.tolist() == [0, 2, 5] and np.allclose(f, want)
        # stored on disk (by the background writer) and served from there next time
        disk = cache.load(reader.artefact_key("mean-rgb"), clip_key(r))
        assert disk is not None and np.array_equal(disk[1], f)
    model.calls.clear()
    needed = {r["clip_id"]: np.array([0, 5, 7]) for r in broken}
    ff_step, ff.ENCODE_FRAMES = ff.ENCODE_FRAMES, 7
    try:
        feats, _, _ = scorer.features(model, table, needed, "test")
    finally:
        ff.ENCODE_FRAMES = ff_step
    assert model.calls == [7, 1]  # only frame 7 of the 8 readable clips is new
    want = read_clip(broken[0], [0, 2, 5, 7], size=24, backend="pyav").reshape(4, -1, 3).mean(1)
    assert np.allclose(feats[broken[0]["clip_id"]][1], want)


# --------------------------------------------------------------------------- adapters


def test_openclip_encode_equals_straightforward_reference():
    """Crop, bicubic resize, normalisation and the tower, written out by hand per frame."""
    import torch
    import torch.nn.functional as F

    from emobench.models.openclip.adapter import OpenClipModel

    model = OpenClipModel("emobench-tiny", {"frame_size": 80, "crop": 72, "batch_size": 3})
    model.load("cpu")
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (7, 80, 80, 3), dtype=np.uint8)
    got = model.encode(frames)
    cfg = getattr(model._model.visual, "preprocess_cfg", {}) or {}
    mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)
    ref = []
    with torch.no_grad():
        for f in frames:
            x = torch.from_numpy(f[4:76, 4:76].copy()).permute(2, 0, 1)[None].float()
            x = F.interpolate(x, size=(64, 64), mode="bicubic", antialias=True)
            x = (x / 255.0 - mean) / std
            e = model._model.encode_image(x)
            ref.append((e / e.norm(dim=-1, keepdim=True)).numpy()[0])
    assert got.shape == (7, model.embed_dim) and got.dtype == np.float32
    assert np.allclose(got, np.stack(ref), atol=1e-5)
    assert model.encode(frames[:0]).shape == (0, model.embed_dim)


def test_baseline_encode_equals_straightforward_reference():
    import torch

    from emobench.models.baseline.encoder import FrameEncoder, FrozenVisualEncoder, encode_frames

    torch.manual_seed(0)
    enc = FrameEncoder(widths=(4, 8), side=16).eval()
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    got = encode_frames(enc, frames, batch_size=4, device="cpu")
    with torch.no_grad():
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        x = (x / 255.0 - 0.5) / 0.25
        mu, sd = x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True).clamp_min(1e-3)
        ref = enc.body(((x - mu) / sd).contiguous(memory_format=torch.channels_last)).numpy()
    assert got.shape == (9, 8) and got.dtype == np.float32 and np.allclose(got, ref, atol=1e-5)

    visual = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    frozen = FrozenVisualEncoder(visual, image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    got = encode_frames(frozen, frames, batch_size=5, device="cpu")
    with torch.no_grad():
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", antialias=True)
        ref = visual((x - 0.5) / 0.5).numpy()
    assert np.allclose(got, ref, atol=1e-5)
    assert encode_frames(enc, frames[:0], device="cpu").shape == (0, 8)


def test_transfer_round_trip_on_cpu_is_exact():
    import torch

    from emobench.models.transfer import to_device, to_numpy

    a = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)[:, 1:3]  # a strided view
    t = to_device(a, "cpu")
    assert t.dtype == torch.uint8 and np.array_equal(t.numpy(), a)
    out = to_numpy([torch.ones(2, 3), torch.zeros(1, 3, dtype=torch.bfloat16)], 3)
    assert out.dtype == np.float32 and out.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert to_numpy([], 4).shape == (0, 4)


def test_features_phase_passes_encoder_errors_on_and_stops_its_threads(rows, tmp_path):
    from emobench.errors import EmobenchError
    from emobench.runner import frame_features as ff
    from emobench.runner.scorers import Services

    class Failing(_MeanModel):
        def encode(self, frames):
            if self.calls:
                raise EmobenchError("encoder broke on its second call")
            return super().encode(frames)

    before = threading.active_count()
    reader = MediaReader(FrameCache(None), "pyav", WorkProgress(show=False), workers=2)
    scorer = ff.FrameFeatureScorer(
        Services(FeatureCache(tmp_path), reader, WorkProgress(show=False), {})
    )
    needed = {r["clip_id"]: np.arange(3) for r in rows}
    step, ff.ENCODE_FRAMES = ff.ENCODE_FRAMES, 3  # one clip per call
    try:
        with pytest.raises(EmobenchError, match="encoder broke on its second call"):
            scorer.features(Failing(), pl.DataFrame(rows), needed, "test")
    finally:
        ff.ENCODE_FRAMES = step
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before  # decode, encode and writer threads ended


def test_clip_scorer_shows_prefetched_frames_and_counts_skips(tmp_path):
    """A clip model through the engine with two decode workers: every clip it is shown
    carries exactly the frames read_clip gives for its indices; a deleted video is skipped
    with its reason, the others scored."""
    from emobench.config import validate_config
    from emobench.models.base import ClipModel, ClipOutput
    from emobench.models.registry import MODEL_FAMILIES, register_model
    from emobench.runner.execute import Engine

    seen = []

    class Recorder(ClipModel):
        frame_size = 24
        batch_size = 2

        def fit(self, ctx):
            self.labels = list(ctx.labels)

        def predict(self, clips):
            seen.extend(clips)
            return [ClipOutput(text=self.labels[0]) for _ in clips]

    register_model("rec-clip", "records clips", kind="clip", gives_scores=lambda o: False)(
        lambda arg, options: Recorder()
    )
    try:
        root = make_synth(tmp_path / "d", profile="uniform", n_train=7, n_test=7, seed=2)
        index = load_index("synth", root)
        test = index.filter(pl.col("split") == "test").sort("clip_id")
        gone = test["clip_id"][2]
        Path(test["path"][2]).unlink()  # the index holds absolute paths
        cfg = validate_config(
            {
                "name": "rec",
                "datasets": [{"name": "synth", "root": str(root)}],
                "models": [{"adapter": "rec-clip:x", "name": "rec"}],
                "sweep": {"sampler": ["uniform:5"], "order": ["original", "shuffle"]},
                "video": {"backend": "pyav"},
                "device": "cpu",
                "metrics": {"n_resamples": 0},
            }
        )
        engine = Engine(cfg, tmp_path / "run", progress=False)
        engine.media.workers = 2
        engine.load_datasets()
        summary = engine.execute()
    finally:
        MODEL_FAMILIES._entries.pop("rec-clip", None)
    assert {x["clip_id"]: x["reason"] for x in summary.skipped} == {gone: "missing file"}
    rows = {r["clip_id"]: r for r in engine._indices["synth"].iter_rows(named=True)}
    assert len(seen) == 2 * (test.height - 1) and gone not in {c.clip_id for c in seen}
    for c in seen:
        want = read_clip(rows[c.clip_id], c.indices, size=24, backend="pyav")
        assert np.array_equal(c.frames, want)
    assert engine.media.peak <= 4  # two workers: at most 2 × 2 clips ahead


def test_features_phase_rejects_an_encoder_that_loses_frames(rows, tmp_path):
    from emobench.runner import frame_features as ff
    from emobench.runner.scorers import Services

    class Short(_MeanModel):
        def encode(self, frames):
            return super().encode(frames)[:-1]

    reader = MediaReader(FrameCache(None), "pyav", WorkProgress(show=False), workers=1)
    scorer = ff.FrameFeatureScorer(
        Services(FeatureCache(tmp_path), reader, WorkProgress(show=False), {})
    )
    needed = {r["clip_id"]: np.arange(2) for r in rows[:3]}
    with pytest.raises(
        ff.EncodeShapeError,
        match=r"Short.encode returned features of shape \(31, 3\) for 32 frames",
    ):
        scorer.features(Short(), pl.DataFrame(rows[:3]), needed, "test")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
def test_cuda_transfers_and_encodes_match_the_cpu():
    """The pinned, asynchronous path (CUDA only): exact uint8 round trip, and encodes equal
    to the CPU's within bf16 precision."""
    import torch

    from emobench.models.baseline.encoder import FrameEncoder, encode_frames
    from emobench.models.openclip.adapter import OpenClipModel
    from emobench.models.transfer import to_device, to_numpy

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (70, 80, 80, 3), dtype=np.uint8)
    t = to_device(frames[:, 8:72], "cuda")
    assert t.device.type == "cuda" and np.array_equal(t.cpu().numpy(), frames[:, 8:72])
    assert np.array_equal(to_numpy([t[:3].float(), t[3:5].float()], 0), frames[:5, 8:72])

    cpu = OpenClipModel("emobench-tiny", {"frame_size": 80, "crop": 72, "batch_size": 16})
    cpu.load("cpu")
    gpu = OpenClipModel("emobench-tiny", {"frame_size": 80, "crop": 72, "batch_size": 16})
    gpu.load("cpu")  # the same seeded weights, then moved
    gpu.load("cuda")
    a, b = cpu.encode(frames), gpu.encode(frames)
    assert b.shape == a.shape and b.dtype == np.float32
    assert (a * b).sum(1).min() > 0.99  # unit vectors: cosine similarity per frame

    torch.manual_seed(0)
    enc = FrameEncoder(widths=(4, 8), side=80).eval()
    a = encode_frames(enc, frames, batch_size=32, device="cpu")
    b = encode_frames(enc, frames, batch_size=32, device="cuda")
    assert np.allclose(a, b, atol=0.05 * np.abs(a).max())
