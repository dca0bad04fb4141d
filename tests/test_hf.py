"""The ``hf:`` family (generative video VLMs through transformers) on tiny random models.

The models (a Qwen2.5-VL and a SmolVLM, built in code by :mod:`hf_tiny`) are random, so
their answers are nonsense: the tests check the plumbing — prompts, frames as a video or
images, label log-likelihoods against an independent computation, the answer cache (a
rerun makes no model call), resuming, and the per-cell records.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_synth, zero_shot_context

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emobench.config import validate_config  # noqa: E402
from emobench.errors import EmobenchError  # noqa: E402
from emobench.models.base import ClipInput  # noqa: E402
from emobench.models.hf import adapter as hf  # noqa: E402
from emobench.results import RunFolder  # noqa: E402
from emobench.runner.execute import Engine  # noqa: E402

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Folders of a tiny random Qwen2.5-VL and SmolVLM (built once per session)."""
    from hf_tiny import build_qwen25_vl, build_smolvlm

    root = tmp_path_factory.mktemp("hf-models")
    return {"qwen": build_qwen25_vl(root / "qwen"), "smol": build_smolvlm(root / "smol")}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3)


def _cfg(root, folder, cache, options, order=("original",), **sweep):
    return validate_config(
        {
            "name": "hf",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": f"hf:{folder}", "name": "vlm", "options": options}],
            "sweep": {"sampler": ["uniform:4"], "order": list(order), **sweep},
            "cache": {"dir": str(cache)},
            "video": {"backend": "pyav"},
            "device": "cpu",
            "metrics": {"n_resamples": 0},
        }
    )


def _run(cfg, out, **kw):
    engine = Engine(cfg, out, progress=False, **kw)
    engine.load_datasets()
    return engine.execute()


def _preds(out):
    df = RunFolder(out).read_predictions()
    cols = ["cell_id", "clip_id", "pred", "raw_text"]
    cols += [c for c in df.columns if c.startswith("score:")]
    return df.select(cols).sort(["cell_id", "clip_id"])


def _calls():
    return sum(hf.MODEL_CALLS.values())


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("qwen", {"input": "video", "scoring": "generate", "max_new_tokens": 3}),
        ("qwen", {"input": "video", "scoring": "loglik", "option_order": "permuted"}),
        ("qwen", {"input": "images", "scoring": "generate", "max_new_tokens": 3}),
        ("qwen", {"input": "images", "scoring": "loglik", "length_norm": True}),
        ("smol", {"input": "images", "scoring": "generate", "max_new_tokens": 3}),
        ("smol", {"input": "images", "scoring": "loglik"}),
    ],
    ids=["qwen-video-gen", "qwen-video-ll", "qwen-img-gen", "qwen-img-ll", "smol-gen", "smol-ll"],
)
def test_end_to_end_and_a_rerun_makes_no_model_call(tiny, synth_root, tmp_path, model, options):
    cache = tmp_path / "cache"
    cfg = _cfg(synth_root, tiny[model], cache, {**options, "batch_size": 3})
    before = _calls()
    _run(cfg, tmp_path / "a")
    assert _calls() > before
    preds = _preds(tmp_path / "a")
    assert preds.height == 7
    manifest = RunFolder(tmp_path / "a").read_manifest()
    (info,) = [f["1"] for f in manifest["cell_info"].values()]
    assert info["model_calls"] >= 2 and info["cache_hits"] == 0  # 7 clips, batches of 3
    assert info["frames_per_clip"]["mean"] == 4
    assert info["visual_tokens"]["min"] > 0 and info["pixels_per_frame"]["min"] > 0
    assert info["prompt"].startswith(hf.DEFAULT_QUESTION)
    assert sorted(info["options"]) == sorted(manifest["datasets"]["synth"]["labels"])
    if options["scoring"] == "loglik":
        scores = preds.select([c for c in preds.columns if c.startswith("score:")]).to_numpy()
        assert np.isfinite(scores).all()
        assert (scores <= 0).all()
    else:
        assert preds["raw_text"].null_count() == 0
        assert info["max_new_tokens"] == 3
    if options.get("input") == "video":
        assert info["fps"]["min"] > 0
    # the same setting on a new run folder with the same cache: no model call, same answers
    before = _calls()
    _run(cfg, tmp_path / "b")
    assert _calls() == before
    assert _preds(tmp_path / "b").equals(preds)
    again = RunFolder(tmp_path / "b").read_manifest()["cell_info"]
    (info_b,) = [f["1"] for f in again.values()]
    assert (info_b["model_calls"], info_b["cache_hits"]) == (0, 7)
    assert info_b["visual_tokens"] == info["visual_tokens"]


