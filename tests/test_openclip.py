"""openclip adapter: zero-shot logits vs a direct reference, poolings, prompts, prior
corrections on hand-built scores, linear probe with every re-balancing strategy, offline
weight resolution errors, and feature reuse across a sweep (encoder calls counted)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from emobench.longtail import prior_estimated  # noqa: E402,F401  (registers estimated-prior)
from emobench.longtail.prior import PRIOR_CORRECTIONS, PriorCorrectionError, apply_prior  # noqa: E402
from emobench.longtail.prior_estimated import estimate_prior  # noqa: E402
from emobench.longtail.rebalance import REBALANCING  # noqa: E402
from emobench.models.base import FitContext  # noqa: E402
from emobench.models.openclip import adapter as oc  # noqa: E402
from emobench.models.openclip import weights as ocw  # noqa: E402
from emobench.models.openclip.prompts import (  # noqa: E402
    DEFAULT_TEMPLATES,
    EMOTION_WORDS,
    PromptError,
    prompt_set,
)
from emobench.models.registry import UnknownModelError, create_model  # noqa: E402

LABELS = ["happiness", "sadness", "anger"]


def _ctx(tmp_path: Path, labels=LABELS, rebalancing="instance-balanced", **kw) -> FitContext:
    base = dict(
        dataset="synth",
        fold=1,
        seed=0,
        rebalancing=rebalancing,
        labels=list(labels),
        train_index=pl.DataFrame({"clip_id": [], "label": []}),
        checkpoint_dir=tmp_path,
        device="cpu",
        train_options={},
        load_frames=lambda m, rows: ([], []),
        load_features=lambda m, rows: ([], []),
    )
    base.update(kw)
    return FitContext(**base)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised emobench-tiny (built offline from its JSON config), fitted."""
    model = oc.OpenClipModel("emobench-tiny", {})
    model.fit(_ctx(tmp_path_factory.mktemp("ckpt")))
    return model


def _frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- zero-shot


def test_zero_shot_logits_equal_direct_reference(tiny):
    """normalise(encode_image(open_clip preprocess(frame))) · class embeddings × scale."""
    from PIL import Image

    _, _, preprocess = open_clip.create_model_and_transforms("emobench-tiny")
    frames = _frames(5)
    net = tiny._model
    with torch.no_grad():
        x = torch.stack([preprocess(Image.fromarray(f)) for f in frames])
        img = net.encode_image(x)
        img = img / img.norm(dim=-1, keepdim=True)
        tok = open_clip.get_tokenizer("emobench-tiny")
        classes = []
        for lb in LABELS:
            prompts = [t.format(w) for w in EMOTION_WORDS[lb] for t in DEFAULT_TEMPLATES]
            e = net.encode_text(tok(prompts))
            e = (e / e.norm(dim=-1, keepdim=True)).mean(0)
            classes.append(e / e.norm())
        w = torch.stack(classes)
        scale = float(net.logit_scale.exp())
    feats = tiny.encode(frames)
    np.testing.assert_allclose(feats, img.numpy(), atol=1e-4)
    np.testing.assert_allclose(tiny._classifier, w.numpy(), atol=1e-5)
    # one frame per clip: every pooling is the per-frame logit
    ref = scale * (img @ w.T).numpy()
    for pool in oc.POOLS:
        tiny.pool = pool
        got = tiny.score([feats[i : i + 1] for i in range(5)])
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    tiny.pool = "mean"


def test_video_poolings_against_numpy(tiny):
    feats = tiny.encode(_frames(7, seed=1))
    clips = [feats[:3], feats[3:7]]
    w, s = tiny._classifier, tiny._scale
    sims = [c @ w.T for c in clips]
    means = [c.mean(0) / np.linalg.norm(c.mean(0)) for c in clips]
    expected = {
        "mean": np.stack([s * m @ w.T for m in means]),
        "max": np.stack([s * x.max(0) for x in sims]),
        "mean-logit": np.stack([s * x.mean(0) for x in sims]),
    }
    for pool, ref in expected.items():
        got = oc.pool_scores(clips, w, s, pool)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # presentation order does not change any pooling
    np.testing.assert_allclose(
        oc.pool_scores([clips[1][::-1]], w, s, "max"), expected["max"][1:], rtol=1e-6
    )
    with pytest.raises(oc.OpenClipError, match="unknown pool"):
        oc.pool_scores(clips, w, s, "median")


