"""Issue 22 §6, the small things a user hits first: a dry run before any data exists, the
media / image folder a copy actually has (MAFW, CASME II), and the MEGC2019 composite
3-class sets defined per dataset (CASME II 145 = 88/32/25, SAMM 133 = 92/26/15)."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import DatasetConfig
from emobench.data.loading import DatasetLoadError
from emobench.data.micro import MicroDatasetError
from emobench.data.registry import load_dataset
from emobench.labels import DATASET_ORDERS
from emobench.runner.datasets import prepare_dataset

runner = CliRunner()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 150)).save(buf, format="JPEG")
    return buf.getvalue()


JPEG = _jpeg_bytes()


def _frames(folder: Path, numbers, prefix: str = "") -> None:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"{prefix}{n}.jpg").write_bytes(JPEG)


# --------------------------------------------------------------------------- dry run, no data


def test_dry_run_without_a_dataset_tree_shows_grid_and_calls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the preset's data/DFEW does not exist here
    res = runner.invoke(
        app,
        ["run", "paper-fps-dfew", "--dry-run", "--out", str(tmp_path / "out")],
        env={"COLUMNS": "300"},
    )
    out = res.output
    assert res.exit_code == 0, out
    assert "no split files" not in out
    # the grid: every model at every fps, with its model calls per clip
    for fps in (1, 5, 10, 15, 20, 25):
        assert f"dfew__qwen2.5-vl-7b__instance-balanced__fps-{fps}__original" in out
    line = re.search(
        r"model qwen2\.5-vl-7b: (\d+) cells, model calls per test clip and cell: 1", out
    )
    assert line and line.group(1) == "6", out
    assert "unknown" in out and "clip counts" in " ".join(out.split())
    assert "datasets.0.root" in out and "nothing was run" in out
    assert not (tmp_path / "out").exists()


def test_dry_run_without_data_counts_msce_describer_prompts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "paper-msce-dfew", "--dry-run"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "model qwen2.5-vl-7b: 2 cells, model calls per test clip and cell: 1 or 1 + " in flat


def test_dry_run_still_stops_on_a_broken_tree(tmp_path):
    root = tmp_path / "DFEW"
    (root / "something").mkdir(parents=True)  # exists, not empty, no split files
    res = runner.invoke(
        app, ["run", "paper-fps-dfew", "--dry-run", "--set", f"datasets.0.root={root}"]
    )
    assert res.exit_code == 1 and "no split files" in res.output


# --------------------------------------------------------------------------- MAFW media

MAFW = DATASET_ORDERS["mafw"]
CLIPS = {f"{n:05d}": MAFW[n % 11] for n in range(1, 12)}


def _mafw(root: Path, media: tuple[str, ...]) -> Path:
    for clip in CLIPS:
        for m in media:
            _frames(root / "data" / m / clip, range(1, 5))
    names = list(CLIPS)
    for k in range(1, 6):
        folder = root / f"split/single/no_caption/set_{k}"
        folder.mkdir(parents=True)
        test = [c for j, c in enumerate(names) if j % 5 == k - 1]
        for split, cs in (("test", test), ("train", [c for c in names if c not in test])):
            (folder / f"{split}.txt").write_text("".join(f"{c}.mp4 {CLIPS[c]}\n" for c in cs))
    return root


def test_mafw_frame_folders_only_load_without_an_option(tmp_path):
    index, problems = load_dataset("mafw", _mafw(tmp_path, ("frames",)))
    assert set(index["media"]) == {"frames"} and index["clip_id"].n_unique() == 11
    assert all("/data/frames/" in p for p in index["path"])
    assert not [p for p in problems if p["kind"] == "note"]


def test_mafw_several_media_folders_name_the_option(tmp_path):
    root = _mafw(tmp_path / "MAFW", ("frames", "faces"))
    index, problems = load_dataset("mafw", root)
    assert all("/data/frames/" in p for p in index["path"])
    (note,) = [p["detail"] for p in problems if p["kind"] == "note"]
    assert "media=faces" in note and "data/faces" in note and "data/frames" in note
    # a run shows the choice as a warning
    prepared = prepare_dataset(DatasetConfig(name="mafw", root=root), None)
    assert prepared.warning and "media=faces" in prepared.warning
    faces, _ = load_dataset("mafw", root, media="faces")
    assert all("/data/faces/" in p for p in faces["path"])


def test_mafw_named_media_that_is_absent_names_the_one_present(tmp_path):
    root = _mafw(tmp_path, ("frames",))
    with pytest.raises(DatasetLoadError, match=r"media=frames"):
        load_dataset("mafw", root, media="clips")
    with pytest.raises(DatasetLoadError, match=r"auto, clips, frames, faces"):
        load_dataset("mafw", root, media="crops")


# --------------------------------------------------------------------------- micro-expressions

CASME_HEADER = [
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
]
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Estimated Emotion",
]

#: Per-emotion clip counts: the composite sets must come out at the published sizes.
#: CASME II: disgust + repression = the published 88 negatives; fear and sadness clips are
#: not in CASME II's composite set; others are dropped.
CASME_COUNTS = {
    "happiness": 32,
    "surprise": 25,
    "disgust": 61,
    "repression": 27,
    "fear": 2,
    "sadness": 7,
    "others": 99,
}
#: SAMM: anger 57 + contempt 12 + disgust 9 + fear 8 + sadness 6 = 92 negatives.
SAMM_COUNTS = {
    "happiness": 26,
    "surprise": 15,
    "anger": 57,
    "contempt": 12,
    "disgust": 9,
    "fear": 8,
    "sadness": 6,
    "Other": 26,
}


def _sheet(path: Path, header: list[str], rows: list[list[str]]) -> None:
    pl.DataFrame(
        {h: [r[i] for r in rows] for i, h in enumerate(header)},
        schema=dict.fromkeys(header, pl.Utf8),
    ).write_excel(path, autofit=False)


def _casme(root: Path, image_dirs: tuple[tuple[str, str], ...], counts=None) -> Path:  # type: ignore[no-untyped-def]
    rows = []
    for i, emotion in enumerate(e for e, n in (counts or CASME_COUNTS).items() for _ in range(n)):
        sub, name = i % 26 + 1, f"EP{i:03d}_01"
        rows.append([str(sub), name, "10", "12", "14", "4", emotion])
        for folder, prefix in image_dirs:
            _frames(root / folder / f"sub{sub:02d}" / name, range(10, 15), prefix)
    _sheet(root / "CASME2-coding-20140508.xlsx", CASME_HEADER, rows)
    return root


def _samm(root: Path) -> Path:
    rows = []
    for i, emotion in enumerate(e for e, n in SAMM_COUNTS.items() for _ in range(n)):
        subject = f"{i % 28 + 6:03d}"
        name = f"{subject}_{i}_1"
        rows.append([subject, name, "1", "100", "102", "104", "5", "Micro - 1/2", "4", emotion])
        folder = root / "SAMM" / subject / name
        folder.mkdir(parents=True)
        for n in range(100, 105):
            (folder / f"{subject}_{n:05d}.jpg").write_bytes(JPEG)
    _sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, rows)
    return root


def _test_counts(index: pl.DataFrame) -> Counter:
    clips = index.filter(pl.col("split") == "test")
    return Counter(clips["label"].to_list())


def test_casme2_composite_is_its_own_145(tmp_path):
    root = _casme(tmp_path, (("CASME2_RAW_selected", "img"),))
    index, _ = load_dataset("casme2", root, classes="3-class")
    counts = _test_counts(index)
    assert counts == {"negative": 88, "positive": 32, "surprise": 25}
    assert sum(counts.values()) == 145
    assert index["clip_id"].n_unique() == 145  # fear and sadness clips are not in the set


def test_samm_composite_is_its_own_133(tmp_path):
    index, _ = load_dataset("samm", _samm(tmp_path), classes="3-class")
    counts = _test_counts(index)
    assert counts == {"negative": 92, "positive": 26, "surprise": 15}
    assert sum(counts.values()) == 133


SMALL = {"happiness": 2, "disgust": 2, "surprise": 1}


@pytest.mark.parametrize(
    ("folder", "prefix"),
    [("CASME2-RAW", "img"), ("CASME2_RAW", "img"), ("Cropped", "reg_img"), ("Cropped", "img")],
)
def test_casme2_finds_the_image_folder_a_copy_has(tmp_path, folder, prefix):
    root = _casme(tmp_path, ((folder, prefix),), SMALL)
    index, problems = load_dataset("casme2", root)
    assert index["clip_id"].n_unique() == 5
    assert all(f"/{folder}/sub" in p for p in index["path"])
    assert not [p for p in problems if p["kind"] in ("note", "missing-media")]


def test_casme2_raw_and_cropped_name_the_option(tmp_path):
    root = _casme(tmp_path, (("CASME2-RAW", "img"), ("Cropped", "reg_img")), SMALL)
    index, problems = load_dataset("casme2", root)
    assert all("/CASME2-RAW/sub" in p for p in index["path"])
    (note,) = [p["detail"] for p in problems if p["kind"] == "note"]
    assert "images=cropped" in note
    cropped, _ = load_dataset("casme2", root, images="cropped")
    assert all("/Cropped/sub" in p for p in cropped["path"])


def test_casme2_without_images_names_every_folder_looked_for(tmp_path):
    root = _casme(tmp_path, (), SMALL)
    with pytest.raises(MicroDatasetError) as err:
        load_dataset("casme2", root)
    for name in ("CASME2_RAW_selected/", "CASME2-RAW/", "Cropped/"):
        assert name in str(err.value)
