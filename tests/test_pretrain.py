"""Synthetic web pre-training: caption statistics follow wordfreq, web identities are not
benchmark subjects, and a few steps of the shipped recipe run and reload (fast)."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("open_clip")
wordfreq = pytest.importorskip("wordfreq")

from emobench.errors import PretrainError  # noqa: E402
from emobench.labels import EMOTION_WORDS  # noqa: E402
from emobench.pretrain.synth_web.command import pretrain_synth_web  # noqa: E402
from emobench.pretrain.synth_web.config import CARD_NAME, WEIGHTS_NAME, PretrainConfig  # noqa: E402
from emobench.pretrain.synth_web.train import batch_indices, train_clip  # noqa: E402
from emobench.pretrain.synth_web.webpool import (  # noqa: E402
    build_web_pool,
    make_caption,
    mention_probabilities,
    web_identity_rng,
    word_frequencies,
)

SMALL = PretrainConfig(n_identities=4, images_per_identity=8, steps=3, batch_size=16, warmup=1)


def test_mention_probability_follows_word_frequencies():
    classes = ("happiness", "disgust", "fear")
    freqs = word_frequencies(classes)
    for c in classes:
        for w in EMOTION_WORDS[c]:
            assert freqs[c][w] == wordfreq.word_frequency(w, "en")
    mention = mention_probabilities(freqs, 0.8)
    totals = {c: sum(freqs[c].values()) for c in classes}
    assert mention["happiness"] == pytest.approx(0.8)  # the most frequent class
    assert mention["disgust"] / mention["fear"] == pytest.approx(totals["disgust"] / totals["fear"])
    assert mention["disgust"] < 0.1 * mention["happiness"]  # rare words: rarely captioned


def test_caption_sampling_rates():
    classes = ("happiness", "disgust")
    freqs = word_frequencies(classes)
    mention = mention_probabilities(freqs, 0.9)
    rng = np.random.default_rng(0)
    n = 3000
    happy = [make_caption("happiness", rng, freqs, mention, 0.0) for _ in range(n)]
    share = np.mean([w is not None for _, w, _ in happy])
    assert share == pytest.approx(0.9, abs=0.03)
    words = [w for _, w, _ in happy if w]
    f = freqs["happiness"]
    assert np.mean([w == "happy" for w in words]) == pytest.approx(
        f["happy"] / sum(f.values()), abs=0.03
    )
    assert all(w in t for t, w, _ in happy if w)
    # noisy captions name a word drawn by frequency whatever the face shows
    noisy = [make_caption("disgust", rng, freqs, mention, 1.0) for _ in range(500)]
    assert all(flag for *_, flag in noisy)
    assert np.mean([w in EMOTION_WORDS["happiness"] for _, w, _ in noisy]) > 0.8


def test_web_identities_are_not_benchmark_subjects():
    from emobench.data.synth.faces import sample_identity
    from emobench.data.synth.generate import subject_rng

    bench = {sample_identity(subject_rng(0, s)) for s in range(100)}
    web = {sample_identity(web_identity_rng(0, i)) for i in range(100)}
    assert not bench & web


def test_web_pool_is_deterministic_and_balanced():
    cfg = replace(SMALL, n_identities=2)
    a_img, a_cap, stats = build_web_pool(cfg)
    b_img, b_cap, _ = build_web_pool(cfg)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_cap == b_cap and a_img.shape == (16, 64, 64, 3) and a_img.dtype == np.uint8
    assert sum(stats["images_per_class"].values()) == 16
    assert 0.0 <= stats["share_no_emotion_word"] <= 1.0


def test_web_pool_crop_is_the_centre_of_the_render():
    full = replace(SMALL, n_identities=1, crop=0, image_size=112)
    cropped = replace(SMALL, n_identities=1, crop=64, image_size=64)
    a, cap_a, _ = build_web_pool(full)
    b, cap_b, _ = build_web_pool(cropped)
    assert cap_a == cap_b
    np.testing.assert_array_equal(b, a[:, 24:88, 24:88])
    assert cropped.preprocess == {"frame_size": 112, "crop": 64}
    with pytest.raises(PretrainError, match="crop=200"):
        replace(SMALL, crop=200)


def test_bad_settings_are_one_clear_error():
    with pytest.raises(PretrainError, match="steps=0"):
        replace(SMALL, steps=0)
    with pytest.raises(PretrainError, match="pairs"):
        train_clip(np.zeros((3, 64, 64, 3), np.uint8), ["a"] * 3, SMALL)


def test_batches_group_faces_of_few_identities():
    cfg = replace(SMALL, n_identities=10, batch_size=12, per_identity=4)
    idx = batch_indices(cfg, np.random.default_rng(0))
    ids, counts = np.unique(idx // cfg.images_per_identity, return_counts=True)
    assert len(idx) == 12 and len(np.unique(idx)) == 12 and len(ids) == 3
    assert (counts == 4).all()


def test_a_few_pretraining_steps_run_save_and_reload(tmp_path):
    from emobench.models.openclip.adapter import OpenClipModel

    info = pretrain_synth_web(tmp_path, SMALL)
    weights = tmp_path / WEIGHTS_NAME
    assert weights.is_file() and (tmp_path / CARD_NAME).is_file()
    assert info["bytes"] < 8e6 and np.isfinite(info["final_loss"])
    assert info["history"]["step"][-1] == SMALL.steps
    model = OpenClipModel(f"emobench-tiny@{weights}", {})
    # the weights carry their preprocessing: decode at the render size, crop the face
    assert (model.frame_size, model.crop) == (SMALL.render_size, SMALL.crop)
    model.load("cpu")
    frames = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    feats = model.encode(frames)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)
    assert "steps" in (tmp_path / CARD_NAME).read_text()


def test_training_is_seeded():
    cfg = replace(SMALL, n_identities=2, steps=2)
    images, captions, _ = build_web_pool(cfg)
    a, _ = train_clip(images, captions, cfg)
    b, _ = train_clip(images, captions, cfg)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert np.array_equal(va.numpy(), vb.numpy()), k


_PINNED_RUN = """
import contextlib, hashlib, sys
from emobench.pretrain.reproducible import pinned_environment, reproducible_cpu
pin = pinned_environment() if sys.argv[1] == "pin" else contextlib.nullcontext(False)
with pin as early:
    from emobench.pretrain.synth_web.config import PretrainConfig
    from emobench.pretrain.synth_web.train import train_clip
    from emobench.pretrain.synth_web.webpool import build_web_pool
    cfg = PretrainConfig(n_identities=2, images_per_identity=8, steps=2, batch_size=16, warmup=1)
    images, captions, _ = build_web_pool(cfg)
    with reproducible_cpu(early) as cpu:
        model, _ = train_clip(images, captions, cfg)
