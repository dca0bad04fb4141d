"""``maedfer:``: parity with the released architecture, safe checkpoint loading, class
order, the authors' test protocol, evaluation and fine-tuning through the engine."""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATA = Path(__file__).parent / "data"
TINY = DATA / "maedfer_tiny.pth"
#: what the tiny checkpoint's shapes cannot tell (its args give size, frames and regions)
TINY_OPTS = {"heads": 4}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _tiny_net(pooling: str | None = None, path: Path = TINY):
    from emobench.models.maedfer.checkpoint import infer_config, load_network, released_tensors

    rel = released_tensors(path, "maedfer:tiny")
    cfg = infer_config(rel, {**TINY_OPTS, "pooling": pooling}, None, "maedfer:tiny")
    return load_network(rel, cfg, "maedfer:tiny", pretrained=False), cfg


@pytest.mark.parametrize("pooling", ["region", "org", "all"])
def test_logits_match_the_released_architecture(pooling: str) -> None:
    """The tiny checkpoint (released key layout) gives the reference logits computed with
    the authors' own model file (tests/data/maedfer_tiny.md): same argmax, probabilities
    within 1e-4 (observed: ~3e-7)."""
    ref = np.load(DATA / "maedfer_tiny_reference.npz")
    net, cfg = _tiny_net(pooling)
    assert (cfg.depth, cfg.dim, cfg.num_classes, cfg.region_size) == (2, 32, 7, (2, 1, 2))
    with torch.no_grad():
        logits = net(torch.from_numpy(ref["frames"])).double().numpy()
    want = ref[f"logits_{pooling}"]
    assert (logits.argmax(1) == want.argmax(1)).all()
    assert np.abs(_softmax(logits) - _softmax(want)).max() < 1e-4


def test_released_args_give_the_defaults_shapes_cannot() -> None:
    """Image size, frames, regions and pooling come from the pickled ``args``; the
    default pooling of the released scripts is the region tokens."""
    _, cfg = _tiny_net()
    assert (cfg.image_size, cfg.frames, cfg.pooling, cfg.heads) == (32, 8, "region", 4)


def test_safetensors_and_pretraining_layouts_load(tmp_path: Path) -> None:
    """The same tensors as safetensors, and in the pre-training layout (``encoder.``
    prefix, decoder, no head) as a fine-tuning start."""
    from safetensors.torch import save_file

    from emobench.models.maedfer.checkpoint import infer_config, load_network, released_tensors
    from emobench.models.videovit import read_state_dict

    tensors = read_state_dict(TINY, "t").tensors
    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(st))
    rel = released_tensors(st, "t")
    cfg = infer_config(rel, {**TINY_OPTS, "image_size": 32, "frames": 8,
                             "region_size": [2, 1, 2]}, None, "t")  # fmt: skip
    load_network(rel, cfg, "t", pretrained=False)
    enc = {f"encoder.{k}": v for k, v in tensors.items() if not k.startswith(("head", "fc_norm"))}
    enc["decoder.head.weight"] = torch.zeros(3, 3)
    enc["encoder.norm.weight"] = torch.ones(32)
    enc["mask_token"] = torch.zeros(1, 1, 32)
    pre = tmp_path / "pretrained.pth"
    torch.save({"model": enc, "args": argparse.Namespace(input_size=32, num_frames=8,
                lg_region_size=[2, 1, 2])}, pre)  # fmt: skip
    rel = released_tensors(pre, "t")
    assert not rel.has_head
    cfg = infer_config(rel, TINY_OPTS, 5, "t")
    net = load_network(rel, cfg, "t", pretrained=True)
    assert net.head.out_features == 5
    assert torch.equal(net.blocks[1].third_attn.kv.weight, tensors["blocks.1.third_attn.kv.weight"])


def test_a_checkpoint_pickling_another_class_is_refused(tmp_path: Path) -> None:
    from emobench.models.maedfer.checkpoint import released_tensors
    from emobench.models.videovit import CheckpointError, read_state_dict

    bad = tmp_path / "bad.pth"
    tensors = read_state_dict(TINY, "t").tensors
    torch.save({"model": tensors, "extra": fractions.Fraction(1, 3)}, bad)
    with pytest.raises(CheckpointError) as err:
        released_tensors(bad, "maedfer:bad.pth")
    msg = str(err.value)
    assert "\n" not in msg and "fractions.Fraction" in msg and "weights_only=True" in msg


def test_region_count_mismatch_is_one_line() -> None:
    from emobench.models.maedfer.checkpoint import infer_config, released_tensors
    from emobench.models.videovit import CheckpointError

    rel = released_tensors(TINY, "t")
    with pytest.raises(CheckpointError, match="region tokens") as err:
        infer_config(rel, {**TINY_OPTS, "region_size": [1, 1, 2]}, None, "t")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- the adapter

DFEW_HEAD = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
SMALL = {**TINY_OPTS, "image_size": 32, "frames": 8}
TRAIN = {"epochs": 2, "patience": 10, "val_fraction": 0.25, "crt_epochs": 2, "batch_size": 4}


