"""``finetune = "lora"`` of the ``hf:`` family on a tiny random Qwen2.5-VL (CPU, seconds).

Hand-made clips whose colour depends on the label go through a :class:`FitContext` built
here (``load_frames`` returns the arrays), so each test controls exactly what is trained.
The checks compare against independent references: a plain forward for the differentiable
answer log-probabilities, the tensors before and after each training stage, the scores of a
fresh model that loads the saved adapters, the answer cache keys of a zero-shot model.
"""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from emobench.errors import EmobenchError  # noqa: E402
from emobench.models.base import ClipInput, FitContext  # noqa: E402
from emobench.models.hf import adapter as hf  # noqa: E402
from emobench.models.hf import finetune as ft  # noqa: E402
from emobench.training import lora as lora_training  # noqa: E402

LABELS = ["happiness", "sadness", "anger"]
#: per label: the clip colour (happiness bright, sadness dark, anger red)
COLOURS = {"happiness": (230, 230, 230), "sadness": (20, 20, 40), "anger": (220, 30, 30)}
BASE = {
    "finetune": "lora",
    "scoring": "loglik",
    # mean per-token class logits: the labels' different token counts do not dominate the
    # class loss, so the epoch loss of a tiny random model is not swamped by which labels
    # an epoch happened to draw
    "length_norm": True,
    "input": "video",
    "lora_r": 4,
    "finetune_frames": 2,
    "finetune_epochs": 3,
    "finetune_lr": 2e-2,
    "finetune_batch_size": 3,
    "batch_size": 4,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these are many tiny ops, which on a shared 2-core machine run
    ~20x slower with 2 threads (OpenMP threads wait for each other) than with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from hf_tiny import build_qwen25_vl

    return build_qwen25_vl(tmp_path_factory.mktemp("hf-lora") / "qwen")


def _clip_frames(label: str, i: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(100 + i)
    base = np.array(COLOURS[label], dtype=np.int16)
    noise = rng.integers(-20, 21, (n, 28, 28, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _data(counts=(5, 3, 2)):
    """A long-tailed training set: clip ids, labels, frames."""
    ids, labels, frames = [], [], {}
    i = 0
    for lb, n in zip(LABELS, counts, strict=True):
        for _ in range(n):
            cid = f"tr{i:02d}"
            ids.append(cid)
            labels.append(lb)
            frames[cid] = _clip_frames(lb, i)
            i += 1
    index = pl.DataFrame(
        {
            "clip_id": ids,
            "path": ids,
            "media": ["frames"] * len(ids),
            "label": labels,
            "split": ["train"] * len(ids),
            "fold": [1] * len(ids),
            "n_frames": [6] * len(ids),
            "fps": [25.0] * len(ids),
            "onset": [None] * len(ids),
            "apex": [None] * len(ids),
            "offset": [None] * len(ids),
        },
        schema_overrides={"onset": pl.Int64, "apex": pl.Int64, "offset": pl.Int64},
    )
    return index, frames


def _ctx(tmp_path, rebalancing="instance-balanced", warnings=None, broken=()):
    index, frames = _data()

    def load_frames(model, rows):
        """The engine's contract: frames of the clips that decode, and their positions."""
        ids = rows["clip_id"].to_list()
        kept = [i for i, c in enumerate(ids) if c not in broken]
        return [frames[ids[i]] for i in kept], kept

    return FitContext(
        dataset="synth",
        fold=1,
        seed=0,
        rebalancing=rebalancing,
        labels=LABELS,
        train_index=index,
        checkpoint_dir=tmp_path / "ckpt",
        device=torch.device("cpu"),
        train_options={"val_fraction": 0.3, "patience": 10, "crt_epochs": 1},
        load_frames=load_frames,
        load_features=None,
        warn=(warnings.append if warnings is not None else lambda _: None),
        cache_dir=tmp_path / "cache",
    )


def _test_clips():
    return [
        ClipInput(
            clip_id=f"te{i}",
            frames=_clip_frames(lb, 50 + i, 4),
            indices=np.arange(4) * 2,
            fps=25.0,
        )
        for i, lb in enumerate(LABELS)
    ]


def _scores(model, clips):
    return np.stack([o.scores for o in model.predict(clips)])


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_lora_trains_saves_reloads_and_never_leaks(qwen, tmp_path):
    clips = _test_clips()
    zs = {"scoring": "loglik", "input": "video", "length_norm": True, "cache": False}
    zero = hf.HFModel(str(qwen), zs)
    zero.fit(_ctx(tmp_path))
    before_zero = _scores(zero, clips)
    base_state = _state(zero._model)

    m = hf.HFModel(str(qwen), {**BASE, "cache": False})
    steps = ft.TRAIN_STEPS["optimizer"]
    m.fit(_ctx(tmp_path))
    # 10 clips, 30 % per class to validation (2 + 1 + 1): 6 train, batches of 3 → 2 steps
    assert ft.TRAIN_STEPS["optimizer"] - steps == 3 * 2
    hist = ft.read_adapter(m._adapter.folder)
    summary = m._adapter.summary
    assert summary == hist.summary and summary["epochs_run"] == 3
    first, last = summary["train_loss_first_last"]
    assert last < first - 0.1, (first, last)  # the training loss falls
    assert summary["n_train"] == 6 and summary["n_val"] == 4
    # only LoRA tensors are new; every base weight is unchanged
    tuned = _state(m._model)
    for k, v in tuned.items():
        if "lora_" in k:
            continue
        ref = base_state.pop(k.replace(".base_layer", ""))
        assert torch.equal(v, ref), k
    assert not base_state  # every base tensor was compared
    assert any(k.startswith("model.language_model.layers.0.self_attn.q_proj") for k in tuned)
    assert not any("visual" in k and "lora_" in k for k in tuned)  # vision tower untouched
    tuned_scores = _scores(m, clips)
    assert not np.allclose(tuned_scores, before_zero, atol=1e-3)

    # a fresh model loads the saved adapters from disk: no training step, identical scores
    hf.release_loaded()  # nothing in memory to reuse
    steps = ft.TRAIN_STEPS["optimizer"]
    again = hf.HFModel(str(qwen), {**BASE, "cache": False})
    again.fit(_ctx(tmp_path))
    assert ft.TRAIN_STEPS["optimizer"] == steps and again._adapter.trained_now is False
    assert again._adapter.fingerprint == m._adapter.fingerprint
    assert again._model is None  # loaded lazily, on the first answer not in the cache
    np.testing.assert_allclose(_scores(again, clips), tuned_scores, atol=1e-6, rtol=0)
    assert again._model is not m._model
    info = again.describe()["finetune"]
    assert info["adapter"] == m._adapter.fingerprint and info["training"]["epochs_run"] == 3

    # zero-shot after all this: the plain model, not one with adapters
    zero2 = hf.HFModel(str(qwen), zs)
    zero2.fit(_ctx(tmp_path))
    np.testing.assert_array_equal(_scores(zero2, clips), before_zero)
    assert zero2._adapted is None
    # fine-tuned and zero-shot answers are cached under different keys
    req, _ = zero2._clip_request(clips[0])
    assert zero2._key(req, "loglik", 8) != again._key(req, "loglik", 8)
    # ... but the base-model answers of a fine-tuned model (MSCE descriptions) share them
    assert zero2._key(req, "generate", 8) == again._key(req, "generate", 8, adapters=False)
    # and they are the base model's: MSCE describer calls see no adapters
    turn = [[{"type": "image", "image": clips[0].frames[0]}, {"type": "text", "text": "Describe"}]]
    assert again.chat(turn) == zero2.chat(turn)
    with ft.adapters_off(again._adapted):
        np.testing.assert_allclose(_scores(again, clips), before_zero, atol=1e-5, rtol=0)
    np.testing.assert_allclose(_scores(again, clips), tuned_scores, atol=1e-6, rtol=0)

    # a damaged adapter is reported, removed and trained again
    weights = m._adapter.folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    warnings: list[str] = []
    steps = ft.TRAIN_STEPS["optimizer"]
    third = hf.HFModel(str(qwen), {**BASE, "cache": False})
    third.fit(_ctx(tmp_path, warnings=warnings))
    assert len(warnings) == 1 and "damaged LoRA adapters" in warnings[0]
    assert ft.TRAIN_STEPS["optimizer"] - steps == 6
    assert third._adapter.fingerprint == m._adapter.fingerprint  # seeded: the same adapters


def test_answer_logprobs_match_a_direct_forward(qwen, tmp_path):
    """The differentiable class logits equal the loglik scores, and the end-of-turn term
    equals log p(eot | prompt + answer) from one plain forward per label."""
    m = hf.HFModel(str(qwen), {"scoring": "loglik", "input": "video", "cache": False})
    m.fit(_ctx(tmp_path))
    m._load()
    clip = _test_clips()[0]
    req, _ = m._clip_request(clip)
    enc, _ = m.encode([req])
    answers = m.answer_ids()
    eot = ft.end_of_turn_id(m._model, m._processor)
    with torch.no_grad():
        z, e = ft.answer_logprobs(m, enc, answers, eot)
    np.testing.assert_allclose(z.numpy()[0], m._loglik([req])[0]["scores"], atol=1e-4)
    n = enc["input_ids"].shape[1]
    for c, a in enumerate(answers):
        kw = dict(enc)
        extra = torch.tensor([[*a, eot]])
        kw["input_ids"] = torch.cat([enc["input_ids"], extra], 1)
        kw["attention_mask"] = torch.ones_like(kw["input_ids"])
        if "mm_token_type_ids" in kw:
            zeros = torch.zeros_like(extra, dtype=enc["mm_token_type_ids"].dtype)
            kw["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], zeros], 1)
        with torch.no_grad():
            lp = m._model(**kw).logits[0].double().log_softmax(-1)
        want_z = sum(float(lp[n - 1 + j, t]) for j, t in enumerate(a))
        want_e = float(lp[n - 1 + len(a), eot])
        assert z[0, c].item() == pytest.approx(want_z, abs=1e-4)
        assert e[0, c].item() == pytest.approx(want_e, abs=1e-4)


@pytest.mark.parametrize("stage2", ["last-layers", "label-rows"])
def test_decoupled_second_stage_trains_only_its_parameters(qwen, tmp_path, monkeypatch, stage2):
    seen: dict[str, tuple[dict, dict, dict]] = {}
    real = ft._Trainer.phase

    def spy(self, name, params, *args, **kw):
        before = _state(self.hf._model)
        p0 = {k: v.detach().clone() for k, v in params.items()}
        out = real(self, name, params, *args, **kw)
        seen[name] = (before, _state(self.hf._model), p0, dict(params))
        return out

    monkeypatch.setattr(ft._Trainer, "phase", spy)
    opts = {**BASE, "cache": False, "finetune_epochs": 1, "decoupled_stage2": stage2}
    if stage2 == "label-rows":
        opts["finetune_grad_accum"] = 2  # 6 clips in batches of 3: one step per epoch
    m = hf.HFModel(str(qwen), opts)
    m.fit(_ctx(tmp_path, rebalancing="decoupled-crt"))
    assert set(seen) == {"train", "crt"}
    before, after, _, _ = seen["train"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)  # stage 1: LoRA only
    before, after, p0, params = seen["crt"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if stage2 == "last-layers":
        assert set(params) and all(".layers.1." in k and "lora_" in k for k in params)
        assert changed and all(k.startswith("model.language_model.layers.1.") for k in changed)
        assert all("lora_" in k for k in changed)
    else:
        assert changed == set()  # no model tensor moves, only the label-row delta
        (delta,) = params.values()
        assert not torch.equal(p0["label_rows.delta"], delta)
        saved = ft.read_adapter(m._adapter.folder).folder / ft.LABEL_ROWS_FILE
        assert saved.is_file()
        ids = sorted({t for a in m.answer_ids() for t in a})
        from safetensors.torch import load_file

        assert load_file(str(saved))["ids"].tolist() == ids
        # the delta moves exactly the label tokens' logits; switched off, the base's
        clip = _test_clips()[0]
        req, _ = m._clip_request(clip)
        enc, _ = m.encode([req])
        with torch.no_grad():
            on = m._model(**enc).logits[0, -1]
            with ft.adapters_off(m._adapted):
                off = m._model(**enc).logits[0, -1]
            m._adapted[0].base_model.disable_adapter_layers()
            lora_only = m._model(**enc).logits[0, -1]  # the delta alone
            m._adapted[0].base_model.enable_adapter_layers()
            m._adapted[1].enabled = False
            m._adapted[0].base_model.disable_adapter_layers()
            plain = m._model(**enc).logits[0, -1]
            m._adapted[1].enabled = True
            m._adapted[0].base_model.enable_adapter_layers()
        assert not torch.equal(on, off)
        diff = (lora_only - plain).abs() > 0
        assert sorted(torch.nonzero(diff).flatten().tolist()) == ids
    # reloaded from disk (with the label-row delta): the same scores
    clips = _test_clips()
    want = _scores(m, clips)
    hf.release_loaded()
    again = hf.HFModel(str(qwen), opts)
    again.fit(_ctx(tmp_path, rebalancing="decoupled-crt"))
    assert again._adapter.trained_now is False
    np.testing.assert_allclose(_scores(again, clips), want, atol=1e-6, rtol=0)
    assert (again._adapted[1] is not None) == (stage2 == "label-rows")
    summary = ft.read_adapter(m._adapter.folder).summary
    assert summary["epochs_run"] == 1 + 1  # one epoch per stage
    assert summary["steps"] == (2 if stage2 == "label-rows" else 4)


def test_bad_finetune_options_are_one_error_line(qwen):
    from emobench.models.registry import UnknownModelError, create_model

    with pytest.raises(UnknownModelError) as exc:
        create_model(f"hf:{qwen}", {"finetune": "lora", "lora_r": 0})
    msg = str(exc.value)
    assert "\n" not in msg and "options.lora_r" in msg
    with pytest.raises(UnknownModelError, match='lora_r needs finetune = "lora"'):
        create_model(f"hf:{qwen}", {"lora_r": 4})
    from emobench.config import ConfigError, validate_config

    with pytest.raises(ConfigError) as exc:  # at config load, before any work
        validate_config(
            {
                "name": "x",
                "datasets": [{"name": "synth", "root": "data"}],
                "models": [{"adapter": f"hf:{qwen}", "options": {"finetune": "lora", "lora_r": 0}}],
            }
        )
    assert "\n" not in str(exc.value) and "models.0.options.lora_r" in str(exc.value)
    with pytest.raises(UnknownModelError, match="options.decoupled_stage2"):
        create_model(f"hf:{qwen}", {"finetune": "lora", "decoupled_stage2": "head"})
    # a separate MSCE describer is the base model: it is not fine-tuned
    m = create_model(
        f"hf:{qwen}", {"finetune": "lora", "lora_r": 2, "msce_describer": f"hf:{qwen}"}
    )
    assert m.opts.finetune == "lora" and m.describer.opts.finetune == "none"


@pytest.mark.parametrize("recipe", ["cb-loss", "logit-adjusted", "progressive"])
def test_every_recipe_gives_its_sampling_and_loss_the_label_logliks(
    qwen, tmp_path, monkeypatch, recipe
):
    """The recipe's loss (from make_loss, unchanged) gets (B, C) class logits (the answer
    log-likelihoods) and the integer targets; its sampling draws the epoch."""
    from emobench.longtail import rebalance

    plan = rebalance.get_rebalancing(recipe)
    made, calls, draws = [], [], []
    real_loss, real_draw = rebalance.make_loss, rebalance.draw_epoch

    def make_loss(name, counts, params=None):
        made.append((name, dict(params or {}), list(counts)))
        fn = real_loss(name, counts, params)

        def loss(logits, targets):
            calls.append((tuple(logits.shape), logits.requires_grad, targets.tolist()))
            return fn(logits, targets)

        return loss

    def draw_epoch(strategy, *args, **kw):
        draws.append(strategy)
        return real_draw(strategy, *args, **kw)

    monkeypatch.setattr(rebalance, "make_loss", make_loss)
    monkeypatch.setattr(rebalance, "draw_epoch", draw_epoch)
    m = hf.HFModel(str(qwen), {**BASE, "cache": False, "finetune_epochs": 1})
    m.fit(_ctx(tmp_path, rebalancing=recipe))
    assert made == [(plan.loss, plan.params, [3, 2, 1])]  # the 6 training clips' counts
    assert draws == [plan.sampling]
    assert [c[0] for c in calls] == [(3, 3), (3, 3)] and all(c[1] for c in calls)
    assert all(set(c[2]) <= {0, 1, 2} for c in calls)


def test_out_of_gpu_memory_while_training_is_one_line(qwen, tmp_path, monkeypatch):
    def oom(*args, **kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(lora_training, "answer_logprobs", oom)
    m = hf.HFModel(str(qwen), {**BASE, "cache": False})
    with pytest.raises(EmobenchError) as exc:
        m.fit(_ctx(tmp_path))
    msg = str(exc.value)
    assert "\n" not in msg and "out of GPU memory" in msg and "finetune_batch_size" in msg


def test_clips_that_do_not_decode_are_skipped_and_counted(qwen, tmp_path):
    from emobench.training.loop import stratified_split

    y = np.repeat([0, 1, 2], [5, 3, 2])  # the clips tr00..tr09 in id order
    train, val = stratified_split(y, 0.3, 0)
    broken = {f"tr{train[0]:02d}", f"tr{val[0]:02d}"}  # one training, one validation clip
    m = hf.HFModel(str(qwen), {**BASE, "cache": False, "finetune_epochs": 1})
    m.fit(_ctx(tmp_path, broken=broken))
    summary = m._adapter.summary
    assert summary["skipped_clips"] == 2 and summary["epochs_run"] == 1
    history = json.loads((m._adapter.folder / ft.SIDECAR).read_text())["history"]
    assert set(history["skipped_clips"]) == broken
    # the validation UAR is over the validation clips that decoded
    assert history["val_indices"] == [int(p) for p in val[1:]]
    assert summary["n_val"] == len(val) - 1


def test_bad_targets_are_one_error_line(qwen, tmp_path):
    m = hf.HFModel(str(qwen), {**BASE, "lora_targets": ["qkv"], "cache": False})
    with pytest.raises(EmobenchError) as exc:
        m.fit(_ctx(tmp_path))
    assert "\n" not in str(exc.value) and "lora_targets" in str(exc.value)
    m = hf.HFModel(str(qwen), {**BASE, "lora_vision_blocks": 3, "cache": False})
    with pytest.raises(EmobenchError, match="vision tower has 1 blocks"):
        m.fit(_ctx(tmp_path))


def test_vision_blocks_are_adapted_on_request(qwen):
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(qwen)
    names = ft.lora_target_names(base, None, 1)
    lm = [n for n in names if n.startswith("model.language_model.layers.")]
    vis = [n for n in names if n.startswith("model.visual.blocks.0.")]
    assert len(lm) == 2 * 7  # 2 layers × (q, k, v, o, gate, up, down)
    assert sorted(n.rsplit(".", 1)[-1] for n in vis) == sorted(
        ["qkv", "proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert len(names) == len(lm) + len(vis)
    assert ft.lora_target_names(base, None, 0) == lm  # default: no vision-tower linear


def test_engine_run_with_lora_scores_every_test_clip(qwen, tmp_path):
    """`finetune = "lora"` through the engine on a tiny synth set: adapters trained on the
    fold's training clips (class-balanced), every test clip scored with them, the cell
    record names the adapters, which are saved under the run's checkpoint folder."""
    from conftest import make_synth

    from emobench.config import validate_config
    from emobench.results import RunFolder
    from emobench.runner.execute import Engine

    root = make_synth(
        tmp_path / "synth", profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3
    )
    options = {
        "finetune": "lora",
        "scoring": "loglik",
        "input": "images",
        "lora_r": 2,
        "finetune_frames": 2,
        "finetune_epochs": 1,
        "finetune_batch_size": 4,
    }
    cfg = validate_config(
        {
            "name": "hf-lora",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": f"hf:{qwen}", "name": "vlm", "options": options}],
            "sweep": {"sampler": ["uniform:2"], "rebalancing": ["class-balanced"]},
            "cache": {"dir": str(tmp_path / "cache")},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "train": {"val_fraction": 0.2},
            "metrics": {"n_resamples": 0},
        }
    )
    steps = ft.TRAIN_STEPS["optimizer"]
    engine = Engine(cfg, tmp_path / "a", progress=False)
    engine.load_datasets()
    engine.execute()
    assert ft.TRAIN_STEPS["optimizer"] > steps
    run = RunFolder(tmp_path / "a")
    preds = run.read_predictions()
    test_ids = engine._indices["synth"].filter(pl.col("split") == "test")["clip_id"]
    assert sorted(preds["clip_id"]) == sorted(test_ids)
    scores = preds.select([c for c in preds.columns if c.startswith("score:")]).to_numpy()
    assert scores.shape == (len(test_ids), 7) and np.isfinite(scores).all()
    (info,) = [f["1"] for f in run.read_manifest()["cell_info"].values()]
    tuned = info["finetune"]
    assert tuned["method"] == "lora" and tuned["trained_now"] and len(tuned["adapter"]) == 16
    seed_dir = tmp_path / "a" / "checkpoints" / "synth" / "fold1" / "seed0"
    (ckpt,) = seed_dir.glob(f"inputs-*/{tuned['folder']}")  # keyed by the training inputs
    assert '"frames": "pyav"' in (ckpt.parent / "inputs.json").read_text()
    assert ft.read_adapter(ckpt).fingerprint == tuned["adapter"]
    assert tuned["folder"].startswith("hf-lora-class-balanced-")


def test_early_stopping_restores_the_best_trainable_tensors_in_place():
    """The stopper keeps copies of the trainable tensors only, and restores them into the
    model's own parameters (not into copies)."""
    from emobench.training.loop import EarlyStopper

    a = torch.nn.Parameter(torch.ones(2, 3))
    b = torch.nn.Parameter(torch.zeros(4))
    holder = ft._trainable_holder({"x.lora_A": a, "x.lora_B": b})
    assert [t is p for t, p in zip(holder.parameters(), (a, b), strict=True)] == [True, True]
    stopper = EarlyStopper(holder, patience=2)
    stopper.update(1, 0.5)
    with torch.no_grad():
        a.add_(1.0)
        b.sub_(2.0)
    assert stopper.update(2, 0.25) is False and stopper.best_epoch == 1
    stopper.restore()
    assert torch.equal(a, torch.ones(2, 3)) and torch.equal(b, torch.zeros(4))


def test_saving_adapters_again_replaces_the_folder_whole(tmp_path):
    """A second save of the same adapters (another rank, a retrain) swaps the folder in
    one rename: the new files, the new sidecar, no stale file and no leftovers beside it."""
    import json

    from emobench.models.hf.finetune import SIDECAR, fingerprint, save_adapter

    class Fake:
        def __init__(self, payload: bytes, extra: bool = False) -> None:
            self.payload, self.extra = payload, extra

        def save_pretrained(self, where: str) -> None:
            from pathlib import Path

            Path(where).mkdir(parents=True, exist_ok=True)
            (Path(where) / "adapter_model.safetensors").write_bytes(self.payload)
            if self.extra:
                (Path(where) / "stale.bin").write_bytes(b"x")

    folder = tmp_path / "lora" / "abc"
    fp1 = save_adapter(Fake(b"one", extra=True), None, folder, {"r": 1}, {}, {}, ["q_proj"])
    assert (folder / "stale.bin").is_file()
    fp2 = save_adapter(Fake(b"two"), None, folder, {"r": 1}, {}, {}, ["q_proj"])
    assert fp1 != fp2 == fingerprint(folder)
    assert (folder / "adapter_model.safetensors").read_bytes() == b"two"
    assert not (folder / "stale.bin").exists()
    assert json.loads((folder / SIDECAR).read_text())["fingerprint"] == fp2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["abc"]


def test_damaged_adapter_weights_are_one_error_line(qwen, tmp_path):
    """Adapter files that pass the sidecar's check but do not load (a truncated
    ``adapter_model.safetensors`` or label-row file written in place) give one
    :class:`FineTuneError` line naming the file's problem, not safetensors' traceback."""
    import shutil

    from emobench.models.hf.lora import LABEL_ROWS_FILE, attach

    opts = {**BASE, "cache": False, "finetune_epochs": 1, "decoupled_stage2": "label-rows"}
    m = hf.HFModel(str(qwen), opts)
    m.fit(_ctx(tmp_path, rebalancing="decoupled-crt"))
    good = m._adapter.folder
    for name in ("adapter_model.safetensors", LABEL_ROWS_FILE):
        bad = tmp_path / f"bad-{name}"
        shutil.copytree(good, bad)
        data = (bad / name).read_bytes()
        (bad / name).write_bytes(data[: len(data) // 2])
        base, _ = m.load_fresh("cpu")
        with pytest.raises(ft.FineTuneError) as info:
            attach(base, bad)
        line = str(info.value)
        assert "\n" not in line and "truncated" in line and str(bad) in line, line