def _ctx(tmp_path):
    return zero_shot_context(tmp_path, LABELS, torch.device("cpu"))


def _clips(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ClipInput(
            clip_id=f"c{i}",
            frames=rng.integers(0, 256, (4 + 2 * i, 32, 32, 3), dtype=np.uint8),
            indices=np.arange(4 + 2 * i) * 3,
            fps=25.0,
        )
        for i in range(n)
    ]


def _direct_logliks(m, clip):
    """Sum of log-softmax of each label's tokens from one plain forward over prompt+label."""
    req, _ = m._clip_request(clip)
    enc, _ = m.encode([req])
    n = enc["input_ids"].shape[1]
    out = []
    for answer in m.answer_ids():
        kw = dict(enc)
        extra = torch.tensor([answer])
        kw["input_ids"] = torch.cat([enc["input_ids"], extra], 1)
        kw["attention_mask"] = torch.ones_like(kw["input_ids"])
        if "mm_token_type_ids" in kw:
            zeros = torch.zeros_like(extra, dtype=enc["mm_token_type_ids"].dtype)
            kw["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], zeros], 1)
        with torch.no_grad():
            logp = m._model(**kw).logits[0].double().log_softmax(-1)
        out.append(sum(float(logp[n - 1 + j, t]) for j, t in enumerate(answer)))
    return np.array(out)


@pytest.mark.parametrize(
    ("model", "inp"), [("qwen", "video"), ("qwen", "images"), ("smol", "images")]
)
def test_loglik_equals_a_direct_per_label_forward(tiny, tmp_path, model, inp):
    clips = _clips()
    m = hf.HFModel(str(tiny[model]), {"input": inp, "scoring": "loglik", "cache": False})
    m.fit(_ctx(tmp_path))
    m._load()
    assert max(len(a) for a in m.answer_ids()) > 1  # continuations are scored
    ref = [_direct_logliks(m, c) for c in clips]
    m.batch_size = m._inner_batch = 1
    for c, want in zip(clips, ref, strict=True):
        (got,) = m.predict([c])
        np.testing.assert_allclose(got.scores, want, atol=1e-4, rtol=0)
    # batched (left padding: clips of 4, 6 and 8 frames): the same up to float rounding
    m._inner_batch = 3
    got = np.stack([o.scores for o in m.predict(clips)])
    np.testing.assert_allclose(got, np.stack(ref), atol=1e-4, rtol=0)
    alone = np.stack([m.predict([c])[0].scores for c in clips])
    m._inner_batch = 3
    np.testing.assert_allclose(np.stack([o.scores for o in m.predict(clips)]), alone, atol=1e-5)
    # length normalisation: the mean per-token log-probability
    mn = hf.HFModel(str(tiny[model]), {"input": inp, "scoring": "loglik", "length_norm": True})
    mn.fit(_ctx(tmp_path))
    mn._inner_batch = 1
    lengths = np.array([len(a) for a in m.answer_ids()])
    np.testing.assert_allclose(mn.predict(clips[:1])[0].scores, ref[0] / lengths, atol=1e-4)


def test_missing_model_is_one_error_line(tmp_path):
    from emobench.models.registry import create_model

    with pytest.raises(EmobenchError) as exc:
        create_model(f"hf:{tmp_path}/nothing-here")
    msg = str(exc.value)
    assert "\n" not in msg and f"{tmp_path}/nothing-here" in msg and "does not exist" in msg
    with pytest.raises(EmobenchError) as exc:
        create_model("hf:nobody/not-a-cached-model")
    msg = str(exc.value)
    assert "\n" not in msg and "nobody/not-a-cached-model" in msg
    assert "Hugging Face cache" in msg and hf.__name__  # names where it looked
    from emobench.models.hf.loading import hub_cache_dir

    assert hub_cache_dir() in msg


def test_bad_options_are_one_error_line(tiny):
    from emobench.models.registry import UnknownModelError, create_model

    with pytest.raises(UnknownModelError, match=r"options.scoring"):
        create_model(f"hf:{tiny['qwen']}", {"scoring": "vote"})
    with pytest.raises(UnknownModelError, match=r"options.inptu: unknown setting"):
        create_model(f"hf:{tiny['qwen']}", {"inptu": "video"})


def test_options_are_permuted_per_clip_with_a_seeded_permutation(tiny, tmp_path):
    m = hf.HFModel(str(tiny["qwen"]), {"option_order": "permuted"})
    m.fit(_ctx(tmp_path))
    orders = {tuple(m.clip_options(f"clip{i}")) for i in range(20)}
    assert len(orders) > 10 and all(sorted(o) == sorted(LABELS) for o in orders)
    again = hf.HFModel(str(tiny["qwen"]), {"option_order": "permuted"})
    again.fit(_ctx(tmp_path))
    assert again.clip_options("clip3") == m.clip_options("clip3")
    fixed = hf.HFModel(str(tiny["qwen"]), {})
    fixed.fit(_ctx(tmp_path))
    assert fixed.clip_options("clip3") == LABELS
    assert "Options: anger, disgust, fear," in fixed.prompt_text(fixed.clip_options("x"))


def test_interleaved_content_keeps_its_order(tiny, tmp_path):
    """Images, a video and texts in one user turn reach the model in the order given."""
    m = hf.HFModel(str(tiny["qwen"]), {})
    m.fit(_ctx(tmp_path))
    m._load()
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    vid = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    req = hf.Request(
        [
            {"type": "image", "image": img},
            {"type": "text", "text": "happiness"},
            {"type": "video", "video": vid},
            {"type": "text", "text": "sadness"},
        ],
        fps=8.0,
    )
    enc, stats = m.encode([req])
    tok = m._processor.tokenizer
    ids = enc["input_ids"][0].tolist()
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    video_id = tok.convert_tokens_to_ids("<|video_pad|>")
    text = tok.decode(ids)
    assert text.index("<|image_pad|>") < text.index("happiness") < text.index("<|video_pad|>")
    assert text.index("<|video_pad|>") < text.index("sadness")
    assert stats[0]["visual_tokens"] == ids.count(image_id) + ids.count(video_id) > 0
    # the processor did not re-sample the 4 frames: 2 temporal patches of 2 frames
    assert enc["video_grid_thw"][0, 0].item() == 2
    assert float(enc["second_per_grid_ts"][0]) == pytest.approx(2 / 8.0)


def test_interrupted_run_resumes_to_identical_predictions(tiny, synth_root, tmp_path):
    options = {"input": "video", "scoring": "loglik", "batch_size": 2}
    order = ("original", "reverse")
    _run(_cfg(synth_root, tiny["qwen"], tmp_path / "ref-cache", options, order), tmp_path / "ref")

    seen = []

    def stop(cell, fold):
        seen.append(cell.cell_id)
        raise KeyboardInterrupt

    cfg = _cfg(synth_root, tiny["qwen"], tmp_path / "cache", options, order)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, tmp_path / "run", on_part=stop)
    assert len(seen) == 1
    summary = _run(cfg, tmp_path / "run")
    assert (summary.parts_done_before, summary.parts_computed) == (1, 1)
    got, want = _preds(tmp_path / "run"), _preds(tmp_path / "ref")
    assert got.equals(want)


