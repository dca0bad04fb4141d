"""Vision-only baselines: heads, encoder, trainers, save/load, device helpers (all on CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emobench.errors import EmobenchError
from emobench.models.baseline.encoder import (
    FrameEncoder,
    FrameShapeError,
    FrozenVisualEncoder,
    encode_frames,
)
from emobench.models.baseline.train import (
    ModuleFileError,
    TrainConfig,
    TrainConfigError,
    TrainDataError,
    load_module,
    predict_head,
    save_module,
    segment_centres,
    segment_random,
    stratified_split,
    train_encoder,
    train_head,
    uar,
)
from emobench.models.device import DeviceError, resolve_device, run_with_oom_backoff
from emobench.training.temporal_heads import (
    HEADS,
    UnknownHeadError,
    build_head,
    masked_range,
    with_delta,
)

FAST = TrainConfig(epochs=10, batch_size=8, lr=1e-3, patience=10, val_fraction=0.2, device="cpu")


def pattern_clips(n: int, seed: int, side: int = 32) -> tuple[list[np.ndarray], np.ndarray]:
    """Clips whose class is a stripe texture (vertical, horizontal, checkerboard; period 8
    px, random phase) over a random background colour with noise; T varies from 5 to 11.
    (Not colour: the encoder standardises every frame, which removes colour offsets.)"""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    yy, xx = np.mgrid[0:side, 0:side]
    clips = []
    for c in labels:
        t = int(rng.integers(5, 12))
        py, px = rng.integers(0, 8, 2)
        v, h = ((xx + px) // 4) % 2, ((yy + py) // 4) % 2
        stripes = (v, h, v ^ h)[c]
        frames = rng.uniform(40, 160, 3) + rng.normal(0, 20, (t, side, side, 3))
        frames += 60 * stripes[None, :, :, None]
        clips.append(frames.clip(0, 255).astype(np.uint8))
    return clips, labels


def ramp_features(n: int, seed: int, d: int = 8) -> tuple[list[np.ndarray], np.ndarray]:
    """Order-only task: class 0 ramps up along a direction, class 1 ramps down. The multiset
    of frame values has the same distribution for both, so pooling cannot separate them."""
    rng = np.random.default_rng(seed)
    base, direction = np.random.default_rng(99).normal(size=(2, d))
    labels = np.arange(n) % 2
    feats = []
    for c in labels:
        t = int(rng.integers(12, 30))
        r = np.linspace(0.0, 1.0, t)
        r = r if c == 0 else r[::-1]
        x = base + r[:, None] * direction + rng.normal(0, 0.1, (t, d))
        feats.append(x.astype(np.float32))
    return feats, labels


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_encoder(one_thread) -> tuple[torch.nn.Module, dict]:
    clips, labels = pattern_clips(30, seed=0)
    return train_encoder(clips, labels, 3, FAST)


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("t", [2, 7, 64])
def test_heads_return_logits_for_any_length(name: str, t: int) -> None:
    head = build_head(name, 12, 5).eval()
    assert isinstance(head.classifier, torch.nn.Linear)
    out = head(torch.randn(3, t, 12))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_padding_mask_matches_unpadded(name: str) -> None:
    torch.manual_seed(0)
    head = build_head(name, 6, 4).eval()
    a, b = torch.randn(1, 9, 6), torch.randn(1, 4, 6)
    padded = torch.zeros(2, 9, 6)
    padded[0], padded[1, :4] = a[0], b[0]
    with torch.no_grad():
        together = head(padded, torch.tensor([9, 4]))
        torch.testing.assert_close(together[0], head(a)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1], head(b)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_order_sensitivity(name: str) -> None:
    torch.manual_seed(0)
    head = build_head(name, 16, 4).eval()
    x = torch.randn(5, 10, 16)
    perm = torch.randperm(10)
    with torch.no_grad():
        same = torch.allclose(head(x), head(x[:, perm]), atol=1e-5)
    assert same == (name == "mean")


def test_unknown_head() -> None:
    with pytest.raises(UnknownHeadError, match="allowed: mean, gru, transformer"):
        build_head("lstm", 8, 2)


# --------------------------------------------------------------------------- sampling, split


def test_segment_sampling() -> None:
    rng = np.random.default_rng(0)
    idx = segment_random(np.array([100, 8, 3]), 4, rng)
    assert idx.shape == (3, 4) and idx.dtype == np.int64
    for row, t in zip(idx, [100, 8, 3], strict=True):
        assert np.all(np.diff(row) >= 0) and row.min() >= 0 and row.max() < t
    # one frame per equal segment
    assert np.all(idx[0] // 25 == np.arange(4))
    assert np.all(idx[1] // 2 == np.arange(4))
    np.testing.assert_array_equal(
        segment_centres(np.array([100, 8]), 4), [[12, 37, 62, 87], [1, 3, 5, 7]]
    )


def test_segment_sampling_matches_shared_sampler() -> None:
    from emobench.video import sampling

    rng = np.random.default_rng(1)
    for n in (1, 3, 7, 16, 62, 101):
        for k in (1, 4, 8, 16):
            np.testing.assert_array_equal(
                segment_centres(np.array([n]), k)[0], sampling.sample(n, 25.0, f"uniform:{k}", 0)
            )
            drawn = segment_random(np.full(200, n), k, rng)
            bounds = (np.arange(k + 1) * n) // k
            lo, hi = bounds[:-1], np.maximum(bounds[1:], bounds[:-1] + 1)
            assert np.all((drawn >= lo) & (drawn < hi) & (drawn < n))
            shared = sampling.sample(n, 25.0, f"segment-random:{k}", 3)
            assert np.all((shared >= lo) & (shared < hi))


def test_stratified_split_is_stratified_and_disjoint() -> None:
    labels = np.repeat([0, 1, 2, 3], [50, 20, 5, 1])
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    # round(0.1 n_c), at least 1 when n_c >= 2, none for a singleton class
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=4), [5, 2, 1, 0])
    again, _ = stratified_split(labels, 0.1, seed=0)
    np.testing.assert_array_equal(train, again)
    assert len(stratified_split(labels, 0.0, seed=0)[1]) == 0


def test_uar_matches_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert uar(y, p) == pytest.approx(balanced_accuracy_score(y, p))


# --------------------------------------------------------------------------- training


def test_encoder_and_head_learn_separable_task(trained_encoder) -> None:
    encoder, hist = trained_encoder
    assert hist["best_val_uar"] == 1.0
    assert hist["n_train"] + hist["n_val"] == 30 and hist["n_val"] == 6
    train_clips, train_y = pattern_clips(30, seed=0)
    test_clips, test_y = pattern_clips(30, seed=1)
    feats = [encode_frames(encoder, c, device="cpu") for c in train_clips]
    assert feats[0].dtype == np.float32 and feats[0].shape == (len(train_clips[0]), 128)
    head, h = train_head(feats, train_y, 3, "gru", "class-balanced", FAST)
    assert h["best_val_uar"] == 1.0
    test_feats = [encode_frames(encoder, c, device="cpu")[:4] for c in test_clips]
    logits = predict_head(head, test_feats, device="cpu")
    assert logits.shape == (30, 3)
    assert np.mean(logits.argmax(1) == test_y) >= 0.9


def test_order_task_gru_learns_mean_cannot() -> None:
    feats, y = ramp_features(48, seed=0)
    test_feats, test_y = ramp_features(60, seed=1)
    cfg = TrainConfig(epochs=10, batch_size=16, lr=1e-2, patience=10, device="cpu")
    test_k = [f[segment_centres(np.array([len(f)]), 8)[0]] for f in test_feats]
    acc = {}
    for name in ("gru", "mean"):
        head, _ = train_head(feats, y, 2, name, "instance-balanced", cfg)
        acc[name] = np.mean(predict_head(head, test_k, device="cpu").argmax(1) == test_y)
    assert acc["gru"] >= 0.9
    assert 0.3 <= acc["mean"] <= 0.7


def identity_features(
    n: int, seed: int, d: int = 16, n_classes: int = 3, micro_share: float = 0.5
) -> tuple[list[np.ndarray], np.ndarray]:
    """The GRU-misses-happiness case in miniature: each clip's features are a large
    per-clip identity vector (std 3) plus a small class direction (length 2) scaled by
    an expression envelope: a macro clip is neutral for its first 3-5 frames and then
    holds the expression; a micro clip flashes it in 2 of its 12-16 frames. The class is
    only in the *change* within the clip; identity dominates every absolute frame."""
    rng = np.random.default_rng(seed)
    dirs = np.random.default_rng(123).normal(size=(n_classes, d))
    dirs *= 2.0 / np.linalg.norm(dirs, axis=1, keepdims=True)
    labels = np.arange(n) % n_classes
    feats = []
    for i, c in enumerate(labels):
        t = int(rng.integers(12, 17))
        env = np.zeros(t)
        if i % 2 and rng.random() < 2 * micro_share:
            start = int(rng.integers(2, t - 2))
            env[start : start + 2] = 1.0
        else:
            env[int(rng.integers(3, 6)) :] = 1.0
        x = rng.normal(0, 3.0, d) + env[:, None] * dirs[c] + rng.normal(0, 0.05, (t, d))
        feats.append(x.astype(np.float32))
    return feats, labels


def test_identity_cancelling_inputs_recover_small_expressions() -> None:
    """Reproduces the cause of the quickstart's GRU missing happiness: with absolute
    features (``delta=False`` / ``spread=False``) the heads cannot separate a small
    expression from large identity differences in this budget (120 clips, 20 epochs);
    with each frame's change since the first frame (GRU) or each feature's within-clip
    range (mean) they do, and the mean head also catches 2-frame flashes that averaging
    dilutes."""
    feats, y = identity_features(120, seed=0)
    test_feats, test_y = identity_features(90, seed=1)
    cfg = TrainConfig(
        epochs=20, batch_size=16, lr=1e-2, patience=20, train_frames=(8,), device="cpu"
    )
    acc = {}
    for name, key in (("gru", "delta"), ("mean", "spread")):
        for on in (False, True):
            head, _ = train_head(feats, y, 3, name, "instance-balanced", cfg, head_kwargs={key: on})
            assert getattr(head, key) is on and head.spec["kwargs"][key] is on
            logits = predict_head(head, test_feats, device="cpu")
            acc[name, on] = uar(test_y, logits.argmax(1))
    for name in ("gru", "mean"):
        assert acc[name, True] >= 0.85, acc  # 0.90 (gru) and 0.96 (mean) when written
        assert acc[name, False] <= 0.6, acc  # 0.39 and 0.32: near chance (1/3)
    assert HEADS["gru"](d_in=4, n_classes=2).delta  # on by default
    assert HEADS["mean"](d_in=4, n_classes=2).spread
    assert not HEADS["mean"](d_in=4, n_classes=2, hidden=0).spread  # linear probe: plain


def test_range_and_delta_by_hand() -> None:
    x = torch.tensor([[[1.0, 5.0], [3.0, -1.0], [2.0, 9.0]]])
    np.testing.assert_allclose(
        masked_range(x, torch.tensor([[True, True, False]])).numpy(), [[2.0, 6.0]]
    )
    np.testing.assert_allclose(masked_range(x, torch.ones(1, 3, dtype=torch.bool)), [[2, 10]])
    np.testing.assert_allclose(
        with_delta(x)[0, :, 2:].numpy(), [[0.0, 0.0], [2.0, -6.0], [1.0, 4.0]]
    )
    # the plain mean head with hidden=0 is average pooling + linear, as before
    head = build_head("mean", 2, 3, hidden=0, dropout=0.0, spread=False).eval()
    with torch.no_grad():
        ref = head.classifier(head.norm(x).mean(1))
        torch.testing.assert_close(head(x), ref)


def test_decoupled_crt_retrains_only_classifier() -> None:
    feats, y = ramp_features(40, seed=2)
    y = np.where(np.arange(40) % 5 == 0, 1, 0)  # long-tailed: 32 vs 8
    cfg = TrainConfig(epochs=4, batch_size=8, crt_epochs=3, patience=10, device="cpu")
    plain, _ = train_head(feats, y, 2, "gru", "instance-balanced", cfg)
    crt, hist = train_head(feats, y, 2, "gru", "decoupled-crt", cfg)
    assert hist["phase"] == ["train"] * 4 + ["crt"] * 3
    before, after = plain.state_dict(), crt.state_dict()
    for name, tensor in before.items():
        if name.startswith("classifier."):
            assert not torch.equal(tensor, after[name]), name
        else:
            assert torch.equal(tensor, after[name]), name
    assert all(p.requires_grad for p in crt.parameters())


@pytest.mark.parametrize("name", sorted(HEADS))
def test_same_seed_same_weights(name: str) -> None:
    feats, y = ramp_features(24, seed=3)
    cfg = TrainConfig(epochs=2, batch_size=8, device="cpu", seed=5)
    a, ha = train_head(feats, y, 2, name, "progressive", cfg)
    b, hb = train_head(feats, y, 2, name, "progressive", cfg)
    c, _ = train_head(
        feats, y, 2, name, "progressive", TrainConfig(epochs=2, batch_size=8, device="cpu", seed=6)
    )
    assert ha["train_loss"] == hb["train_loss"]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_encoder_same_seed_same_weights() -> None:
    clips, labels = pattern_clips(30, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    a, _ = train_encoder(clips, labels, 3, cfg)
    b, _ = train_encoder(clips, labels, 3, cfg, encoder=FrameEncoder(side=32))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_encoder_probes_and_gap_readout() -> None:
    clips, labels = pattern_clips(12, seed=2)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", encoder_probe="mean", jitter=0.1)
    enc, hist = train_encoder(clips, labels, 3, cfg, encoder=FrameEncoder(readout="gap"))
    assert hist["epochs_run"] == 1 and enc.spec["kwargs"]["readout"] == "gap"
    assert encode_frames(enc, clips[0], device="cpu").shape == (len(clips[0]), 128)
    with pytest.raises(TrainConfigError, match="encoder_probe"):
        TrainConfig(encoder_probe="max")


def test_history_and_progress(trained_encoder) -> None:
    _, hist = trained_encoder
    labels = pattern_clips(30, seed=0)[1]
    _, val = stratified_split(labels, FAST.val_fraction, FAST.seed)
    assert hist["val_indices"] == val.tolist()
    calls = []
    feats, y = ramp_features(20, seed=4)
    cfg = TrainConfig(epochs=3, batch_size=8, patience=10, device="cpu")
    train_head(feats, y, 2, "mean", "cb-loss", cfg, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert {"phase", "loss", "val_uar", "best_val_uar"} <= set(calls[0][2])


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path, trained_encoder) -> None:
    encoder, _ = trained_encoder
    clips, _ = pattern_clips(4, seed=7)
    path = save_module(encoder, tmp_path / "enc.safetensors", {"note": "x"})
    loaded = load_module(path)
    assert loaded.emobench_config == {"note": "x"}
    np.testing.assert_array_equal(
        encode_frames(encoder, clips[0], device="cpu"),
        encode_frames(loaded, clips[0], device="cpu"),
    )
    feats = [np.random.default_rng(i).normal(size=(6, 10)).astype(np.float32) for i in range(3)]
    for name in HEADS:
        head = build_head(name, 10, 4).eval()
        p = save_module(head, tmp_path / f"{name}.safetensors", {})
        assert (tmp_path / f"{name}.json").is_file()
        np.testing.assert_array_equal(
            predict_head(head, feats, device="cpu"),
            predict_head(load_module(p), feats, device="cpu"),
        )


def test_load_errors(tmp_path) -> None:
    with pytest.raises(ModuleFileError, match="not found"):
        load_module(tmp_path / "missing.safetensors")
    head = build_head("mean", 4, 2)
    path = save_module(head, tmp_path / "h.safetensors")
    (tmp_path / "h.json").write_text("{}")
    with pytest.raises(ModuleFileError, match="sidecar"):
        load_module(path)


def test_checkpoint_weights_are_written_last_and_commit_the_save(tmp_path, monkeypatch) -> None:
    """The sidecar is on disk before the weights appear; a sidecar alone (a save in
    progress on another rank, or one cut short) is no checkpoint and is left alone; weights
    without a sidecar are damaged, reported and removed."""
    import emobench.models.weights_file as wf
    import emobench.training.checkpoint as ck

    head = build_head("mean", 4, 2)
    path = tmp_path / "h.safetensors"
    seen = []
    real = wf.atomic_write_bytes

    def spy(p, data):
        seen.append((Path(p).name, (tmp_path / "h.json").is_file()))
        return real(p, data)

    monkeypatch.setattr(wf, "atomic_write_bytes", spy)
    save_module(head, path)
    assert seen == [("h.safetensors", True)]  # the sidecar existed when the weights went in
    path.unlink()
    warned = []
    assert ck.load_checkpoint(path, warned.append) is None
    assert (tmp_path / "h.json").is_file() and not warned  # not removed: not a checkpoint yet
    save_module(head, path)
    (tmp_path / "h.json").unlink()
    assert ck.load_checkpoint(path, warned.append) is None
    assert len(warned) == 1 and "damaged checkpoint h.safetensors" in warned[0]
    assert not path.exists()


# --------------------------------------------------------------------------- inference helpers


def test_predict_head_groups_lengths_in_order() -> None:
    torch.manual_seed(0)
    head = build_head("transformer", 6, 3).eval()
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(t, 6)).astype(np.float32) for t in (4, 2, 4, 7, 2)]
    got = predict_head(head, feats, batch_size=1, device="cpu")
    with torch.no_grad():
        ref = np.stack([head(torch.from_numpy(f)[None])[0].numpy() for f in feats])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert predict_head(head, [], device="cpu").shape == (0, 3)


def test_encode_frames_batches_and_external_encoder(trained_encoder) -> None:
    encoder, _ = trained_encoder
    frames = pattern_clips(1, seed=3)[0][0]
    np.testing.assert_allclose(
        encode_frames(encoder, frames, batch_size=2, device="cpu"),
        encode_frames(encoder, frames, batch_size=256, device="cpu"),
        atol=1e-5,
    )
    assert encode_frames(encoder, frames[:0], device="cpu").shape == (0, 128)
    tower = torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    ext = FrozenVisualEncoder(tower, image_size=24)
    out = encode_frames(ext, frames, device="cpu")
    assert out.shape == (len(frames), 5)
    assert not any(p.requires_grad for p in ext.parameters())


# --------------------------------------------------------------------------- bad input, devices


def test_bad_inputs_are_clear() -> None:
    clips, labels = pattern_clips(6, seed=0)
    clips[2] = clips[2].astype(np.float32)
    with pytest.raises(FrameShapeError, match="clip 2"):
        train_encoder(clips, labels, 3, FAST)
    with pytest.raises(TrainDataError, match="labels"):
        train_head([np.zeros((3, 4), np.float32)] * 3, np.array([0, 1]), 2, "gru")
    with pytest.raises(TrainDataError, match="feature width"):
        train_head(
            [np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32)], np.array([0, 1]), 2
        )
    with pytest.raises(EmobenchError, match="allowed"):
        train_head([np.zeros((3, 4), np.float32)] * 2, np.array([0, 1]), 2, "gru", "focal")
    with pytest.raises(EmobenchError, match="allowed"):
        train_head([np.zeros((3, 4), np.float32)] * 2, np.array([0, 1]), 2, "lstm")
    with pytest.raises(TrainConfigError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(DeviceError, match="allowed"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_oom_backoff_halves_then_reraises() -> None:
    tried = []

    def fn(bs: int) -> int:
        tried.append(bs)
        if bs > 5:
            raise torch.cuda.OutOfMemoryError("out of memory")
        return bs

    assert run_with_oom_backoff(fn, 48) == 3
    assert tried == [48, 24, 12, 6, 3]

    def always(bs: int) -> int:
        tried.append(bs)
        raise torch.cuda.OutOfMemoryError("out of memory")

    tried.clear()
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_oom_backoff(always, 4)
    assert tried == [4, 2, 1]
