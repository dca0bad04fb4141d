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