def test_msce_dense_is_a_plain_clip(tiny, tmp_path):
    m = hf.HFModel(str(tiny["qwen"]), {"input": "images", "cache": False})
    m.fit(_ctx(tmp_path))
    (clip,) = _clips(1)
    dense = ClipInput(**{**clip.__dict__, "enrichment": "msce-dense"})
    (a,) = m.predict([clip])
    (b,) = m.predict([dense])
    assert a.text == b.text and b.context is None


@pytest.mark.parametrize(
    ("describer", "main_input", "describer_input"),
    [(None, "images", None), ("smol", "images", None), ("smol", "video", "images")],
)
def test_msce_describes_the_gaps_then_asks(
    tiny, synth_root, tmp_path, describer, main_input, describer_input
):
    """msce / msce-text through the engine: the describer (the model itself, or another
    hf: model — an image-only one under a video model with msce_describer_input) is called
    for the gaps, the context is stored, a rerun calls nothing."""
    options = {"input": main_input, "scoring": "loglik", "msce_max_new_tokens": 4}
    if describer:
        options["msce_describer"] = f"hf:{tiny[describer]}"
    if describer_input:
        options["msce_describer_input"] = describer_input
    cfg = _cfg(
        synth_root, tiny["qwen"], tmp_path / "cache", options, enrichment=["msce", "msce-text"]
    )
    _run(cfg, tmp_path / "a")
    preds = RunFolder(tmp_path / "a").read_predictions()
    assert preds.height == 14 and preds["context"].null_count() == 0
    assert all(c.count("Frame ") == 3 for c in preds["context"])  # 4 keyframes, 3 gaps
    info = RunFolder(tmp_path / "a").read_manifest()["cell_info"]
    calls = sorted(f["1"]["describer_calls"] for f in info.values())
    assert calls[-1] == 7 * 3  # the first cell describes every gap; the other reuses them
    assert all(
        f["1"]["describer"] == (f"hf:{tiny[describer]}" if describer else "self")
        for f in info.values()
    )
    before = _calls()
    _run(cfg, tmp_path / "b")
    assert _calls() == before
    assert _preds(tmp_path / "b").equals(_preds(tmp_path / "a"))


