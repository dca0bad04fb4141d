"""Every VLM architecture of the study through ``hf:`` (issue 21), on tiny random models.

:mod:`hf_arch` builds the eleven architectures once per session (Qwen2.5-VL, Qwen3-VL,
Qwen2.5-Omni thinker and full folder, Video-LLaVA, LLaVA-NeXT-Video, LLaVA-OneVision,
InternVL, Gemma 3, SmolVLM2, Idefics3). Each runs through the engine with ``generate``
(video and images), ``loglik`` and MSCE at ``uniform:3`` and at ``fps:4`` (clips of 1–2 s:
batches of mixed frame counts) with ``batch_size = 3``; ``loglik`` is compared at batch 1
and in padded batches of mixed lengths (1e-5, fp32); each visual token count is compared
with the processor's own.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import make_synth, zero_shot_context

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_arch import BUILDERS  # noqa: E402

from emobench.config import validate_config  # noqa: E402
from emobench.models.base import ClipInput  # noqa: E402
from emobench.models.hf import adapter as hf  # noqa: E402
from emobench.models.hf.batching import batch_key, plan_batches  # noqa: E402
from emobench.results import RunFolder  # noqa: E402
from emobench.runner.execute import Engine  # noqa: E402

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
ARCHS = list(BUILDERS)
IMAGE_ONLY = {"gemma3", "idefics3"}


@pytest.fixture(scope="session")
def arch_models(tmp_path_factory):
    """Folders of the eleven tiny random architectures (built once per session)."""
    root = tmp_path_factory.mktemp("hf-arch")
    folders = {name: build(root / name) for name, build in BUILDERS.items()}
    for folder in folders.values():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < 1_000_000, (folder.name, size)
    return folders


@pytest.fixture(scope="module")
def mixed_synth(tmp_path_factory):
    """7 test clips of 1–2 s: ``fps:4`` gives them different frame counts."""
    root = tmp_path_factory.mktemp("synth-mixed")
    return make_synth(
        root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3, max_seconds=2.0
    )


def _ctx(tmp_path):
    return zero_shot_context(tmp_path, LABELS, torch.device("cpu"))


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_runs_every_mode_with_mixed_frame_counts(arch, arch_models, mixed_synth, tmp_path):
    """generate (video, images), loglik and MSCE at uniform:3 and fps:4, batch_size 3:
    a prediction for every clip of every cell, visual tokens and pixels recorded."""
    common = {"batch_size": 3, "gap_frames": 2, "msce_max_new_tokens": 2}
    models = [
        ("gen-video", {"input": "video", "max_new_tokens": 2}),
        ("gen-images", {"input": "images", "max_new_tokens": 2}),
        ("loglik", {"input": "video", "scoring": "loglik"}),
    ]
    cfg = validate_config(
        {
            "name": "arch",
            "datasets": [{"name": "synth", "root": str(mixed_synth)}],
            "models": [
                {"adapter": f"hf:{arch_models[arch]}", "name": n, "options": {**common, **o}}
                for n, o in models
            ],
            "sweep": {
                "sampler": ["uniform:3", "fps:4"],
                "order": ["original"],
                "enrichment": ["none", "msce"],
            },
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
    assert preds.height == 3 * 2 * 2 * 7  # every clip of every cell
    gen = preds.filter(preds["model"] != "loglik")
    assert gen["raw_text"].null_count() == 0
    ll = preds.filter(preds["model"] == "loglik")
    scores = ll.select([c for c in ll.columns if c.startswith("score:")]).to_numpy()
    assert np.isfinite(scores).all() and (scores <= 0).all()
    info = {cell: folds["1"] for cell, folds in run.read_manifest()["cell_info"].items()}
    assert len(info) == 12
    for cell, i in info.items():
        assert i["visual_tokens"]["min"] > 0, cell
        assert i["pixels_per_frame"]["min"] > 0, cell
        if "fps-4" in cell:
            assert i["frames_per_clip"]["min"] < i["frames_per_clip"]["max"], cell  # mixed
        if "__msce__" in cell:  # the describer's tokens are its own, not the classifier's
            assert i["describer_visual_tokens"]["min"] > 0, cell
            assert i["input_shown"] == "images"  # stage 2: keyframes between the texts
        elif "gen-video" in cell or "loglik" in cell:
            assert i["input_shown"] == ("images" if arch in IMAGE_ONLY else "video"), cell
        assert i["architecture"] == arch.replace("smolvlm2", "smolvlm")
    # stage 2 of MSCE shows the same 3 keyframes as images as the plain images cell: the
    # classifier's count holds none of the describer's tokens
    plain, msce = (
        info[f"synth__gen-images__instance-balanced__uniform-3__original__{e}__none__s0"]
        for e in ("none", "msce")
    )
    assert msce["visual_tokens"] == plain["visual_tokens"]


def _clips(frames, seed=0, side=32):
    rng = np.random.default_rng(seed)
    return [
        ClipInput(
            clip_id=f"clip{i}-{n}",
            frames=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
            indices=np.arange(n) * 3,
            fps=25.0,
        )
        for i, n in enumerate(frames)
    ]


@pytest.mark.parametrize("arch", ARCHS)
def test_loglik_does_not_depend_on_the_batch(arch, arch_models, tmp_path):
    """Scores at batch 1 equal scores in left-padded batches of mixed lengths (frame
    counts 4/6/5, options permuted per clip), to 1e-5 in fp32, for videos and images
    (videos share a batch where the processor allows: batching.plan_batches)."""
    clips = _clips([4, 6, 4, 6, 5])
    for inp in ("video", "images"):
        opts = {"input": inp, "scoring": "loglik", "cache": False, "option_order": "permuted"}
        m = hf.HFModel(str(arch_models[arch]), {**opts, "batch_size": 5})
        m.fit(_ctx(tmp_path))
        alone = np.stack([m.predict([c])[0].scores for c in clips])
        together = np.stack([o.scores for o in m.predict(clips)])
        np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5, err_msg=f"{arch} {inp}")
        if inp == "images":  # 4 to 6 images per prompt in one batch: padded
            assert m.describe()["padding_fraction"] > 0
        assert not np.allclose(alone[0], alone[1], atol=1e-4)  # clips score differently


def _processor_count(m, content, fps):
    """Placeholder positions in the processor's own output for one request, processed
    alone by transformers (not by emobench's encoding), with the model's placeholder ids."""
    from emobench.models.hf.options import chat_inputs
    from emobench.models.hf.tokens import visual_token_ids

    proc = m._processor
    prompt, imgs, vids, metas = chat_inputs(proc, content, fps)
    kw = {"text": [prompt], "return_tensors": "pt"}
    if imgs:
        kw["images"] = [imgs]
    if vids:
        kw.update(videos=vids, do_sample_frames=False)
        if "Omni" in type(proc).__name__:  # one rate per call, the folder's own frame size
            size = {k: v for k, v in dict(proc.video_processor.size).items() if v}
            kw.update(fps=fps, videos_kwargs={"size": size})
        else:
            kw["video_metadata"] = metas
    enc = proc(**kw)
    ids = visual_token_ids(m._model, proc)
    return sum(int((enc["input_ids"][0] == t).sum()) for t in set(ids["image"] + ids["video"]))


@pytest.mark.parametrize("arch", ARCHS)
def test_visual_tokens_equal_the_processors_count(arch, arch_models, tmp_path):
    m = hf.HFModel(str(arch_models[arch]), {"cache": False})
    m.fit(_ctx(tmp_path))
    m._load()
    proc = m._processor
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    text = {"type": "text", "text": "What?"}
    images = [{"type": "image", "image": f} for f in frames[:3]]
    video = [{"type": "video", "video": frames}]
    (_, [s_img]) = m.encode([hf.Request([*images, text])])
    (_, [s_vid]) = m.encode([hf.Request([*video, text], fps=5.0)])
    assert s_img["visual_tokens"] == _processor_count(m, [*images, text], None) > 0
    assert s_img["pixels"] and min(s_img["pixels"]) > 0
    if arch in IMAGE_ONLY:  # frames shown as images: the count of 4 images
        assert s_vid["input"] == "images"
        four = [{"type": "image", "image": f} for f in frames]
        assert s_vid["visual_tokens"] == _processor_count(m, [*four, text], None)
    else:
        assert s_vid["input"] == "video"
        assert s_vid["visual_tokens"] == _processor_count(m, [*video, text], 5.0) > 0
    # the model checks placeholders against its features in every forward (the engine
    # test ran them); the grids of the Qwen family give the count by hand as well
    if arch.startswith(("qwen2_5", "qwen3")):
        enc, _ = m.encode([hf.Request([*images, text])])
        merge = proc.image_processor.merge_size
        assert s_img["visual_tokens"] == int(enc["image_grid_thw"].prod(-1).sum()) // merge**2
    if arch == "gemma3":  # soft tokens, not the begin-of-image marker (256 when released)
        assert s_img["visual_tokens"] == 3 * proc.image_seq_length == 12


def test_omni_is_told_the_rate_and_keeps_its_own_video_size(arch_models, tmp_path):
    """Qwen2.5-Omni takes the rate as one fps per call (not from video metadata) and
    would upscale 32 px frames to its class default; both as the folder says here."""
    m = hf.HFModel(str(arch_models["qwen2_5_omni"]), {"cache": False})
    m.fit(_ctx(tmp_path))
    m._load()
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    req = hf.Request([{"type": "video", "video": frames}, {"type": "text", "text": "x"}], fps=5.0)
    enc, [stats] = m.encode([req])
    assert float(enc["video_second_per_grid"][0]) == pytest.approx(2 / 5.0)
    assert enc["video_grid_thw"].tolist() == [[2, 2, 2]]  # 28 px: not upscaled
    assert stats["visual_tokens"] == 2 and stats["pixels"] == [28 * 28]
    assert type(m._model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"


def test_batches_hold_one_frame_count_where_the_processor_stacks_videos():
    def req(n, fps=5.0):
        return hf.Request([{"type": "video", "video": np.zeros((n, 4, 4, 3), np.uint8)}], fps)

    reqs = [req(8), req(6), req(8), req(6, 10.0), req(8)]
    stacked = [batch_key(r, mixed_frames=False, fps_kwarg=False) for r in reqs]
    assert plan_batches(range(5), stacked, 2) == [[0, 2], [4], [1, 3]]
    mixed = [batch_key(r, mixed_frames=True, fps_kwarg=False) for r in reqs]
    assert plan_batches(range(5), mixed, 3) == [[0, 1, 2], [3, 4]]
    one_rate = [batch_key(r, mixed_frames=True, fps_kwarg=True) for r in reqs]
    assert plan_batches([4, 3, 2, 1, 0], one_rate, 4) == [[4, 2, 1, 0], [3]]


def test_video_llava_warns_beyond_its_8_trained_frames(arch_models, tmp_path):
    m = hf.HFModel(str(arch_models["video_llava"]), {"cache": False, "max_new_tokens": 1})
    m.fit(_ctx(tmp_path))
    seen = []
    m._warn = seen.append
    m.predict(_clips([8]))
    assert seen == []
    m.predict(_clips([10, 12]))
    m.predict(_clips([12]))
    assert len(seen) == 1 and "trained on 8 frames" in seen[0] and "up to 12" in seen[0]
    assert m.describe()["trained_frames"] == 8


def test_smolvlm2_without_num2words_is_one_error_line(arch_models, tmp_path, monkeypatch):
    from transformers.models.smolvlm import processing_smolvlm

    from emobench.errors import EmobenchError

    folder = tmp_path / "smol2"
    shutil.copytree(arch_models["smolvlm2"], folder)
    monkeypatch.setattr(processing_smolvlm, "num2words", None)
    m = hf.HFModel(str(folder), {"cache": False})
    m.fit(_ctx(tmp_path))
    with pytest.raises(EmobenchError, match="num2words") as exc:
        m.predict(_clips([4]))
    assert "\n" not in str(exc.value)


def test_a_clip_that_reaches_the_model_without_visual_tokens_is_an_error():
    """A processor that drops the frames (here a stand-in whose template has no
    placeholder) stops the run with one line instead of answering blind."""
    from emobench.errors import EmobenchError
    from emobench.models.hf.encoding import encode_batch

    class Blind:
        video_processor = None
        image_token_id = 7

        def apply_chat_template(self, msgs, **kw):
            return "no placeholder here"

        def __call__(self, text, **kw):
            ids = torch.ones((len(text), 3), dtype=torch.long)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    img = {"type": "image", "image": np.zeros((8, 8, 3), np.uint8)}
    req = hf.Request([img, {"type": "text", "text": "What?"}])
    with pytest.raises(EmobenchError, match="0 visual tokens") as exc:
        encode_batch(None, Blind(), [req], {}, "blind")
    assert "\n" not in str(exc.value) and "1 image(s)" in str(exc.value)
    text_only = hf.Request([{"type": "text", "text": "Frame 1 → 2: a smile."}])
    _, [stats] = encode_batch(None, Blind(), [text_only], {}, "blind")  # msce-text: fine
    assert stats["visual_tokens"] == 0 and stats["input"] == "text"
