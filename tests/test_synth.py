"""Tests for the generated benchmark (emobench.data.synth): profiles, timelines, renderer,
generation (determinism, counts, ground truth, subjects, folds), loader and CLI.

Datasets are tiny (64×64, 1–1.5 s) and generated once per module in a temp folder.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from emobench.data.index import validate_index
from emobench.data.registry import load_index
from emobench.data.synth import SynthDatasetError, load_au_frames, load_synth
from emobench.data.synth.aus import AU_COLUMNS, AUS, N_AUS, PROTOTYPES, au_vector, prototype_vector
from emobench.data.synth.faces import (
    Identity,
    render_face,
    render_frames,
    render_yuv420p,
    sample_identity,
)
from emobench.data.synth.generate import (
    SynthConfig,
    clip_timeline,
    generate,
    make_plan,
    subject_rng,
)
from emobench.data.synth.profiles import (
    DFEW_COUNTS,
    ProfileError,
    class_counts,
    largest_remainder,
    parse_profile,
)
from emobench.data.synth.timeline import make_timeline, micro_frames
from emobench.errors import EmobenchError

TINY = {
    "n_train": 40,
    "n_test": 16,
    "size": 64,
    "min_seconds": 1.0,
    "max_seconds": 1.5,
    "n_train_subjects": 6,
    "n_test_subjects": 3,
    "seed": 1,
}


def _frames(path: str | Path, indices: list[int] | None = None) -> np.ndarray:
    """Frames of a generated video (all by default), decoded with the reference backend
    (PyAV), which reads every size on every CPU."""
    from emobench.video.frames import VideoFrameSource

    source = VideoFrameSource(backend="pyav")
    if indices is None:
        indices = list(range(source.count(str(path))))
    return source.read(str(path), indices)


def _decode_all(path: str | Path) -> np.ndarray:
    return _frames(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthConfig, Path]:
    cfg = SynthConfig(**TINY)
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(cfg, out, progress=False, workers=1)
    return cfg, out


@pytest.fixture(scope="module")
def tiny_ann(tiny: tuple[SynthConfig, Path]) -> pl.DataFrame:
    return pl.read_csv(tiny[1] / "annotations.csv")


# ----------------------------------------------------------------------------- profiles


def test_dfew_counts_match_hand_computed_largest_remainder() -> None:
    # quotas for 1000: 228.18, 209.03, 185.77, 161.92, 125.59, 77.11, 12.40 → floors sum 997;
    # the 3 extra units go to the largest remainders: anger .77, surprise .59, fear... no:
    # remainders: neutral .18, happiness .03, anger .77, sadness .92, surprise .59, fear .11,
    # disgust .40 → sadness, anger, surprise get +1.
    assert class_counts("dfew", 1000) == {
        "neutral": 228,
        "happiness": 209,
        "anger": 186,
        "sadness": 162,
        "surprise": 126,
        "fear": 77,
        "disgust": 12,
    }


def test_profiles_parse_and_shapes() -> None:
    assert parse_profile("dfew").classes == tuple(DFEW_COUNTS)
    assert len(parse_profile("mafw").classes) == 11
    exp = parse_profile("exp:100").weights
    vals = list(exp.values())
    assert vals[0] / vals[-1] == pytest.approx(100.0)
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    assert set(parse_profile("uniform").weights.values()) == {1.0}
    custom = parse_profile("exp:10:happy,sad,angry")
    assert custom.classes == ("happiness", "sadness", "anger")
    assert class_counts("uniform", 7) == dict.fromkeys(DFEW_COUNTS, 1)


@pytest.mark.parametrize("bad", ["zipf", "exp:", "exp:abc", "exp:0.5", "uniform:joy", "exp:3:foo"])
def test_bad_profile_gives_clear_error(bad: str) -> None:
    with pytest.raises(ProfileError, match="allowed: dfew, mafw"):
        parse_profile(bad)
    with pytest.raises(EmobenchError, match=f"bad class profile '{bad}'"):
        SynthConfig(profile=bad)


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 1000.0), min_size=2, max_size=12),
    extra=st.integers(0, 3000),
)
def test_largest_remainder_properties(weights: list[float], extra: int) -> None:
    named = {f"c{i}": w for i, w in enumerate(weights)}
    total = len(weights) + extra
    counts = largest_remainder(named, total)
    assert sum(counts.values()) == total
    assert min(counts.values()) >= 1
    wsum = sum(weights)
    quotas = {name: total * w / wsum for name, w in named.items()}
    if min(quotas.values()) >= 1:  # nothing lifted to the minimum: plain Hare rounding
        assert all(abs(counts[n] - q) < 1 for n, q in quotas.items())
    ranked = sorted(named, key=lambda n: -named[n])  # heavier classes never get fewer clips
    assert all(counts[a] >= counts[b] for a, b in zip(ranked, ranked[1:], strict=False))


def test_too_few_clips_for_classes() -> None:
    with pytest.raises(ProfileError, match="at least 1"):
        class_counts("mafw", 5)


# ----------------------------------------------------------------------------- AUs, timelines


def test_prototypes_follow_emfacs() -> None:
    assert set(PROTOTYPES["happiness"]) == {6, 12}
    assert {1, 4, 15} <= set(PROTOTYPES["sadness"])
    assert set(PROTOTYPES["surprise"]) == {1, 2, 5, 26}
    assert set(PROTOTYPES["fear"]) == {1, 2, 4, 5, 7, 20, 26}
    assert {4, 5, 7, 23} <= set(PROTOTYPES["anger"])
    assert {9, 10, 15} <= set(PROTOTYPES["disgust"])
    assert set(PROTOTYPES["contempt"]) == {12, 14}
    assert PROTOTYPES["neutral"] == {}
    assert len(AUS) == N_AUS == 17
    assert au_vector(AU12=1.0)[AUS.index(12)] == 1.0
    # close pairs share action units
    assert {1, 2, 5, 26} <= set(PROTOTYPES["fear"]) & set(PROTOTYPES["surprise"])
    for extra in ("anxiety", "helplessness", "disappointment"):
        assert 1 in PROTOTYPES[extra] and set(PROTOTYPES[extra]) & set(PROTOTYPES["sadness"])


@pytest.mark.parametrize("fps", [12, 25, 30, 50])
def test_micro_windows_last_a_quarter_to_half_second(fps: int) -> None:
    lo, hi = micro_frames(fps)
    labels = [c for c in PROTOTYPES if c != "neutral"]
    for seed in range(150):
        rng = np.random.default_rng(seed)
        label = labels[seed % len(labels)]
        n = int(rng.integers(fps, 4 * fps))
        tl = make_timeline(label, n, fps, True, rng, labels)
        assert tl.onset is not None and tl.apex is not None and tl.offset is not None
        assert 0 < tl.onset <= tl.apex <= tl.offset < n - 1
        assert lo <= tl.offset - tl.onset + 1 <= hi
        assert 0.25 <= (tl.offset - tl.onset + 1) / fps <= 0.5
        w = prototype_vector(label)
        cols = w > 0
        apex = tl.aus[tl.apex]
        assert np.all(apex[cols] >= 0.79 * w[cols] * tl.intensity)  # jitter >= 0.8
        outside = np.ones(n, dtype=bool)
        outside[tl.onset : tl.offset + 1] = False
        assert tl.aus[outside][:, cols].max() <= 0.3  # weak distractor / speech only


def test_macro_and_neutral_timelines() -> None:
    for seed in range(100):
        rng = np.random.default_rng(seed)
        tl = make_timeline("anger", 60, 25, False, rng, ["happiness", "anger"])
        w = prototype_vector("anger")
        energy = tl.aus @ w / w.sum()
        assert 0 < tl.onset <= tl.apex <= tl.offset <= 59
        assert energy[: tl.onset].max(initial=0) == 0  # neutral before the onset
        assert energy[tl.apex] == pytest.approx(energy.max(), abs=1e-6)
        if tl.offset < 59:
            assert energy[tl.offset + 1 :].max() == 0
        assert 0.4 <= tl.intensity <= 1.0
        neutral = make_timeline("neutral", 60, 25, False, rng, ["happiness", "anger"])
        assert neutral.onset is None and neutral.apex is None and not neutral.micro
    with pytest.raises(ValueError, match="neutral"):
        make_timeline("neutral", 60, 25, True, np.random.default_rng(0))


# ----------------------------------------------------------------------------- renderer


def test_sample_identity_is_deterministic_and_varied() -> None:
    a = sample_identity(np.random.default_rng(5))
    assert a == sample_identity(np.random.default_rng(5))
    assert isinstance(a, Identity) and hash(a) == hash(sample_identity(np.random.default_rng(5)))
    styles = {sample_identity(np.random.default_rng(i)).hair_style for i in range(60)}
    assert len(styles) >= 4


def test_every_action_unit_moves_the_face() -> None:
    ident = sample_identity(np.random.default_rng(3))
    neutral = render_face(ident, np.zeros(N_AUS), 112).astype(int)
    assert neutral.shape == (112, 112, 3)
    assert render_face(ident, np.zeros(N_AUS), 64).dtype == np.uint8
    for au in AUS:
        img = render_face(ident, au_vector(**{f"AU{au}": 1.0}), 112).astype(int)
        changed = int((np.abs(img - neutral).max(-1) > 24).sum())
        assert changed >= 8, f"AU{au} changes only {changed} pixels"


def test_contempt_is_one_sided_and_happiness_symmetric() -> None:
    ident = sample_identity(np.random.default_rng(3))
    neutral = render_face(ident, np.zeros(N_AUS), 112).astype(float)

    def asymmetry(label: str) -> float:
        diff = np.abs(render_face(ident, prototype_vector(label), 112) - neutral).mean(-1)
        lower = diff[60:100]  # mouth region rows
        return abs(lower[:, :56].sum() - lower[:, 56:].sum()) / (lower.sum() + 1e-9)

    assert asymmetry("contempt") > 0.25
    assert asymmetry("happiness") < 0.1


def test_render_paths_agree_and_noise_needs_rng() -> None:
    ident = sample_identity(np.random.default_rng(9))
    aus = np.tile(prototype_vector("surprise"), (5, 1))
    poses = np.array([[0.01 * i, -0.01 * i, i - 2.0] for i in range(5)], np.float32)
    rgb = render_frames(ident, aus, 64, poses)
    assert rgb.shape == (5, 64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[2], render_face(ident, aus[2], 64, pose=tuple(poses[2])))
    yuv = render_yuv420p(ident, aus, 64, poses).astype(float)
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y_ref = 16 + 0.256788 * r + 0.504129 * g + 0.097906 * b  # BT.601 limited range
    assert np.abs(yuv[:, :64] - y_ref).max() <= 1.0
    noisy = render_frames(ident, aus, 64, poses, rng=np.random.default_rng(0), noise=3.0)
    assert 1.0 < np.abs(noisy.astype(float) - rgb).mean() < 4.0


# ----------------------------------------------------------------------------- generation


def test_class_proportions_match_the_profile(tiny, tiny_ann) -> None:
    cfg, _ = tiny
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        got = dict(tiny_ann.filter(pl.col("split") == split)["label"].value_counts().rows())
        assert got == class_counts(cfg.profile, n)


def test_balanced_test_split() -> None:
    cfg = SynthConfig(**{**TINY, "n_test": 14, "test_split": "balanced"})
    test = [p.label for p in make_plan(cfg) if p.split == "test"]
    assert {label: test.count(label) for label in set(test)} == dict.fromkeys(DFEW_COUNTS, 2)


def test_micro_share_and_windows_in_tables(tiny, tiny_ann) -> None:
    cfg, root = tiny
    micro = tiny_ann.filter(pl.col("micro"))
    assert micro.height == round(cfg.micro_share * cfg.n_train) + round(
        cfg.micro_share * cfg.n_test
    )
    assert (micro["label"] != "neutral").all()
    au = load_au_frames(root)
    assert au.columns == ["clip_id", "frame", *AU_COLUMNS]
    assert au.height == tiny_ann["n_frames"].sum()
    for r in micro.iter_rows(named=True):
        dur = (r["offset"] - r["onset"] + 1) / r["fps"]
        assert 0.25 <= dur <= 0.5
        table = au.filter(pl.col("clip_id") == r["clip_id"]).sort("frame")
        values = table.select(AU_COLUMNS).to_numpy()
        w = prototype_vector(r["label"])
        cols = w > 0
        assert np.all(values[r["apex"], cols] >= 0.79 * w[cols] * r["intensity"])
        outside = np.ones(len(values), dtype=bool)
        outside[r["onset"] : r["offset"] + 1] = False
        assert values[outside][:, cols].max() <= 0.3


def test_decoded_apex_shows_the_expression(tiny) -> None:
    """At the apex the decoded frame is closer to the expressive rendering than to the same
    frame rendered with the label's AUs switched off (same pose and light), in luma over
    the pixels the expression changes."""
    cfg, root = tiny
    luma = np.array([0.299, 0.587, 0.114])
    ratios = []
    for plan in make_plan(cfg):
        if plan.label == "neutral":
            continue
        tl = clip_timeline(cfg, plan)
        a = tl.apex
        ident = sample_identity(subject_rng(cfg.seed, plan.subject))
        frame = (tl.aus[a : a + 1], cfg.size, tl.poses[a : a + 1], tl.illums[a : a + 1])
        expr = render_frames(ident, *frame)[0] @ luma
        off = tl.aus[a : a + 1].copy()
        off[:, prototype_vector(plan.label) > 0] = 0.0
        neutral = render_frames(ident, off, *frame[1:])[0] @ luma
        mask = np.abs(expr - neutral) > 8
        assert mask.sum() >= 15, plan.clip_id
        decoded = _frames(root / "videos" / f"{plan.clip_id}.mp4", [a])[0] @ luma
        to_expr = np.abs(decoded - expr)[mask].mean()
        to_neutral = np.abs(decoded - neutral)[mask].mean()
        assert to_expr < to_neutral, (plan.clip_id, plan.label, to_expr, to_neutral)
        ratios.append(to_expr / to_neutral)
    assert len(ratios) > 20 and np.median(ratios) < 0.4


def test_decoded_frames_match_the_renderer(tiny, tiny_ann) -> None:
    cfg, root = tiny
    for plan in make_plan(cfg)[:5]:
        tl = clip_timeline(cfg, plan)
        ident = sample_identity(subject_rng(cfg.seed, plan.subject))
        ref = render_frames(ident, tl.aus, cfg.size, tl.poses, tl.illums).astype(float)
        decoded = _decode_all(root / "videos" / f"{plan.clip_id}.mp4").astype(float)
        assert decoded.shape == ref.shape
        assert np.abs(decoded - ref).mean() < 6.0  # noise + 4:2:0 + H.264 only
        assert np.abs((decoded - ref).mean(axis=(0, 1, 2))).max() < 2.5  # no colour shift


def test_generation_is_deterministic(tiny, tmp_path: Path) -> None:
    cfg, first = tiny
    second = generate(cfg, tmp_path / "b", progress=False, workers=2)  # a pool this time
    assert (first / "annotations.csv").read_text() == (second / "annotations.csv").read_text()
    assert load_au_frames(first).equals(load_au_frames(second))
    for clip in sorted(os.listdir(first / "videos")):
        np.testing.assert_array_equal(
            _decode_all(first / "videos" / clip), _decode_all(second / "videos" / clip)
        )
    meta = json.loads((second / "synth.json").read_text())
    assert meta["config"] == cfg.model_dump() and meta["version"]


def test_train_and_test_subjects_are_disjoint(tiny_ann) -> None:
    train = set(tiny_ann.filter(pl.col("split") == "train")["subject"])
    test = set(tiny_ann.filter(pl.col("split") == "test")["subject"])
    assert train and test and not train & test
    assert len(train) <= TINY["n_train_subjects"] and len(test) <= TINY["n_test_subjects"]


def test_five_fold_mode_mirrors_dfew(tmp_path: Path) -> None:
    cfg = SynthConfig(**{**TINY, "n_train": 24, "n_test": 11, "folds": 5, "seed": 4})
    generate(cfg, tmp_path, progress=False, workers=1)
    ann = pl.read_csv(tmp_path / "annotations.csv")
    n_clips = cfg.n_train + cfg.n_test
    assert ann.height == 5 * n_clips
    per_clip = ann.group_by("clip_id").agg(
        pl.len().alias("rows"), (pl.col("split") == "test").sum().alias("tests")
    )
    assert per_clip.height == n_clips
    assert (per_clip["rows"] == 5).all() and (per_clip["tests"] == 1).all()
    for fold in range(1, 6):
        sub = ann.filter(pl.col("fold") == fold)
        train = set(sub.filter(pl.col("split") == "train")["subject"])
        test = set(sub.filter(pl.col("split") == "test")["subject"])
        assert test and not train & test
    pooled = dict(ann.filter(pl.col("fold") == 1)["label"].value_counts().rows())
    assert pooled == class_counts("dfew", n_clips)
    index = load_synth(tmp_path)
    assert index.height == 5 * n_clips and sorted(set(index["fold"])) == [1, 2, 3, 4, 5]


def test_rerun_is_a_no_op_and_conflicts_are_refused(tiny, tmp_path: Path) -> None:
    cfg, root = tiny
    stamp = (root / "annotations.csv").stat().st_mtime_ns
    generate(cfg, root, progress=False, workers=1)
    assert (root / "annotations.csv").stat().st_mtime_ns == stamp
    with pytest.raises(EmobenchError, match="different synth dataset"):
        generate(cfg.model_copy(update={"seed": 2}), root, progress=False, workers=1)
    (tmp_path / "videos").mkdir()
    with pytest.raises(EmobenchError, match="not written by the synth generator"):
        generate(cfg, tmp_path, progress=False, workers=1)


def test_interrupted_generation_resumes(tmp_path: Path) -> None:
    cfg = SynthConfig(**{**TINY, "n_train": 8, "n_test": 7})
    generate(cfg, tmp_path, progress=False, workers=1)
    reference = (tmp_path / "annotations.csv").read_text()
    # simulate an interruption: tables gone, one video missing, marker present
    (tmp_path / "annotations.csv").unlink()
    (tmp_path / "au_frames.parquet").unlink()
    victim = sorted((tmp_path / "videos").iterdir())[3]
    victim.unlink()
    (tmp_path / ".synth-partial.json").write_text(
        json.dumps({"generator": "emobench.data.synth", **_manifest_fields(tmp_path)})
    )
    with pytest.raises(SynthDatasetError, match="did not finish"):
        load_synth(tmp_path)
    generate(cfg, tmp_path, progress=False, workers=1)
    assert (tmp_path / "annotations.csv").read_text() == reference
    assert victim.exists() and not (tmp_path / ".synth-partial.json").exists()


def _manifest_fields(root: Path) -> dict:
    meta = json.loads((root / "synth.json").read_text())
    return {"version": meta["version"], "config": meta["config"]}


def test_config_validation() -> None:
    q = SynthConfig.quickstart()
    assert (q.profile, q.n_train, q.n_test, q.size, q.fps, q.folds) == (
        "exp:12",
        1000,
        520,
        112,
        25,
        1,
    )
    assert q.test_split == "natural" and math.isclose(q.micro_share, 1 / 3)
    assert (q.min_seconds, q.max_seconds) == (2.0, 3.0)
    assert SynthConfig(size=48).size == 48  # every even size >= 32 reads back (PyAV)
    for bad in ({"size": 49}, {"size": 30}, {"min_seconds": 3, "max_seconds": 2}):
        with pytest.raises(ValueError):
            SynthConfig(**bad)
    with pytest.raises(ValueError, match="5-fold"):
        SynthConfig(folds=5, test_split="balanced")


# ----------------------------------------------------------------------------- loader, CLI


def test_loader_returns_a_valid_index(tiny, tiny_ann) -> None:
    _, root = tiny
    index = load_index("synth", root)
    assert validate_index(index).equals(index)
    assert index.height == tiny_ann.height
    assert (index["media"] == "video").all() and (index["fold"] == 1).all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in index["path"])
    expressive = index.filter(pl.col("label") != "neutral")
    assert expressive["onset"].null_count() == 0 and expressive["apex"].null_count() == 0
    neutral = index.filter(pl.col("label") == "neutral")
    assert neutral["onset"].null_count() == neutral.height
    assert index["subject"].null_count() == 0 and index["micro"].null_count() == 0
    for row in tiny_ann.iter_rows(named=True):  # decoders see exactly n_frames frames
        assert len(_decode_all(root / row["path"])) == row["n_frames"]


def test_loader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SynthDatasetError, match=r"annotations\.csv"):
        load_synth(tmp_path)
    with pytest.raises(SynthDatasetError, match="unknown option"):
        load_synth(tmp_path, frobnicate=True)


def _cli_app() -> typer.Typer:
    from emobench.data.synth.cli import generate_synth

    app = typer.Typer()
    app.command()(generate_synth)
    return app


def test_cli_generates_and_reports_one_line(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n-train", "7", "--n-test", "7", "--size", "32"]
    args += ["--min-seconds", "1", "--max-seconds", "1", "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(_cli_app(), args)
    assert result.exit_code == 0, result.output
    assert "14 clips" in result.output and str(out.resolve()) in result.output
    bad = CliRunner().invoke(_cli_app(), ["--out", str(tmp_path / "x"), "--profile", "zipf"])
    assert bad.exit_code == 1
    assert bad.output.startswith("error: bad class profile 'zipf'")
    assert len(bad.output.strip().splitlines()) == 1


def test_cli_module_imports_stay_light() -> None:
    from emobench.data.synth import cli

    tree = ast.parse(Path(cli.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            top.add(mod if mod.startswith("emobench.") else mod.split(".")[0])
    # emobench.errors is light (emobench --help imports it anyway)
    assert top <= {"__future__", "typer", "pathlib", "typing", "emobench.errors"}


def test_cli_defaults_are_the_quickstart() -> None:
    import inspect

    from emobench.data.synth.cli import generate_synth

    q = SynthConfig.quickstart()
    params = inspect.signature(generate_synth).parameters
    for name in ("profile", "n_train", "n_test", "size", "fps", "min_seconds", "max_seconds"):
        assert params[name].default.default == getattr(q, name), name
    assert params["n_train_subjects"].default.default == q.n_train_subjects
    assert params["n_test_subjects"].default.default == q.n_test_subjects