@pytest.mark.parametrize("model", ["qwen", "smol"])
def test_text_only_loglik_does_not_depend_on_the_batch(tiny, tmp_path, model):
    """msce-text turns hold no image: left-padded batches score as single prompts do."""
    m = hf.HFModel(str(tiny[model]), {"scoring": "loglik", "cache": False})
    m.fit(_ctx(tmp_path))
    m._load()
    short = hf.Request([{"type": "text", "text": "Frame 1 → 2: happy. What is it?"}])
    long = hf.Request([{"type": "text", "text": "Frame 1 → 2: sad face. " * 6 + "What?"}])
    alone = [m._loglik([r])[0]["scores"] for r in (short, long)]
    both = [e["scores"] for e in m._loglik([short, long])]
    np.testing.assert_allclose(both, alone, atol=1e-4, rtol=0)


def test_emobench_run_and_report_from_the_command_line(tiny, synth_root, tmp_path):
    """`emobench run` with a TOML config: generate over all four enrichment values, then
    loglik with a prior correction; `emobench report` shows the generative sections."""
    from typer.testing import CliRunner

    from emobench.cli import app

    def toml(scoring, extra):
        return (
            f'name = "hf-cli"\ndevice = "cpu"\n[[datasets]]\nname = "synth"\n'
            f'root = "{synth_root}"\n[[models]]\nadapter = "hf:{tiny["qwen"]}"\nname = "vlm"\n'
            f'options = {{ input = "images", scoring = "{scoring}", gap_frames = 1, '
            f'msce_max_new_tokens = 3 }}\n[sweep]\nsampler = ["uniform:3"]\n{extra}'
            f'[cache]\ndir = "{tmp_path / "cache"}"\n[video]\nbackend = "pyav"\n'
            "[metrics]\nn_resamples = 0\n"
        )

    runner = CliRunner()
    gen = tmp_path / "gen.toml"
    gen.write_text(toml("generate", 'enrichment = ["none", "msce", "msce-text", "msce-dense"]\n'))
    res = runner.invoke(app, ["run", str(gen), "--out", str(tmp_path / "g"), "--no-progress"])
    assert res.exit_code == 0, res.output
    preds = RunFolder(tmp_path / "g").read_predictions()
    assert preds.height == 4 * 7 and set(preds["enrichment"]) == {
        "none",
        "msce",
        "msce-text",
        "msce-dense",
    }
    assert preds["raw_text"].null_count() == 0
    res = runner.invoke(app, ["report", str(tmp_path / "g"), "--format", "md"])
    assert res.exit_code == 0, res.output
    summary = (tmp_path / "g" / "report" / "summary.md").read_text()
    assert "nvalid" in summary and "MSCE" in summary
    # generate gives no scores: a prior correction is refused at load, in one line
    bad = tmp_path / "bad.toml"
    bad.write_text(toml("generate", 'prior_correction = ["logit-adjust"]\n'))
    res = runner.invoke(app, ["run", str(bad), "--dry-run"])
    assert res.exit_code == 1 and "needs scores" in res.output
    ll = tmp_path / "ll.toml"
    ll.write_text(toml("loglik", 'prior_correction = ["none", "logit-adjust"]\n'))
    res = runner.invoke(app, ["run", str(ll), "--out", str(tmp_path / "l"), "--no-progress"])
    assert res.exit_code == 0, res.output
    preds = RunFolder(tmp_path / "l").read_predictions()
    assert preds.height == 2 * 7 and preds["score:anger"].null_count() == 0