def test_registry_name_and_options():
    model = create_model("openclip:emobench-tiny", {"pool": "max"})
    assert model.pool == "max" and model.frame_size == 64 and model.weights_tag == "random"
    with pytest.raises(UnknownModelError, match="allowed"):
        create_model("openclip:emobench-tiny", {"pooling": "max"})
    with pytest.raises(UnknownModelError, match="pool"):
        create_model("openclip:emobench-tiny", {"pool": "median"})
    with pytest.raises(UnknownModelError, match="unknown open_clip architecture"):
        create_model("openclip:NoSuchNet-1", {})


# --------------------------------------------------------------------------- weights


def test_missing_weights_file_gives_clear_error(tmp_path):
    missing = tmp_path / "nope" / "weights.safetensors"
    with pytest.raises(oc.WeightsNotFoundError) as err:
        oc.OpenClipModel(f"emobench-tiny@{missing}", {})
    msg = str(err.value)
    assert str(missing) in msg and "\n" not in msg


def test_uncached_pretrained_tag_names_the_file(tmp_path):
    with pytest.raises(oc.WeightsNotFoundError) as err:
        oc.OpenClipModel("ViT-B-32@laion2b_s34b_b79k", {"cache_dir": str(tmp_path)})
    msg = str(err.value)
    assert "laion" in msg and "never downloads" in msg and "openclip:ViT-B-32@/path" in msg


def test_unknown_tag_lists_known_tags():
    with pytest.raises(UnknownModelError, match="laion2b_s34b_b79k"):
        oc.OpenClipModel("ViT-B-32@not-a-tag", {})


def test_missing_shipped_weights_says_how_to_regenerate(monkeypatch, tmp_path):
    monkeypatch.setattr(ocw, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(oc.WeightsNotFoundError, match="emobench pretrain synth-web"):
        oc.OpenClipModel("emobench-tiny@synth-web", {})


def test_local_weights_file_reloads_exactly(tiny, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny._model.state_dict().items()}, str(path))
    other = oc.OpenClipModel(f"emobench-tiny@{path}", {"seed": 123})
    other.load("cpu")
    frames = _frames(3, seed=2)
    np.testing.assert_array_equal(other.encode(frames), tiny.encode(frames))
    assert other.feature_key != tiny.feature_key and other.weights_tag == "file:tiny.safetensors"


def test_crop_option_and_preprocess_metadata(tiny, tmp_path):
    import json

    from safetensors.torch import save_file

    path = tmp_path / "meta.safetensors"
    state = {k: v.contiguous() for k, v in tiny._model.state_dict().items()}
    save_file(state, str(path), metadata={"preprocess": json.dumps({"frame_size": 96, "crop": 64})})
    assert oc.weights_preprocess(str(path)) == {"frame_size": 96, "crop": 64}
    model = oc.OpenClipModel(f"emobench-tiny@{path}", {})
    assert (model.frame_size, model.crop) == (96, 64)
    model.load("cpu")
    frames = _frames(3, size=96, seed=4)
    # the centre 64 x 64 of a 96 px frame, fed as is (64 px is the model's input size)
    np.testing.assert_array_equal(model.encode(frames), tiny.encode(frames[:, 16:80, 16:80]))
    assert model.feature_key.endswith("-f96c64") and model.describe()["crop"] == 64
    plain = oc.OpenClipModel(f"emobench-tiny@{path}", {"crop": 0, "frame_size": 64})
    assert (plain.frame_size, plain.crop) == (64, 0)
    with pytest.raises(UnknownModelError, match="crop must be in 0..64"):
        oc.OpenClipModel("emobench-tiny", {"crop": 80})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(oc.OpenClipError, match="unreadable safetensors header"):
        oc.OpenClipModel(f"emobench-tiny@{bad}", {})


def test_shipped_weights_load_when_present():
    path = oc.WEIGHTS_DIR / oc.SHIPPED[("emobench-tiny", "synth-web")]
    if not path.is_file():
        pytest.skip("shipped weights not generated yet")
    assert path.stat().st_size < 8e6
    assert (oc.WEIGHTS_DIR / "emobench-tiny-synth-web.md").is_file()
    model = oc.OpenClipModel("emobench-tiny@synth-web", {})
    model.load("cpu")
    assert model.encode(_frames(2)).shape == (2, 64)


# --------------------------------------------------------------------------- prompts


