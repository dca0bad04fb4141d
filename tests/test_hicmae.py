"""``hicmae:``: the network against the authors' architecture (tiny checkpoint, reference
logits in tests/data, see hicmae-tiny.md), the Kaldi filterbank against an independent
scipy computation, the audio reader and the adapter through the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATA = Path(__file__).parent / "data"
TINY = DATA / "hicmae-tiny.pth"
TINY_OPTS = {"heads": 2, "frame_size": 32, "num_frames": 4, "audio_frames": 64}


def _tiny_net(modality: str = "audio-visual"):
    from emobench.models.hicmae.checkpoint import config_from_tensors, load_weights, read_checkpoint
    from emobench.models.hicmae.network import HiCMAE

    t = read_checkpoint(str(TINY), "hicmae:tiny")
    cfg = config_from_tensors(
        t, modality, 7, "hicmae:tiny", heads=2, image_size=32, num_frames=4, audio_frames=64
    )
    net = HiCMAE(cfg).eval()
    load_weights(net, t, pretrained=modality != "audio-visual", where="hicmae:tiny")
    return net, t


def test_parity_with_the_authors_architecture():
    from emobench.models.videovit import imagenet_pixels

    net, _ = _tiny_net()
    ref = np.load(DATA / "hicmae-tiny-reference.npz")
    with torch.no_grad():
        video = imagenet_pixels(torch.from_numpy(ref["frames"]))
        logits = net(video, torch.from_numpy(ref["fbank"])).double()
    probs = logits.softmax(-1).numpy()
    assert (probs.argmax(1) == ref["probs"].argmax(1)).all()
    assert np.abs(probs - ref["probs"]).max() < 1e-4
    assert np.abs(logits.numpy() - ref["logits"]).max() < 1e-4


def test_shapes_read_from_the_checkpoint():
    from emobench.models.hicmae.checkpoint import head_modality, read_checkpoint

    net, t = _tiny_net()
    cfg = net.cfg
    assert (cfg.dim, cfg.depth, cfg.dim_audio, cfg.depth_audio, cfg.fusion_depth) == (
        32,
        2,
        32,
        2,
        1,
    )
    assert (cfg.patch_size, cfg.tubelet, cfg.mlp_hidden, cfg.qkv_bias) == (16, 2, 128, True)
    assert head_modality(t) == "audio-visual"
    assert head_modality({k: v for k, v in t.items() if not k.startswith("head")}) is None
    assert set(read_checkpoint(str(TINY), "x")) == set(net.state_dict())


def test_visual_variant_takes_the_encoder_of_an_audio_visual_checkpoint():
    net, t = _tiny_net("visual")
    assert net.head.in_features == 32
    assert torch.equal(net.encoder.blocks[1].attn.qkv.weight, t["encoder.blocks.1.attn.qkv.weight"])
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 4, 32, 32))
    assert out.shape == (2, 7)


def test_layer_ids_follow_the_authors_audio_visual_assigner():
    net, _ = _tiny_net()
    ids = net.layer_ids()
    assert ids["encoder.patch_embed.proj.weight"] == 0
    assert ids["encoder_audio.blocks.1.attn.qkv.weight"] == 2
    assert ids["encoder_fusion.blocks_audio.0.cross_attn.q.weight"] == 3
    assert ids["encoder.norm.weight"] == ids["head.weight"] == ids["video_layer_weights"] == 4


def test_a_pickled_class_other_than_namespace_is_refused(tmp_path):
    from emobench.models.hicmae.checkpoint import HiCMAEError, read_checkpoint

    bad = tmp_path / "bad.pth"
    torch.save({"model": {"a": torch.zeros(1)}, "extra": Path("/x")}, bad)
    with pytest.raises(HiCMAEError, match="refused"):
        read_checkpoint(str(bad), "hicmae:bad")
    other = tmp_path / "other.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, other)
    with pytest.raises(HiCMAEError, match="not a HiCMAE checkpoint"):
        read_checkpoint(str(other), "hicmae:other")


# ------------------------------------------------------------------ filterbank


def _scipy_fbank(x: np.ndarray, sr: int = 16000, bins: int = 128) -> np.ndarray:
    """Kaldi's recipe written out frame by frame, with scipy's window and FFT and the
    filters built one triangle at a time."""
    from scipy.fft import rfft
    from scipy.signal import get_window

    win = get_window("hann", 400, fftbins=False)

    def m(f):
        return 1127.0 * np.log(1 + f / 700.0)

    lo, hi = m(20.0), m(sr / 2)
    step = (hi - lo) / (bins + 1)
    fft_mels = [m(k * sr / 512) for k in range(256)]
    filt = np.zeros((bins, 257))
    for b in range(bins):
        left, centre, right = lo + b * step, lo + (b + 1) * step, lo + (b + 2) * step
        for k, mk in enumerate(fft_mels):
            if left < mk < right:
                filt[b, k] = (
                    (mk - left) / (centre - left)
                    if mk <= centre
                    else (right - mk) / (right - centre)
                )
    out = []
    for start in range(0, len(x) - 400 + 1, 160):
        f = x[start : start + 400].astype(np.float64)
        f = f - f.mean()
        f = np.concatenate([[f[0] - 0.97 * f[0]], f[1:] - 0.97 * f[:-1]])
        spec = np.abs(rfft(f * win, n=512)) ** 2
        out.append(np.log(np.maximum(filt @ spec, np.finfo(np.float32).eps)))
    return np.array(out)


def test_kaldi_fbank_matches_an_independent_scipy_computation():
    from emobench.models.hicmae.fbank import kaldi_fbank

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 0.3) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)
    ours = kaldi_fbank(x)
    ref = _scipy_fbank(x)
    assert ours.shape == ref.shape == (1 + (len(x) - 400) // 160, 128)
    assert np.abs(ours - ref).max() < 1e-4


def test_a_tone_lights_the_mel_bin_of_its_pitch():
    from emobench.models.hicmae.fbank import kaldi_fbank, mel

    t = np.arange(16000) / 16000
    for f in (300.0, 1000.0, 3000.0):
        fb = kaldi_fbank(np.sin(2 * np.pi * f * t))
        lo, hi = mel(20.0), mel(8000.0)
        centres = lo + (np.arange(128) + 1) * (hi - lo) / 129
        assert abs(int(fb.mean(0).argmax()) - int(np.abs(centres - mel(f)).argmin())) <= 1


def test_hicmae_input_pads_cuts_and_normalises():
    from emobench.models.hicmae.fbank import NORM_MEAN, NORM_STD, hicmae_input

    short = hicmae_input(np.zeros(100))
    assert short.shape == (1, 256, 128)
    assert np.allclose(short, -NORM_MEAN / (2 * NORM_STD))
    long = hicmae_input(np.random.default_rng(1).normal(size=16000 * 4), target_length=64)
    assert long.shape == (1, 64, 128) and np.isfinite(long).all()


# ------------------------------------------------------------------ adapter


def _write_av_clip(path: Path, label_pitch: float, n: int = 12, fps: int = 25) -> None:
    """A tiny mp4 with an H.264 video track and an AAC tone (PyAV)."""
    import av

    with av.open(str(path), mode="w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(n):
            img = np.full((32, 32, 3), (i * 20) % 255, np.uint8)
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode())
        t = np.arange(int(16000 * n / fps)) / 16000
        wave = (0.3 * np.sin(2 * np.pi * label_pitch * t)).astype(np.float32)
        for s in range(0, len(wave), 1024):
            fr = av.AudioFrame.from_ndarray(wave[None, s : s + 1024], format="flt", layout="mono")
            fr.sample_rate = 16000
            fr.pts = s
            c.mux(a.encode(fr))
        c.mux(a.encode())


def _ctx(tmp_path: Path, clips: dict[str, tuple[str, str]], labels: list[str]):
    import polars as pl

    from emobench.models.base import FitContext

    rows = pl.DataFrame(
        {
            "clip_id": list(clips),
            "path": [p for p, _ in clips.values()],
            "label": [lb for _, lb in clips.values()],
            "n_frames": [12] * len(clips),
            "fps": [25.0] * len(clips),
        }
    )

    def load_frames(model, sel):
        rng = np.random.default_rng(0)
        return [
            rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8) for _ in range(sel.height)
        ], list(range(sel.height))

    return FitContext(
        dataset="dfew", fold=1, seed=0, rebalancing="class-balanced", labels=labels,
        train_index=rows,
        checkpoint_dir=tmp_path / "ckpt", device="cpu",
        train_options={"epochs": 1, "val_fraction": 0.25, "batch_size": 4},
        load_frames=load_frames, load_features=lambda m, r: ([], []),
        clip_path=lambda cid: clips[cid][0] if cid in clips else "",
    )  # fmt: skip


def _clips(tmp_path: Path) -> dict[str, tuple[str, str]]:
    labels = ["happiness", "sadness", "anger", "neutral"] * 2
    out = {}
    for i, lb in enumerate(labels):
        path = tmp_path / f"c{i}.mp4"
        _write_av_clip(path, 300.0 + 200 * (i % 4))
        out[f"c{i}"] = (str(path), lb)
    return out


def _inputs(clips: dict[str, tuple[str, str]]):
    from emobench.models.base import ClipInput

    rng = np.random.default_rng(3)
    return [
        ClipInput(
            cid, rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), np.arange(0, 12, 2), 25.0
        )
        for cid in clips
    ]


def test_read_audio_and_window(tmp_path):
    from emobench.models.hicmae.fbank import kaldi_fbank, mel
    from emobench.video.audio import clip_window, read_audio

    path = tmp_path / "a.mp4"
    _write_av_clip(path, 1000.0, n=25)
    wave = read_audio(path)
    assert wave is not None and abs(len(wave) - 16000) < 2048
    part = clip_window(wave, np.array([10, 5, 0]), 25.0, 16000)
    assert len(part) == round(15 / 25 * 16000)
    fb = kaldi_fbank(part[1000:-1000])
    lo, hi = mel(20.0), mel(8000.0)
    centres = lo + (np.arange(128) + 1) * (hi - lo) / 129
    assert abs(int(fb.mean(0).argmax()) - int(np.abs(centres - mel(1000.0)).argmin())) <= 1
    silent = tmp_path / "v.mp4"
    import av

    with av.open(str(silent), mode="w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        c.mux(v.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        c.mux(v.encode())
    assert read_audio(silent) is None


def test_released_head_scores_labels_by_name(tmp_path):
    from emobench.models.registry import create_model

    clips = _clips(tmp_path)
    labels = ["anger", "happiness", "neutral", "sadness"]
    model = create_model(
        f"hicmae:{TINY}", {**TINY_OPTS, "modality": "audio-visual", "finetune": False}
    )
    model.fit(_ctx(tmp_path, clips, labels))
    out = model.predict(_inputs(clips))
    assert len(out) == 8 and out[0].scores.shape == (4,)
    assert model.describe()["no_audio"] == 0
    # the head's full output, picked by name (DFEW order: happiness sadness neutral anger ...)
    full = create_model(
        f"hicmae:{TINY}", {**TINY_OPTS, "modality": "audio-visual", "finetune": False}
    )
    full.fit(
        _ctx(
            tmp_path,
            clips,
            ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"],
        )
    )
    whole = full.predict(_inputs(clips))
    assert np.allclose(out[0].scores, whole[0].scores[[3, 0, 2, 1]])


def test_released_head_of_the_wrong_modality_is_one_line(tmp_path):
    from emobench.models.hicmae.checkpoint import HiCMAEError
    from emobench.models.registry import create_model

    model = create_model(f"hicmae:{TINY}", {**TINY_OPTS, "finetune": False})
    with pytest.raises(HiCMAEError, match="audio-visual one"):
        model.fit(_ctx(tmp_path, _clips(tmp_path), ["anger", "happiness"]))


@pytest.mark.parametrize("modality", ["visual", "audio-visual"])
def test_finetune_runs_the_hfvideo_loop_and_reuses_its_checkpoint(tmp_path, modality):
    from emobench.models.registry import create_model
    from emobench.training.video import OPTIMIZER_STEPS

    clips = _clips(tmp_path)
    labels = ["anger", "happiness", "neutral", "sadness"]
    opts = {**TINY_OPTS, "modality": modality, "batch_size": 2, "epochs": 1}
    model = create_model(f"hicmae:{TINY}", opts)
    before = OPTIMIZER_STEPS["finetune"]
    model.fit(_ctx(tmp_path, clips, labels))
    assert OPTIMIZER_STEPS["finetune"] > before
    first = [o.scores for o in model.predict(_inputs(clips))]
    again = create_model(f"hicmae:{TINY}", opts)
    steps = OPTIMIZER_STEPS["finetune"]
    again.fit(_ctx(tmp_path, clips, labels))
    assert OPTIMIZER_STEPS["finetune"] == steps and again.describe()["checkpoint_reused"]
    assert np.allclose(first, [o.scores for o in again.predict(_inputs(clips))], atol=1e-6)


def test_audio_packing_is_bit_exact():
    from emobench.models.hicmae.classifier import audio_rows, pack, unpack

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    audio = rng.normal(size=(1, 64, 128)).astype(np.float32)
    packed = pack(frames, audio, audio_rows(4, 32, 64, 128))
    f, a = unpack(torch.from_numpy(packed[None]), 32, (64, 128))
    assert np.array_equal(f[0].numpy(), frames) and np.array_equal(a[0].numpy(), audio)
