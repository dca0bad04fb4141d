"""The synth generator's optional audio track (``audio = "none" | "tone" | "silence"``).

Off, the option changes nothing: the same bytes and ``synth.json`` as a generation that
never names it (and the shipped quickstart folder still matches). ``tone`` tracks decode
with :mod:`emobench.video.audio` at 16 kHz with the intended pitch (FFT peak), and an
``emobench run`` of ``hicmae:`` in ``modality = "audio-visual"`` scores every test clip of
a generated set, counting a clip stripped of its track as ``no_audio``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import make_synth

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "data" / "synth-quickstart-v3"
TINY_HICMAE = Path(__file__).parent / "data" / "hicmae-tiny.pth"
#: The tiny checkpoint's head order (DFEW's official one).
DFEW_HEAD = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
SMALL = {
    "profile": "uniform:anger,happiness,sadness",
    "n_train": 6,
    "n_test": 4,
    "n_train_subjects": 2,
    "seed": 3,
    "min_seconds": 1.6,
    "max_seconds": 2.0,
}


def _hashes(root: Path) -> dict[str, str]:
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted((root / "videos").glob("*.mp4"))
    }


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth-audio")
    return {
        "absent": make_synth(base / "absent", **SMALL),
        "none": make_synth(base / "none", **SMALL, audio="none"),
        "tone": make_synth(base / "tone", **SMALL, audio="tone"),
        "silence": make_synth(base / "silence", **SMALL, audio="silence"),
    }


def _peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    """Dominant frequency: Hann window, zero-padded FFT, parabolic peak interpolation."""
    n = 1 << 18
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n))
    k = int(spec[1:].argmax()) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n


# ------------------------------------------------------------------ off: nothing changes


def test_audio_none_is_byte_identical_and_left_out_of_the_manifest(sets):
    absent, none = sets["absent"], sets["none"]
    assert _hashes(absent) == _hashes(none)
    assert (absent / "synth.json").read_bytes() == (none / "synth.json").read_bytes()
    meta = json.loads((none / "synth.json").read_text())
    assert "audio" not in meta["config"] and "audio" not in meta
    import av

    with av.open(str(next((none / "videos").glob("*.mp4")))) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_audio_does_not_change_the_video_stream_or_the_tables(sets):
    from emobench.video.frames import VideoFrameSource

    ann = pl.read_csv(sets["none"] / "annotations.csv")
    assert ann.equals(pl.read_csv(sets["tone"] / "annotations.csv"))
    src = VideoFrameSource(backend="pyav")
    for row in ann.head(3).iter_rows(named=True):
        idx = np.arange(row["n_frames"])
        a = src.read(str(sets["none"] / row["path"]), idx, clip_id="a", n_frames=len(idx))
        b = src.read(str(sets["tone"] / row["path"]), idx, clip_id="b", n_frames=len(idx))
        assert np.array_equal(a, b)


def test_quickstart_folder_still_matches_the_default_config(tmp_path):
    """The shipped quickstart data (when present) is not flagged as generated with other
    settings, and its first clips regenerate to the same bytes."""
    from emobench.data.synth.generate import SynthConfig, build_clip, make_plan, manifest_drift

    if not (QUICKSTART / "synth.json").is_file():
        pytest.skip(f"{QUICKSTART} not generated here")
    cfg = SynthConfig.quickstart()
    assert manifest_drift(cfg, QUICKSTART) is None
    tone = cfg.model_copy(update={"audio": "tone"})
    assert "audio='none' (now 'tone')" in (manifest_drift(tone, QUICKSTART) or "")
    for plan in make_plan(cfg)[:2]:
        build_clip(cfg, plan, tmp_path)
        name = f"{plan.clip_id}.mp4"
        assert (tmp_path / name).read_bytes() == (QUICKSTART / "videos" / name).read_bytes()


def test_cli_and_config_table_accept_the_option(tmp_path):
    from typer.testing import CliRunner

    from emobench.cli import app
    from emobench.config import ConfigError, validate_config

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        ["data", "generate", "synth", "--out", str(out), "--profile", "uniform:anger,sadness",
         "--n-train", "2", "--n-test", "2", "--size", "32", "--min-seconds", "1",
         "--max-seconds", "1", "--n-train-subjects", "1", "--n-test-subjects", "1",
         "--workers", "1", "--no-progress", "--audio", "silence"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((out / "synth.json").read_text())["config"]["audio"] == "silence"
    ds = {"name": "synth", "root": str(tmp_path / "x"), "generate": {"audio": "tone"}}
    cfg = validate_config({"name": "t", "datasets": [ds], "models": [{"adapter": "baseline:gru"}]})
    assert cfg.datasets[0].generate == {"audio": "tone"}
    with pytest.raises((ConfigError, ValueError), match="audio"):
        validate_config(
            {
                "name": "t",
                "datasets": [{**ds, "generate": {"audio": "voice"}}],
                "models": [{"adapter": "baseline:gru"}],
            }
        )


# ------------------------------------------------------------------ tone and silence


def test_tone_tracks_decode_at_16k_with_the_intended_pitch(sets):
    from emobench.data.synth.audio import RATE, SEMITONES, base_pitch, frame_pitch
    from emobench.data.synth.generate import SynthConfig, clip_timeline, make_plan
    from emobench.video.audio import read_audio

    cfg = SynthConfig(**{**_make_synth_defaults(), **SMALL, "audio": "tone"})
    checked = 0
    for plan in make_plan(cfg):
        tl = clip_timeline(cfg, plan)
        wave = read_audio(sets["tone"] / "videos" / f"{plan.clip_id}.mp4", RATE)
        assert wave is not None and len(wave) == round(tl.n_frames / cfg.fps * RATE)
        base = base_pitch(cfg.seed, plan.subject)
        pitch = frame_pitch(plan.label, tl, base)
        # the first frames (before any onset) sound at the subject's base pitch
        lead = int(np.argmax(tl.envelope > 0)) if tl.envelope.any() else tl.n_frames
        if lead >= 8:
            seg = wave[RATE // 100 : int((lead - 0.5) / cfg.fps * RATE)]
            assert abs(_peak_hz(seg) - base) < 0.01 * base, plan.clip_id
        # the apex hold of a macro clip sounds at base · 2^(shift · intensity / 12)
        hold = np.flatnonzero(tl.envelope >= 1.0)
        if len(hold) >= 8 and plan.label != "neutral":
            seg = wave[int((hold[0] + 1) / cfg.fps * RATE) : int(hold[-1] / cfg.fps * RATE)]
            want = base * 2 ** (SEMITONES[plan.label] * tl.intensity / 12)
            assert abs(pitch[hold].mean() - want) < 1e-6 * want
            got = _peak_hz(seg)
            assert abs(got - want) < 0.01 * want, (plan.clip_id, got, want)
            assert abs(got - base) > 0.05 * base  # the expression moved the pitch
            checked += 1
    assert checked >= 2


def _make_synth_defaults() -> dict:
    """The fields conftest.make_synth sets on top of SynthConfig's defaults."""
    return {
        "size": 32,
        "min_seconds": 1.0,
        "max_seconds": 1.0,
        "n_train_subjects": 4,
        "n_test_subjects": 2,
    }