def test_prompt_sets_cover_mafw_and_are_configurable():
    from emobench.labels import DATASET_ORDERS

    mafw = prompt_set("mafw").prompts(list(DATASET_ORDERS["mafw"]))
    assert len(mafw) == 11 and all(len(p) >= len(DEFAULT_TEMPLATES) for p in mafw)
    custom = prompt_set("dfew", {"templates": ["{} face"], "words": {"happy": ["glad"]}})
    assert custom.prompts(["happiness", "sadness"]) == [
        ["glad face"],
        [f"{w} face" for w in EMOTION_WORDS["sadness"]],
    ]
    with pytest.raises(PromptError, match="slot"):
        prompt_set(None, {"templates": ["no slot here"]})
    with pytest.raises(PromptError, match="no words"):
        prompt_set(None, {}).prompts(["not-an-emotion"])
    with pytest.raises(PromptError, match="unknown key"):
        prompt_set(None, {"template": ["{}"]})


# --------------------------------------------------------------------------- prior corrections


def test_none_and_logit_adjust_by_hand():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    prior = np.array([0.5, 0.25, 0.25])
    np.testing.assert_array_equal(apply_prior("none", s, prior), s)
    np.testing.assert_allclose(
        apply_prior("logit-adjust", s, prior, tau=2.0), s - 2.0 * np.log(prior)[None]
    )


def test_batch_calibration_removes_constant_bias_exactly():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 4))
    z -= z.mean(0, keepdims=True)
    bias = np.array([3.0, -1.0, 0.5, 7.0])
    np.testing.assert_allclose(apply_prior("batch-calibration", z + bias, None), z, atol=1e-12)


@pytest.mark.parametrize("method", ["em", "mean-softmax"])
def test_estimated_prior_on_identical_rows(method):
    """All clips score c: q̂ = softmax(c), so every class ties after the correction."""
    c = np.array([2.0, 0.0, -1.0])
    z = np.tile(c, (6, 1))
    out = apply_prior("estimated-prior", z, np.full(3, 1 / 3), method=method)
    np.testing.assert_allclose(out - out[:, :1], 0.0, atol=1e-6)
    q = np.exp(c) / np.exp(c).sum()
    np.testing.assert_allclose(estimate_prior(z, method=method), q, atol=1e-6)


def test_estimated_prior_em_removes_constant_bias_and_balances():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=2.0, size=(40, 5))
    bias = np.array([4.0, 0.0, -2.0, 1.0, 0.3])
    a = apply_prior("estimated-prior", z, None)
    b = apply_prior("estimated-prior", z + bias, None)
    diff = b - a
    np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-6)  # same up to a row constant
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p.mean(0), np.full(5, 0.2), atol=1e-6)  # balanced marginal
    # a head-class bias that collapses predictions is undone
    collapsed = z + np.array([10.0, 0, 0, 0, 0])
    assert (collapsed.argmax(1) == 0).all()
    fixed = apply_prior("estimated-prior", collapsed, None).argmax(1)
    np.testing.assert_array_equal(fixed, a.argmax(1))


def test_estimated_prior_mean_softmax_by_hand_and_tau():
    z = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]))
    q = np.array([0.4, 0.4, 0.2])  # mean of the two softmax rows
    out = apply_prior("estimated-prior", z, None, method="mean-softmax", tau=0.5)
    np.testing.assert_allclose(out, z - 0.5 * np.log(q)[None], atol=1e-12)


def test_estimated_prior_keeps_missing_columns_and_rejects_bad_method():
    z = np.array([[1.0, -np.inf, 0.0], [0.0, -np.inf, 2.0]])
    out = apply_prior("estimated-prior", z, None)
    assert np.isneginf(out[:, 1]).all() and np.isfinite(out[:, [0, 2]]).all()
    assert apply_prior("estimated-prior", np.zeros((0, 3)), None).shape == (0, 3)
    assert "estimated-prior" in PRIOR_CORRECTIONS
    with pytest.raises(PriorCorrectionError, match="method"):
        apply_prior("estimated-prior", np.ones((2, 2)), None, method="magic")


# --------------------------------------------------------------------------- linear probe


