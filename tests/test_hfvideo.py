"""The ``hfvideo:`` family (pretrained video classifiers fine-tuned per fold) on a tiny random
VideoMAE built in code (:mod:`hfvideo_tiny`).

Clips are in memory (a colour per class, so a few epochs learn them) except in the engine
run, which uses generated synth videos. Checks: resampling indices against hand-computed
ones, the normalisation against the model's own processor, falling training loss under
instance-balanced and decoupled-crt training, cRT touching only the classifier, checkpoint
reuse (no optimizer step) and a damaged checkpoint retrained to the same weights (also by
the batch-by-batch decoding path), clips that fail to decode left out, gradient
accumulation equal to the larger batch, layer-decay and warm-up rates by hand, TimeSformer
/ ViViT / V-JEPA 2 inputs, frozen features against a direct VideoMAE forward and served
from the cache, an engine run, and one-line errors (missing model, bad options, text
enrichment, GPU out of memory).
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emobench.config import validate_config  # noqa: E402
from emobench.errors import EmobenchError  # noqa: E402
from emobench.models.base import ClipInput, FitContext  # noqa: E402
from emobench.models.hfvideo import adapter as hv  # noqa: E402
from emobench.models.registry import UnknownModelError, create_model  # noqa: E402
from emobench.results import RunFolder  # noqa: E402
from emobench.runner.execute import Engine  # noqa: E402
from emobench.training import video as hvt  # noqa: E402

LABELS = ["anger", "happiness", "sadness"]
#: fast settings: 4 epochs, no early stop, 3 validation clips
TRAIN = {"epochs": 4, "patience": 10, "val_fraction": 0.25, "crt_epochs": 4, "batch_size": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models are tiny: one thread is as fast and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from hfvideo_tiny import build_videomae

    return build_videomae(tmp_path_factory.mktemp("hfvideo") / "videomae")


def _clips(n=12, seed=0):
    """Clips of 6-11 frames (32 px): noise plus a bright colour channel per class."""
    rng = np.random.default_rng(seed)
    frames, rows = {}, []
    for i in range(n):
        c = i % len(LABELS)
        length = int(rng.integers(6, 12))
        x = rng.integers(0, 80, (length, 32, 32, 3))
        x[..., c] += 150
        frames[f"c{i:02d}"] = x.astype(np.uint8)
        rows.append({"clip_id": f"c{i:02d}", "label": LABELS[c], "n_frames": length})
    return frames, pl.DataFrame(rows)


def _ctx(
    tmp_path, rebalancing="instance-balanced", warnings=None, decoded=None, broken=(), **train
):
    """A fold of :func:`_clips`; ``load_frames`` leaves out the ``broken`` clip ids (as the
    engine does with clips that fail to decode) and logs batch sizes in ``decoded``."""
    frames, rows = _clips()

    def load(model, sel):
        assert model.frame_size == 32
        if decoded is not None:
            decoded.append(sel.height)
        kept = [i for i, c in enumerate(sel["clip_id"]) if c not in broken]
        return [frames[sel["clip_id"][i]] for i in kept], kept

    return FitContext(
        dataset="toy",
        fold=1,
        seed=0,
        rebalancing=rebalancing,
        labels=LABELS,
        train_index=rows,
        checkpoint_dir=tmp_path / "ckpt",
        device=torch.device("cpu"),
        train_options={**TRAIN, **train},
        load_frames=load,
        load_features=None,
        warn=(warnings if warnings is not None else []).append,
        cache_dir=tmp_path / "cache",
    )


def _inputs(k=6, n=4, seed=1):
    """Test clips presenting ``k`` frames each."""
    frames, _ = _clips(n, seed)
    return [
        ClipInput(clip_id=f"t{i}", frames=f[:k], indices=np.arange(k) * 2, fps=25.0)
        for i, f in enumerate(frames.values())
    ]


def _scores(model, clips):
    return np.stack([o.scores for o in model.predict(clips)])


def test_resampling_to_the_model_frame_count_is_the_hand_computed_one():
    # floor((2i+1)·K / (2T)) for T = 4
    assert hv.resample_indices(6, 4).tolist() == [0, 2, 3, 5]
    assert hv.resample_indices(3, 4).tolist() == [0, 1, 1, 2]  # repeats, order kept
    assert hv.resample_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert hv.resample_indices(4, 4).tolist() == [0, 1, 2, 3]
    assert hv.resample_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(EmobenchError):
        hv.resample_indices(0, 4)


def test_normalisation_equals_the_model_processor(tiny):
    from transformers import VideoMAEImageProcessor

    from emobench.models.hfvideo.loading import inspect_folder, load_classifier, load_normalisation

    norm = load_normalisation(tiny)
    assert norm.source.startswith("VideoMAE") and norm.mean == (0.485, 0.456, 0.406)
    net = load_classifier(tiny, inspect_folder(tiny, "x"), LABELS, norm, 0, "x")
    assert net.classifier.out_features == 3 and net.hf.config.id2label[2] == "sadness"
    frames = np.random.default_rng(5).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    proc = VideoMAEImageProcessor.from_pretrained(tiny)
    ref = proc([list(v) for v in frames], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(net.pixels(torch.from_numpy(frames)), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rebalancing", ["instance-balanced", "decoupled-crt"])
def test_finetuning_lowers_the_training_loss(tiny, tmp_path, monkeypatch, rebalancing):
    snapshots = {}
    original = hvt.retrain_classifier

    def spy(net, *args, **kw):
        snapshots["before"] = {k: v.clone() for k, v in net.state_dict().items()}
        out = original(net, *args, **kw)
        snapshots["after"] = {k: v.clone() for k, v in net.state_dict().items()}
        return out

    monkeypatch.setattr(hvt, "retrain_classifier", spy)
    m = create_model(f"hfvideo:{tiny}", {"lr": 1e-3})
    m.fit(_ctx(tmp_path, rebalancing))
    h = m.history
    ft = [loss for loss, p in zip(h["train_loss"], h["phase"], strict=True) if p == "finetune"]
    assert len(ft) == TRAIN["epochs"] and ft[-1] < 0.7 * ft[0]
    assert h["n_train"] + h["n_val"] == 12 and h["n_val"] == 3
    if rebalancing != "decoupled-crt":
        assert "crt" not in h["phase"] and not snapshots
        return
    assert h["phase"].count("crt") == TRAIN["crt_epochs"]
    before, after = snapshots["before"], snapshots["after"]
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["hf.classifier.bias", "hf.classifier.weight"]
    # the re-trained head is the one used for prediction
    assert torch.equal(m._net.hf.classifier.weight.cpu(), after["hf.classifier.weight"])


def test_checkpoint_is_reused_and_a_damaged_one_is_retrained(tiny, tmp_path):
    clips = _inputs(k=4)
    first = create_model(f"hfvideo:{tiny}", {"lr": 1e-3})
    first.fit(_ctx(tmp_path, epochs=2))
    ref = _scores(first, clips)
    (path,) = (tmp_path / "ckpt").glob("*.safetensors")
    assert path.with_suffix(".json").is_file()

    steps = dict(hvt.OPTIMIZER_STEPS)
    decoded = []
    again = create_model(f"hfvideo:{tiny}", {"lr": 1e-3})
    again.fit(_ctx(tmp_path, decoded=decoded, epochs=2))
    assert steps == hvt.OPTIMIZER_STEPS and decoded == []  # no training, no decoding
    assert again.describe()["checkpoint_reused"] is True
    np.testing.assert_array_equal(_scores(again, clips), ref)

    # a truncated checkpoint: one warning, trained again (here decoding batch by batch,
    # which must not change the weights: same seed, same draws) to the same weights
    path.write_bytes(path.read_bytes()[:100])
    warnings, decoded = [], []
    redo = create_model(f"hfvideo:{tiny}", {"lr": 1e-3, "preload_max_gb": 0.0})
    redo.fit(_ctx(tmp_path, warnings=warnings, decoded=decoded, epochs=2))
    assert len(warnings) == 1 and "damaged checkpoint" in warnings[0] and path.name in warnings[0]
    assert "\n" not in warnings[0]
    assert hvt.OPTIMIZER_STEPS["finetune"] > steps["finetune"]
    assert redo.history["preloaded"] is False and max(decoded) < 12  # per batch, not all
    assert redo.describe()["checkpoint_reused"] is False
    np.testing.assert_array_equal(_scores(redo, clips), ref)
    assert path.stat().st_size > 1000  # rewritten whole


@pytest.mark.parametrize("preload_max_gb", [4.0, 0.0], ids=["preloaded", "per-batch"])
def test_clips_that_fail_to_decode_are_left_out(tiny, tmp_path, preload_max_gb):
    from emobench.training.loop import stratified_split

    _, rows = _clips()
    codes = np.array([LABELS.index(lb) for lb in rows["label"]])
    train_pos, val_pos = stratified_split(codes, TRAIN["val_fraction"], 0)  # seed 0's split
    broken = {f"c{val_pos[0]:02d}", f"c{train_pos[0]:02d}"}  # one validation, one training
    m = create_model(f"hfvideo:{tiny}", {"lr": 1e-3, "preload_max_gb": preload_max_gb})
    decoded = []
    m.fit(_ctx(tmp_path, decoded=decoded, broken=broken, epochs=1))
    h = m.history
    assert h["preloaded"] is (preload_max_gb > 0)
    assert not broken & {f"c{i:02d}" for i in h["val_indices"]}
    if preload_max_gb > 0:  # known up front: not in the split at all
        assert decoded == [12] and h["n_train"] + h["n_val"] == 10 and h["decoded_clips"] == 10
    else:  # validation clips are checked before training, training clips batch by batch
        assert h["val_indices"] == [int(p) for p in val_pos[1:]] and h["n_train"] == 9
        assert max(decoded) <= 8
    assert np.isfinite(h["train_loss"]).all() and np.isfinite(h["val_loss"]).all()
    probe = create_model(f"hfvideo:{tiny}", {"frozen": True})
    probe.fit(_ctx(tmp_path, broken=broken, epochs=1))
    assert probe.history["n_train"] + probe.history["n_val"] == 10


def test_gradient_accumulation_equals_the_larger_batch(tiny, tmp_path):
    """4 clips × 2 accumulated passes take the same steps as batches of 8 (same draws:
    TSN indices come from one stream in clip order, no dropout in VideoMAE)."""
    clips = _inputs(k=4)
    scores = []
    for opts in ({"batch_size": 8}, {"batch_size": 4, "grad_accum": 2}, {"batch_size": 4}):
        m = create_model(f"hfvideo:{tiny}", {"lr": 1e-3, **opts})
        m.fit(_ctx(tmp_path / str(len(scores)), epochs=1))
        scores.append(_scores(m, clips))
    np.testing.assert_allclose(scores[1], scores[0], atol=1e-5, rtol=0)
    assert np.abs(scores[2] - scores[0]).max() > 1e-3  # batches of 4: other steps


@pytest.mark.parametrize("arch", ["videomae", "vivit", "vjepa2"])
def test_layer_decay_groups_have_the_hand_computed_rates(tmp_path, arch):
    from hfvideo_tiny import build_classifier

    from emobench.models.hfvideo.loading import inspect_folder, load_classifier, load_normalisation

    folder = build_classifier(tmp_path / arch, arch)
    net = load_classifier(
        folder, inspect_folder(folder, arch), LABELS, load_normalisation(folder), 0, arch
    )
    depth = hvt.layer_ids(net)
    blocks = {"videomae": "videomae.encoder.layer", "vivit": "vivit.layers",
              "vjepa2": "vjepa2.encoder.layer"}[arch]  # fmt: skip
    for name, d in depth.items():  # 2 blocks: embeddings 0, block i → i + 1, the rest 3
        if ".predictor." in name:  # V-JEPA 2's predictor (unused by the classifier)
            assert d == 3, name
        elif f".{blocks}.0." in f".{name[3:]}":
            assert d == 1, name
        elif f".{blocks}.1." in f".{name[3:]}":
            assert d == 2, name
        elif ".embeddings." in name:
            assert d == 0, name
        else:
            assert d == 3 and any(t in name for t in ("classifier", "norm", "pooler")), name
    groups = hvt.param_groups(net, 1.0, 0.5, 0.01)
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    for name, p in net.named_parameters():
        lr, wd = rate[id(p)]
        assert lr == 0.5 ** (3 - depth[name])
        tokens = name.rsplit(".", 1)[1] in ("cls_token", "position_embeddings")  # ViViT
        assert wd == (0.0 if p.ndim == 1 or tokens else 0.01), name
    assert sum(len(g["params"]) for g in groups) == len(depth)


def test_warmup_then_cosine_rates_are_the_hand_computed_ones():
    w = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": [w[0]], "lr": 1.0}, {"params": [w[1]], "lr": 0.5}])
    sched = hvt.warmup_cosine(opt, warmup=2, total=6)
    seen = []
    for _ in range(6):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    c = np.cos(np.pi / 4)  # 0.5(1 + cos(π·1/4)) and 0.5(1 + cos(π·3/4))
    want = np.array([0.5, 1.0, 1.0, 0.5 * (1 + c), 0.5, 0.5 * (1 - c)])
    np.testing.assert_allclose(np.array(seen), np.stack([want, want / 2], 1), atol=1e-12)


@pytest.mark.parametrize(
    ("arch", "frames", "error"),
    [
        ("timesformer", 6, None),  # time embeddings interpolated: any frame count
        ("vjepa2", 6, None),  # rotary positions, pixel_values_videos, attentive pooler
        ("vivit", None, None),
        ("vivit", 6, "takes exactly 4 frames"),
    ],
)
def test_other_architectures_probe_and_predict(tmp_path, arch, frames, error):
    from hfvideo_tiny import build_classifier

    folder = build_classifier(tmp_path / arch, arch)
    opts = {"frozen": True, "epochs": 2, **({"num_frames": frames} if frames else {})}
    if error:
        with pytest.raises(EmobenchError, match=error):
            create_model(f"hfvideo:{folder}", opts)
        return
    m = create_model(f"hfvideo:{folder}", opts)
    warnings = []
    m.fit(_ctx(tmp_path, warnings=warnings))
    assert len(warnings) == 1 and "no image/video processor" in warnings[0]
    scores = _scores(m, _inputs(k=5))
    assert scores.shape == (4, 3) and np.isfinite(scores).all()
    info = m.describe()
    assert info["architecture"] == arch and info["frames_model"] == (frames or 4)
    assert info["normalisation"]["source"].startswith("imagenet")
    assert m._net.hf.config.id2label == dict(enumerate(LABELS))


def test_frozen_features_equal_a_direct_forward_and_come_from_the_cache(tiny, tmp_path):
    from transformers import VideoMAEForVideoClassification, VideoMAEImageProcessor

    clips = _inputs(k=6)
    m = create_model(f"hfvideo:{tiny}", {"frozen": True})
    before = dict(hv.FEATURE_STATS)
    m.fit(_ctx(tmp_path, "class-balanced"))
    assert hv.FEATURE_STATS["computed"] - before["computed"] == 12  # every training clip
    m.reset_stats()
    scores = _scores(m, clips)
    info = m.describe()
    assert (info["feature_cache_misses"], info["feature_cache_hits"]) == (4, 0)
    assert info["mode"] == "frozen-probe" and info["resampled"] is True
    assert info["frames_in"]["mean"] == 6 and info["frames_model"] == 4

    # reference: VideoMAE's mean-pooled, fc-normed tokens on the processor's pixels
    hf = VideoMAEForVideoClassification.from_pretrained(tiny).eval()
    proc = VideoMAEImageProcessor.from_pretrained(tiny)
    pos = hv.resample_indices(6, 4)
    pixels = proc([list(c.frames[pos]) for c in clips], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want = hf.fc_norm(hf.videomae(pixels).last_hidden_state.mean(1)).numpy()
    keys = [m._feature_key(c.clip_id, c.indices[pos]) for c in clips]
    got = np.stack([np.load(m._cache_path(k)) for k in keys])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

    # a second model (no checkpoint reuse: the probe trains again) and a second predict
    # read every feature from the cache; the same seed gives the same probe and scores
    computed = hv.FEATURE_STATS["computed"]
    other = create_model(f"hfvideo:{tiny}", {"frozen": True, "reuse_checkpoints": False})
    other.fit(_ctx(tmp_path, "class-balanced", decoded=(decoded := [])))
    other.reset_stats()
    np.testing.assert_allclose(_scores(other, clips), scores, atol=1e-6)
    assert hv.FEATURE_STATS["computed"] == computed and decoded == []
    assert other.describe()["feature_cache_hits"] == 4 and other._net is None  # never loaded
    # another frame order presents other frames: a new key, computed
    shuffled = [ClipInput(c.clip_id, c.frames[::-1], c.indices[::-1], c.fps) for c in clips]
    other.predict(shuffled)
    assert hv.FEATURE_STATS["computed"] == computed + 4


def test_engine_run_scores_every_test_clip(tiny, tmp_path):
    root = make_synth(
        tmp_path / "synth", profile="uniform:anger,happiness,sadness", n_train=9, n_test=6,
        n_train_subjects=2, seed=4,
    )  # fmt: skip
    cfg = validate_config(
        {
            "name": "hfvideo",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [
                {
                    "adapter": f"hfvideo:{tiny}",
                    "name": "ft",
                    "options": {
                        "lr": 1e-3,
                        "epochs": 2,
                        "batch_size": 2,
                        "grad_accum": 2,
                        "layer_decay": 0.75,
                        "warmup_epochs": 1,
                    },
                },
                {
                    "adapter": f"hfvideo:{tiny}",
                    "name": "probe",
                    "options": {"frozen": True, "epochs": 2, "train": {"val_fraction": 0.0}},
                },
            ],
            "sweep": {"sampler": ["uniform:4", "uniform:6"], "rebalancing": ["decoupled-crt"]},
            "train": {"val_fraction": 0.2, "crt_epochs": 2},
            "cache": {"dir": str(tmp_path / "cache")},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )
    engine = Engine(cfg, tmp_path / "run", progress=False)
    engine.load_datasets()
    engine.execute()
    run = RunFolder(tmp_path / "run")
    preds = run.read_predictions()
    score_cols = [c for c in preds.columns if c.startswith("score:")]
    assert len(score_cols) == 3
    assert preds.height == 4 * 6  # 2 models × 2 samplers × 6 test clips
    assert np.isfinite(preds.select(score_cols).to_numpy()).all()
    # the prediction is the argmax of the scores, by label name
    best = np.array([c.removeprefix("score:") for c in score_cols])[
        preds.select(score_cols).to_numpy().argmax(1)
    ]
    assert (preds["pred"].to_numpy() == best).all()
    infos = run.read_manifest()["cell_info"]
    by_sampler = {}
    for folds in infos.values():
        info = folds["1"]
        assert info["frames_model"] == 4 and info["training"]["epochs_run"] >= 2
        if info["mode"] == "frozen-probe":  # no validation split: no validation UAR
            assert info["training"]["best_val_uar"] is None and info["training"]["n_val"] == 0
        by_sampler.setdefault(info["frames_in"]["mean"], set()).add(info["resampled"])
    assert by_sampler == {4.0: {False}, 6.0: {True}}


def test_missing_model_and_bad_options_are_one_error_line(tiny, tmp_path):
    with pytest.raises(EmobenchError) as exc:
        create_model(f"hfvideo:{tmp_path}/nothing-here")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("hfvideo:") and "does not exist" in msg
    with pytest.raises(EmobenchError, match="not in the local Hugging Face cache"):
        create_model("hfvideo:nobody/not-a-cached-videomae")
    with pytest.raises(UnknownModelError, match=r"options.frozn: unknown setting"):
        create_model(f"hfvideo:{tiny}", {"frozn": True})
    with pytest.raises(UnknownModelError, match=r"options.grad_accum"):
        create_model(f"hfvideo:{tiny}", {"grad_accum": 0})
    with pytest.raises(EmobenchError, match="takes exactly 4 frames"):
        create_model(f"hfvideo:{tiny}", {"num_frames": 8})
    with pytest.raises(EmobenchError, match="takes 32 px frames"):
        create_model(f"hfvideo:{tiny}", {"frame_size": 64})
    with pytest.raises(EmobenchError, match=r"models.0.options.batch_size"):
        validate_config(
            {
                "name": "x",
                "datasets": [{"name": "synth", "root": str(tmp_path)}],
                "models": [{"adapter": f"hfvideo:{tiny}", "options": {"batch_size": "4"}}],
            }
        )


def test_text_enrichment_is_one_error_line_and_dense_frames_are_a_clip(tiny, tmp_path):
    m = create_model(f"hfvideo:{tiny}", {"lr": 1e-3, "epochs": 1})
    m.fit(_ctx(tmp_path, epochs=1))
    (clip,) = _inputs(k=8, n=1)
    dense = ClipInput(clip.clip_id, clip.frames, clip.indices, clip.fps, "msce-dense")
    np.testing.assert_array_equal(_scores(m, [dense]), _scores(m, [clip]))
    for enrichment in ("msce", "msce-text"):
        text = ClipInput(clip.clip_id, clip.frames[::4], clip.indices[::4], clip.fps, enrichment)
        with pytest.raises(EmobenchError, match="vision-only") as exc:
            m.predict([text])
        assert "\n" not in str(exc.value)


def test_out_of_gpu_memory_while_training_is_one_line(tiny, tmp_path, monkeypatch):
    def oom(*args, **kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(hvt, "_finetune_phase", oom)
    m = create_model(f"hfvideo:{tiny}", {"batch_size": 4})
    with pytest.raises(EmobenchError) as exc:
        m.fit(_ctx(tmp_path))
    msg = str(exc.value)
    assert "\n" not in msg and "batches of 4 clips × 4 frames" in msg and "grad_accum" in msg
    assert not list((tmp_path / "ckpt").glob("*.safetensors"))  # nothing half-written