def test_out_of_memory_halves_the_batch_then_gives_one_line(tiny, tmp_path, monkeypatch):
    m = hf.HFModel(str(tiny["qwen"]), {"input": "images", "batch_size": 8, "cache": False})
    m.fit(_ctx(tmp_path))
    real = hf.HFModel._generate
    sizes = []

    def generate(self, reqs, max_new_tokens):
        sizes.append(len(reqs))
        if len(reqs) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, reqs, max_new_tokens)

    monkeypatch.setattr(hf.HFModel, "_generate", generate)
    clips = _clips(5)
    out = m.predict(clips)
    assert len(out) == 5 and all(o.text is not None for o in out)
    assert sizes == [5, 4, 2, 2, 1]  # batch 8 (5 clips) → 4 → 2, which fits
    assert m._inner_batch == 2

    def always(self, reqs, max_new_tokens):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(hf.HFModel, "_generate", always)
    with pytest.raises(EmobenchError, match="out of GPU memory on a single clip"):
        m.predict(_clips(1))


def test_crop_shows_the_centre_of_every_frame_and_gap_frame(tiny, tmp_path):
    """``crop`` (or the folder's emobench.json) centre-crops keyframes and MSCE gap frames
    before the processor: the request carries exactly the hand-picked centre pixels."""
    import json
    import shutil

    from emobench.models.hf.options import crop_clip

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[:, 2:6, 2:6] = 200  # the centre 4 × 4 block
    frames[:, 3, 3] = 7
    gap = np.full((1, 8, 8, 3), 9, np.uint8)
    clip = ClipInput("c", frames, np.array([0, 4]), 25.0, "msce", (gap,), (np.array([2]),))
    cut = crop_clip(clip, 4)
    assert cut.frames.shape == (2, 4, 4, 3) and cut.between[0].shape == (1, 4, 4, 3)
    assert cut.frames[0, 1, 1, 0] == 7 and (cut.frames[:, 0, 0] == 200).all()
    assert crop_clip(clip, 0) is clip and crop_clip(clip, 16).frames.shape == (2, 8, 8, 3)

    folder = tmp_path / "qwen"
    shutil.copytree(tiny["qwen"], folder)
    (folder / "emobench.json").write_text(json.dumps({"preprocess": {"frame_size": 8, "crop": 4}}))
    m = hf.HFModel(str(folder), {})
    assert (m.frame_size, m.crop) == (8, 4)
    m.fit(_ctx(tmp_path))
    req, _ = m._clip_request(replace(clip, enrichment="none"))
    assert np.array_equal(req.content[0]["video"], frames[:, 2:6, 2:6])
    assert m.describe()["crop"] == 4
    assert hf.HFModel(str(folder), {"crop": 0}).crop == 0  # an option overrides the folder
    (folder / "emobench.json").write_text("{not json")
    with pytest.raises(EmobenchError, match="emobench.json: unreadable"):
        hf.HFModel(str(folder), {})