def _probe_data(n_per=(40, 20, 6), d=16, seed=0):
    """Per-clip (T, D) features of three well-separated, imbalanced classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 3
    feats, labels = [], []
    for c, n in enumerate(n_per):
        for _ in range(n):
            t = int(rng.integers(3, 9))
            feats.append((centres[c] + rng.normal(size=(t, d))).astype(np.float32))
            labels.append(c)
    return feats, np.array(labels)


@pytest.mark.parametrize("rebalancing", sorted(REBALANCING))
def test_linear_probe_trains_with_each_rebalancing(rebalancing):
    from emobench.models.baseline.train import TrainConfig, predict_head, uar

    feats, y = _probe_data(n_per=(30, 15, 5))
    cfg = TrainConfig(epochs=5, crt_epochs=5, batch_size=16, lr=5e-2, patience=5, device="cpu")
    head, hist = oc.train_probe(feats, y, 3, rebalancing, cfg)
    assert head.spec["kwargs"]["hidden"] == 0 and hist["rebalancing"] == rebalancing
    if REBALANCING[rebalancing].decoupled:
        assert "crt" in hist["phase"]
    pred = predict_head(head, feats, device="cpu").argmax(1)
    assert uar(y, pred) > 0.8


def test_probe_option_fits_saves_and_reuses_checkpoint(tmp_path):
    feats, y = _probe_data(n_per=(12, 8, 4), d=64)
    labels = ["happiness", "sadness", "anger"]
    n = len(y)
    train = pl.DataFrame(
        {
            "clip_id": [f"c{i:03d}" for i in range(n)],
            "label": [labels[c] for c in y],
            "split": ["train"] * n,
            "fold": [1] * n,
            "n_frames": [len(f) for f in feats],
            "fps": [25.0] * n,
            "onset": [None] * n,
            "apex": [None] * n,
            "offset": [None] * n,
        }
    )
    calls = []

    def load_features(model, rows):
        calls.append(rows.height)
        return [f / np.linalg.norm(f, axis=1, keepdims=True) for f in feats], list(range(len(y)))

    opts = {"probe": "linear", "train": {"epochs": 3, "crt_epochs": 2, "batch_size": 8}}
    ctx = _ctx(tmp_path, labels, "decoupled-crt", train_index=train, load_features=load_features)
    m = oc.OpenClipModel("emobench-tiny", opts)
    m.fit(ctx)
    assert calls == [len(y)] and list(tmp_path.glob("openclip-probe-decoupled-crt-*.safetensors"))
    scores = m.score([feats[0], feats[-1]])
    assert scores.shape == (2, 3)
    again = oc.OpenClipModel("emobench-tiny", opts)
    again.fit(ctx)
    assert calls == [len(y)]  # checkpoint reused, no features requested
    np.testing.assert_allclose(again.score([feats[0], feats[-1]]), scores, rtol=1e-5)


# --------------------------------------------------------------------------- engine


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emobench.data.synth.generate import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(
        profile="exp:4", n_train=14, n_test=10, size=32, min_seconds=1.0, max_seconds=1.2,
        n_train_subjects=3, n_test_subjects=2, seed=5,
    )  # fmt: skip
    generate(cfg, root, progress=False, workers=1)
    return root


def test_engine_encodes_each_frame_once_across_sweep(synth_root, tmp_path, monkeypatch):
    from emobench.config import validate_config
    from emobench.runner.execute import Engine, clip_seed
    from emobench.video.sampling import sample

    encoded = []
    real = oc.OpenClipModel.encode

    def counting(self, frames):
        # real frames only: each call is padded with black frames to a multiple of
        # ENCODE_PAD (features independent of the call's other frames)
        encoded.append(int((frames.reshape(len(frames), -1).max(axis=1) > 0).sum()))
        return real(self, frames)

    monkeypatch.setattr(oc.OpenClipModel, "encode", counting)
    cfg = validate_config(
        {
            "name": "clip",
            "datasets": [{"name": "synth", "root": str(synth_root)}],
            "models": [
                {"adapter": "openclip:emobench-tiny", "name": "zs-mean"},
                {"adapter": "openclip:emobench-tiny", "name": "zs-max", "options": {"pool": "max"}},
            ],
            "sweep": {
                "sampler": ["uniform:2,4,8"],
                "order": ["original", "shuffle"],
                "prior_correction": ["none", "estimated-prior", "batch-calibration"],
            },
            "device": "cpu",
            "metrics": {"n_resamples": 10},
        }
    )
    engine = Engine(cfg, tmp_path / "run", progress=False)
    engine.load_datasets()
    summary = engine.execute()
    test = engine._indices["synth"].filter(pl.col("split") == "test")
    union = sum(
        np.unique(
            np.concatenate(
                [
                    sample(r["n_frames"], r["fps"], f"uniform:{k}", clip_seed(0, r["clip_id"]))
                    for k in (2, 4, 8)
                ]
            )
        ).size
        for r in test.iter_rows(named=True)
    )
    # both poolings share one feature key: the union of test frames is encoded once
    assert sum(encoded) == union == summary.cache["miss_frames"]
    preds = pl.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert preds["cell_id"].n_unique() == 2 * 3 * 2 * 3
    assert preds.filter(pl.col("pred") == "invalid").height == 0