def test_silence_is_a_track_of_zeros_and_recorded(sets):
    from emobench.video.audio import read_audio

    clip = next((sets["silence"] / "videos").glob("*.mp4"))
    wave = read_audio(clip)
    assert wave is not None and wave.size > 16000 and not wave.any()
    meta = json.loads((sets["silence"] / "synth.json").read_text())
    assert meta["config"]["audio"] == "silence"
    assert meta["audio"]["codec"] == "flac" and meta["audio"]["rate"] == 16000


def test_tone_is_deterministic(sets, tmp_path):
    again = make_synth(tmp_path / "again", **SMALL, audio="tone")
    assert _hashes(again) == _hashes(sets["tone"])


# ------------------------------------------------------------------ hicmae audio-visual run


@pytest.mark.parametrize("finetune", [False, True])
def test_hicmae_audio_visual_run_scores_every_test_clip(sets, tmp_path, finetune):
    """``emobench run`` of a TOML config whose ``[datasets.generate]`` table asks for tone
    tracks (the folder holds that set already, one test clip stripped of its track): the
    released head as is, or fine-tuned for one epoch on the training clips' tracks."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from emobench.cli import app
    from emobench.results import RunFolder

    root = tmp_path / "tone"
    shutil.copytree(sets["tone"], root)
    tests = pl.read_csv(root / "annotations.csv").filter(pl.col("split") == "test")
    mute = tests["path"][0]  # this test clip loses its track: the video-only file
    shutil.copyfile(sets["none"] / mute, root / mute)
    generate = {**_make_synth_defaults(), **SMALL, "audio": "tone"}
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in generate.items())
    opts = (
        "finetune = true\nepochs = 1\nbatch_size = 2"
        if finetune
        else f"finetune = false\nclasses = {json.dumps(list(DFEW_HEAD))}"
    )
    config = tmp_path / "av.toml"
    config.write_text(
        f"""name = "hicmae-av"
device = "cpu"

[[datasets]]
name = "synth"
root = {json.dumps(str(root))}

[datasets.generate]
{table}

[[models]]
adapter = {json.dumps(f"hicmae:{TINY_HICMAE}")}
name = "hicmae-av"

[models.options]
modality = "audio-visual"
{opts}
heads = 2
frame_size = 32
num_frames = 4
audio_frames = 64

[sweep]
sampler = ["uniform:4"]

[cache]
dir = {json.dumps(str(tmp_path / "cache"))}

[video]
backend = "pyav"

[metrics]
n_resamples = 0
"""
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    run = RunFolder(out)
    preds = run.read_predictions()
    assert sorted(preds["clip_id"].to_list()) == sorted(tests["clip_id"].to_list())
    score_cols = [c for c in preds.columns if c.startswith("score:")]
    assert len(score_cols) == 3 and np.isfinite(preds.select(score_cols).to_numpy()).all()
    infos = [f["1"] for f in run.read_manifest()["cell_info"].values()]
    assert len(infos) == 1 and infos[0]["modality"] == "audio-visual"
    assert infos[0]["no_audio"] == 1  # the stripped test clip; every training clip had one
    if finetune:
        assert infos[0]["training"]["epochs_run"] == 1