def _ctx(tmp_path, labels, dataset="dfew", rebalancing="instance-balanced", n=12):
    import polars as pl

    from emobench.models.base import FitContext

    rng = np.random.default_rng(0)
    frames, rows = {}, []
    for i in range(n):
        c = i % len(labels)
        x = rng.integers(0, 80, (int(rng.integers(8, 14)), 32, 32, 3))
        x[..., c % 3] += 150
        frames[f"c{i:02d}"] = x.astype(np.uint8)
        rows.append({"clip_id": f"c{i:02d}", "label": labels[c], "n_frames": len(x)})

    def load(model, sel):
        return [frames[c] for c in sel["clip_id"]], list(range(sel.height))

    warnings: list[str] = []
    ctx = FitContext(
        dataset=dataset, fold=1, seed=0, rebalancing=rebalancing, labels=list(labels),
        train_index=pl.DataFrame(rows), checkpoint_dir=tmp_path / "ckpt",
        device=torch.device("cpu"), train_options=TRAIN, load_frames=load,
        load_features=None, warn=warnings.append, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    return ctx, warnings


def _clip(frames, i=0):
    from emobench.models.base import ClipInput

    return ClipInput(clip_id=f"t{i}", frames=frames, indices=np.arange(len(frames)), fps=25.0)


def _model(argument, **options):
    from emobench.models.registry import create_model

    return create_model(f"maedfer:{argument}", {**SMALL, **options})


def test_released_head_scores_come_out_in_the_runs_label_order(tmp_path: Path) -> None:
    """Head index i is DFEW's official class i (1 Happy ... 7 Fear); the run's labels
    (here alphabetical) pick their columns by name."""
    ref = np.load(DATA / "maedfer_tiny_reference.npz")
    labels = sorted(DFEW_HEAD)
    model = _model(str(TINY))
    ctx, _ = _ctx(tmp_path, labels)
    model.fit(ctx)
    scores = np.stack([o.scores for o in model.predict([_clip(f) for f in ref["frames"]])])
    want = ref["logits_region"][:, [DFEW_HEAD.index(lb) for lb in labels]]
    assert np.abs(_softmax(scores) - _softmax(want)).max() < 1e-4
    info = model.describe()
    assert info["head_classes"] == DFEW_HEAD and info["precision"] == "fp32"


def test_classes_override_and_unknown_orders_are_one_line(tmp_path: Path) -> None:
    from emobench.models.videovit import CheckpointError

    ctx, _ = _ctx(tmp_path, ["anger", "happiness", "sadness"], dataset="synth")
    with pytest.raises(CheckpointError, match="options.classes"):
        _model(str(TINY)).fit(ctx)
    order = ["anger", "happiness", "sadness", "neutral", "fear", "disgust", "surprise"]
    model = _model(str(TINY), classes=["angry", "happy", "sad", "neutral", "fear",
                                       "disgust", "surprise"])  # fmt: skip
    ctx, warnings = _ctx(tmp_path, ["sadness", "anger", "happiness"], dataset="synth")
    model.fit(ctx)
    assert model._columns == [order.index(x) for x in ["sadness", "anger", "happiness"]]
    assert len(warnings) == 1 and "left out" in warnings[0]


def test_authors_test_protocol_averages_the_softmax_of_two_segments(tmp_path: Path) -> None:
    """40 presented frames, every 4th (the checkpoint's sampling_rate) → 10 frames; the
    two 8-frame windows start at 0 and 2; the score is log of their mean softmax."""
    from emobench.models.maedfer.protocol import authors_views

    assert [v.tolist() for v in authors_views(40, 4, 8, 2)] == [
        [0, 4, 8, 12, 16, 20, 24, 28], [8, 12, 16, 20, 24, 28, 32, 36]]  # fmt: skip
    assert [v.tolist() for v in authors_views(9, 4, 8, 2)] == [[0, 4, 8, 8, 8, 8, 8, 8]] * 2
    frames = np.random.default_rng(3).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    model = _model(str(TINY), test_protocol="authors")
    ctx, _ = _ctx(tmp_path, DFEW_HEAD)
    model.fit(ctx)
    score = model.predict([_clip(frames)])[0].scores
    net, _ = _tiny_net()
    with torch.no_grad():
        views = torch.from_numpy(np.stack([frames[0:40:4][:8], frames[0:40:4][2:10]]))
        p = torch.softmax(net(views).double(), -1).mean(0).numpy()
    assert np.abs(np.exp(score) - p).max() < 1e-6
    assert model.describe()["views"] == 2 and model.describe()["sampling_rate"] == 4


def _pretrained(tmp_path: Path) -> Path:
    from emobench.models.videovit import read_state_dict

    tensors = read_state_dict(TINY, "t").tensors
    enc = {f"encoder.{k}": v for k, v in tensors.items() if not k.startswith(("head", "fc_norm"))}
    path = tmp_path / "pretrained.pth"
    torch.save({"model": enc, "args": argparse.Namespace(input_size=32, num_frames=8,
                lg_region_size=[2, 1, 2])}, path)  # fmt: skip
    return path


@pytest.mark.parametrize("rebalancing", ["instance-balanced", "decoupled-crt"])
def test_finetuning_from_the_pretrained_encoder_trains_and_is_reused(
    tmp_path: Path, rebalancing: str
) -> None:
    from emobench.training import video as hvt

    labels = ["anger", "happiness", "sadness"]
    pre = _pretrained(tmp_path)
    ctx, _ = _ctx(tmp_path, labels, dataset="synth", rebalancing=rebalancing)
    model = _model(str(pre), finetune=True, lr=1e-3, batch_size=2, warmup_epochs=1)
    model.fit(ctx)
    assert model.history["epochs_run"] >= 1 and len(model.labels) == 3
    steps = dict(hvt.OPTIMIZER_STEPS)
    again = _model(str(pre), finetune=True, lr=1e-3, batch_size=2, warmup_epochs=1)
    again.fit(ctx)
    assert steps == hvt.OPTIMIZER_STEPS and again.describe()["finetuned_reused"]
    frames = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    a, b = model.predict([_clip(frames)])[0].scores, again.predict([_clip(frames)])[0].scores
    assert a.shape == (3,) and np.allclose(a, b)


def test_layer_decay_follows_the_released_assignment() -> None:
    from emobench.training.schedule import param_groups

    net, _ = _tiny_net()
    ids = net.layer_ids()
    assert ids["patch_embed.proj.weight"] == 0 and ids["blocks.1.mlp.fc1.weight"] == 2
    assert ids["lg_region_tokens"] == ids["head.weight"] == 3
    groups = param_groups(net, 1.0, 0.5, 0.05)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert lr_of[id(net.patch_embed.proj.weight)] == 0.125
    assert lr_of[id(net.head.weight)] == 1.0 and wd_of[id(net.lg_region_tokens)] == 0.0


def test_missing_checkpoints_are_one_error_line(tmp_path: Path) -> None:
    from emobench.errors import EmobenchError

    for arg in (str(tmp_path / "nope.pth"), str(tmp_path / "fold{fold}" / "ckpt.pth")):
        with pytest.raises(EmobenchError) as err:
            _model(arg)
        assert "\n" not in str(err.value) and "maedfer:" in str(err.value)
    (tmp_path / "fold2").mkdir()
    (tmp_path / "fold2" / "ckpt.pth").write_bytes(TINY.read_bytes())
    model = _model(str(tmp_path / "fold{fold}" / "ckpt.pth"))  # fold 2 exists: builds
    ctx, _ = _ctx(tmp_path, DFEW_HEAD)  # fold 1 is asked for
    with pytest.raises(EmobenchError, match="fold1"):
        model.fit(ctx)


def test_engine_runs_the_released_head_with_both_test_protocols(tmp_path: Path) -> None:
    from conftest import make_synth

    from emobench.config import validate_config
    from emobench.results import RunFolder
    from emobench.runner.execute import Engine

    root = make_synth(
        tmp_path / "synth", profile="uniform:anger,happiness,sadness", n_train=6, n_test=4,
        n_train_subjects=2, seed=4,
    )  # fmt: skip
    classes = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    opts = {**SMALL, "classes": classes}
    cfg = validate_config(
        {
            "name": "maedfer",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [
                {"adapter": f"maedfer:{TINY}", "name": "resample", "options": opts},
                {
                    "adapter": f"maedfer:{TINY}",
                    "name": "authors",
                    "options": {**opts, "test_protocol": "authors"},
                },
            ],  # fmt: skip
            "sweep": {"sampler": ["uniform:8", "dense"]},
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
    cols = [c for c in preds.columns if c.startswith("score:")]
    assert len(cols) == 3 and preds.height == 2 * 2 * 4
    assert np.isfinite(preds.select(cols).to_numpy()).all()
    infos = [f["1"] for f in run.read_manifest()["cell_info"].values()]
    assert {i["test_protocol"] for i in infos} == {"resample", "authors"}
    assert all(i["views"] == (8 if i["test_protocol"] == "authors" else 4) for i in infos)


def test_paper_preset_dry_run_names_the_missing_checkpoint(tmp_path: Path) -> None:
    from test_presets import make_dfew, runner

    from emobench.cli import app

    root = make_dfew(tmp_path / "DFEW")
    args = ["run", "paper-shuffle-dfew", "--set", f"datasets.0.root={root}", "--dry-run"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "o1")], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "missing: mae-dfer: maedfer:weights/MAE-DFER/dfew/fold{fold}/" in res.output
    for f in range(1, 6):
        (tmp_path / f"fold{f}.pth").write_bytes(TINY.read_bytes())
    where = f'models.6.adapter="maedfer:{tmp_path}/fold{{fold}}.pth"'
    res = runner.invoke(app, [*args, "--set", where, "--out", str(tmp_path / "o2")],
                        terminal_width=250)  # fmt: skip
    assert res.exit_code == 0 and "missing: mae-dfer" not in res.output, res.output
