"""The shipped presets: each validates, and the paper-* presets expand with --dry-run on
miniature DFEW / MAFW trees (the loaders' documented layouts, docs/datasets.md) without any
model weights: the whole grid, a per-model summary in model calls and a "missing:" line
per model whose weights are absent, exit code 0. A real run stops at the first one."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import list_presets, load_config
from emobench.labels import DATASET_ORDERS

runner = CliRunner()
PAPER = sorted(p for p in list_presets() if p.startswith("paper-"))
EXPERIMENTS = ("shuffle", "fps", "msce", "balanced", "lexical")
N_PER_CLASS = 5  # one test clip per class and fold
N_FRAMES = 20
STUDY_MODELS = {
    "hf:Qwen/Qwen2.5-VL-7B-Instruct",
    "hf:Qwen/Qwen3-VL-8B-Instruct",
    "hf:OpenGVLab/InternVL3-8B-hf",
    "hf:llava-hf/LLaVA-NeXT-Video-7B-hf",
}


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 90, 60)).save(buf, format="JPEG")
    return buf.getvalue()


def make_dfew(root: Path) -> Path:
    """7 classes x 5 clips of 20 frames; clip i of a class is a test clip of fold i + 1."""
    jpg = _jpeg()
    rows: dict[tuple[str, int], list[str]] = {}
    vid = 0
    for label_id in range(1, len(DATASET_ORDERS["dfew"]) + 1):
        for i in range(N_PER_CLASS):
            vid += 1
            frames = root / "Clip" / "clip_224x224" / f"{vid:05d}"
            frames.mkdir(parents=True)
            for k in range(1, N_FRAMES + 1):
                (frames / f"{k:05d}.jpg").write_bytes(jpg)
            for fold in range(1, 6):
                split = "test" if fold == i + 1 else "train"
                rows.setdefault((split, fold), []).append(f"{vid},{label_id}")
    for (split, fold), lines in rows.items():
        path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("video_name,label\n" + "\n".join(lines) + "\n")
    return root


def _mp4(path: Path, n: int = N_FRAMES) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 100, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def make_mafw(root: Path) -> Path:
    """11 classes x 5 clips (mp4, 20 frames); clip i of a class is a test clip of fold i + 1."""
    clips = root / "data" / "clips"
    clips.mkdir(parents=True)
    _mp4(clips / "00001.mp4")
    rows: dict[tuple[str, int], list[str]] = {}
    vid = 0
    for label in DATASET_ORDERS["mafw"]:
        for i in range(N_PER_CLASS):
            vid += 1
            if vid > 1:
                shutil.copyfile(clips / "00001.mp4", clips / f"{vid:05d}.mp4")
            for fold in range(1, 6):
                split = "test" if fold == i + 1 else "train"
                rows.setdefault((split, fold), []).append(f"{vid:05d}.mp4 {label}")
    for (split, fold), lines in rows.items():
        path = root / "split" / "single" / "no_caption" / f"set_{fold}" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("paper-data")
    return {"dfew": make_dfew(base / "DFEW"), "mafw": make_mafw(base / "MAFW")}


def test_every_experiment_has_a_dfew_and_a_mafw_preset() -> None:
    assert sorted(f"paper-{e}-{d}" for e in EXPERIMENTS for d in ("dfew", "mafw")) == PAPER


@pytest.mark.parametrize("preset", sorted(list_presets()))
def test_every_preset_validates(preset: str, trees: dict[str, Path]) -> None:
    sets = []
    if preset.startswith("paper-"):
        ds = preset.rsplit("-", 1)[1]
        sets = [f"datasets.0.root={trees[ds]}"]
    cfg = load_config(preset, sets)
    assert cfg.name == preset and cfg.description
    if preset.startswith("paper-"):
        assert cfg.datasets[0].name == preset.rsplit("-", 1)[1]
        assert cfg.datasets[0].folds == "all"
        assert {m.adapter for m in cfg.models} >= STUDY_MODELS


def _dry_run(preset: str, root: Path, out: Path, *sets: str):  # type: ignore[no-untyped-def]
    args = ["run", preset, "--set", f"datasets.0.root={root}", "--out", str(out), "--dry-run"]
    for s in sets:
        args += ["--set", s]
    return runner.invoke(app, args, terminal_width=250)


@pytest.mark.parametrize("preset", PAPER)
def test_paper_preset_dry_run_without_weights(
    preset: str, trees: dict[str, Path], tmp_path: Path
) -> None:
    ds = preset.rsplit("-", 1)[1]
    res = _dry_run(preset, trees[ds], tmp_path / "out")
    assert res.exit_code == 0, res.output
    cfg = load_config(preset, [f"datasets.0.root={trees[ds]}"])
    names = [m.display_name for m in cfg.models]
    # a missing line for every model that needs weights absent here; the baselines need none
    for m in cfg.models:
        has_line = f"missing: {m.display_name}: {m.adapter}:" in res.output
        assert has_line == (not m.adapter.startswith("baseline:")), (m.adapter, res.output)
    # the whole grid: every (cell, fold) over the 5 folds
    m = re.search(r"(\d+) of (\d+) already done", res.output)
    assert m and m.group(1) == "0"
    n_cells = int(m.group(2)) // 5
    summary = dict(re.findall(r"model (\S+): (\d+) cells, \d+ \(cell, fold\) parts", res.output))
    assert list(summary) == names and sum(map(int, summary.values())) == n_cells
    assert (
        "nothing was run" in " ".join(res.output.split())
        and not (tmp_path / "out" / "parts").exists()
    )


def test_msce_dry_run_counts_describer_calls(trees: dict[str, Path], tmp_path: Path) -> None:
    res = _dry_run("paper-msce-dfew", trees["dfew"], tmp_path / "out")
    assert res.exit_code == 0, res.output
    # 7 test clips per fold x 5 folds, 2 cells (none, msce); msce: 8 keyframes -> 7 gaps
    n_clips = 7 * 5
    line = (
        f"model qwen2.5-vl-7b: 2 cells, 10 (cell, fold) parts, {2 * n_clips} test clips, "
        f"{2 * n_clips + 7 * n_clips} model calls ({7 * n_clips} MSCE describer prompts)"
    )
    assert line in res.output, res.output


def test_models_and_folds_are_overridable(trees: dict[str, Path], tmp_path: Path) -> None:
    res = _dry_run(
        "paper-fps-mafw",
        trees["mafw"],
        tmp_path / "out",
        'models=[{adapter="baseline:mean", options={frame_size=32}}]',
        "datasets.0.folds=[1, 2]",
    )
    assert res.exit_code == 0, res.output
    assert "missing:" not in res.output
    # 6 fps cells x 2 folds, 11 test clips per fold
    assert "model baseline:mean: 6 cells, 12 (cell, fold) parts, 132 test clips" in res.output


def test_real_run_stops_at_the_first_missing_model(trees: dict[str, Path], tmp_path: Path) -> None:
    args = ["run", "paper-shuffle-dfew", "--set", f"datasets.0.root={trees['dfew']}"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "out")], terminal_width=250)
    assert res.exit_code != 0
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Qwen/Qwen2.5-VL-7B-Instruct" in errors[0], res.output


@pytest.mark.parametrize("ds", ["dfew", "mafw"])
def test_paper_balanced_compares_lora_loglik_with_zero_shot_loglik(ds: str) -> None:
    """Issue 22 §3: LoRA scored by loglik has a zero-shot reference scored by loglik."""
    from importlib import resources

    import tomllib

    text = resources.files("emobench.presets").joinpath(f"paper-balanced-{ds}.toml").read_text()
    raw = tomllib.loads(text)
    models = raw["models"]
    lora = [m for m in models if (m.get("options") or {}).get("finetune") == "lora"]
    assert lora and all(m["options"]["scoring"] == "loglik" for m in lora)
    for m in lora:
        zero = [
            z
            for z in models
            if z["adapter"] == m["adapter"]
            and "finetune" not in (z.get("options") or {})
            and (z.get("options") or {}).get("scoring") == "loglik"
        ]
        assert len(zero) == 1 and zero[0]["rebalancing"] == ["instance-balanced"]
        assert zero[0]["name"] in raw["description"]


@pytest.mark.parametrize("ds", ["dfew", "mafw"])
def test_paper_lexical_names_both_definitions_and_the_source(ds: str) -> None:
    from importlib import resources

    import tomllib

    from emobench.report.priors import get_prior

    raw = resources.files("emobench.presets").joinpath(f"paper-lexical-{ds}.toml").read_text()
    text = tomllib.loads(raw)["description"]
    assert "wordfreq, not Google Books" in text
    named = re.findall(r"--prior ([a-z_]+)", text)
    assert named == ["web_word_freq_en_zh", "web_word_freq_en_zh_synonyms"]
    labels = [get_prior(n).axis_label for n in named]
    assert "option word" in labels[0] and "synonym list" in labels[1]


@pytest.mark.parametrize("ds", ["dfew", "mafw"])
def test_paper_lexical_reports_both_definitions_by_default(ds: str, tmp_path) -> None:
    """The preset's ``[report] priors`` reach ``emobench report`` when no --prior is given."""
    import json

    from emobench.config import ConfigError, validate_config
    from emobench.errors import EmobenchError
    from emobench.report.cli import _config_priors

    cfg = load_config(f"paper-lexical-{ds}")
    priors = cfg.report.priors
    assert priors[:2] == ["web_word_freq_en_zh", "web_word_freq_en_zh_synonyms"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
    assert _config_priors(run) == priors
    (run / "manifest.json").write_text(json.dumps({"config": {"report": {"priors": None}}}))
    assert _config_priors(run) is None
    data = cfg.model_dump(mode="json")
    data["report"] = {"priors": []}
    with pytest.raises(ConfigError, match="at least one class prior"):
        validate_config(data)
    from emobench.report.options import ReportOptions

    with pytest.raises(EmobenchError, match="google_books"):  # named by the report, one line
        ReportOptions(prior=["web_word_freq", "google_books"])