h = hashlib.sha256()
for k, v in model.state_dict().items():  # float32, not the shipped float16: every bit counts
    h.update(k.encode() + v.detach().contiguous().numpy().tobytes())
print(cpu["reproducible"], h.hexdigest())
"""


def _pinned_run(mode: str, **env: str) -> str:
    import subprocess
    import sys

    full = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, "-c", _PINNED_RUN, mode], env=full, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-2] + " " + out.stdout.split()[-1]


def test_pinned_arithmetic_does_not_depend_on_the_cpu_instruction_set():
    """The shipped weights regenerate on another machine: with the pre-training commands'
    pinned arithmetic (one thread, MKL_CBWR=COMPATIBLE, ATen default kernels, oneDNN off),
    restricting MKL to SSE4.2 and asking for more threads (what an older or larger CPU
    does) changes no bit of the trained float32 weights. Unpinned, the same restriction
    changed the weights on the AVX-512 machine this was written on."""
    here = _pinned_run("pin")
    assert here.startswith("True ")
    assert _pinned_run("pin", MKL_ENABLE_INSTRUCTIONS="SSE4_2", OMP_NUM_THREADS="2") == here


def test_shipped_weights_are_the_ones_their_card_describes():
    """Whoever re-ships the tiny CLIP ships its card and figures with it: the weights'
    SHA-256 is the one the card and its JSON give, and they were trained with pinned
    arithmetic (so ``benchmarks/regenerate_weights.py`` can regenerate them bit for bit)."""
    import hashlib
    import json

    from emobench.pretrain.synth_web.config import SHIPPED_DIR

    digest = hashlib.sha256((SHIPPED_DIR / WEIGHTS_NAME).read_bytes()).hexdigest()
    info = json.loads((SHIPPED_DIR / "emobench-tiny-synth-web.json").read_text())
    assert info["sha256"] == digest[:16]
    assert f"sha256 prefix `{digest[:16]}`" in (SHIPPED_DIR / CARD_NAME).read_text()
    assert info["cpu"]["reproducible"] is True


def test_shipped_vlm_is_the_one_its_card_describes():
    """The same for the tiny generative VLM: its recipe.json and card give the weights'
    SHA-256, and it was trained with pinned arithmetic."""
    import hashlib
    import json

    from emobench.pretrain.synth_vlm.config import SHIPPED_DIR as VLM_DIR

    digest = hashlib.sha256((VLM_DIR / "model.safetensors").read_bytes()).hexdigest()
    info = json.loads((VLM_DIR / "recipe.json").read_text())
    assert digest.startswith(info["sha256"]) and len(info["sha256"]) >= 16
    assert f"sha256 prefix `{info['sha256']}`" in (VLM_DIR / "README.md").read_text()
    assert info["cpu"]["reproducible"] is True
