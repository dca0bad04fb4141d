"""CASME II and SAMM loaders on miniature trees: coding sheets, frame numbers → indices,
LOSO folds, class sets, problems, window sampling and one small run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xlsxwriter
from PIL import Image

from emobench.data.micro import MicroDatasetError
from emobench.data.registry import get_dataset, load_index
from emobench.video.frames import FolderFrameSource
from emobench.video.sampling import sample

TINY = {"frame_size": 32, "encoder": {"widths": [8, 16]}}
TRAIN = {"epochs": 2, "patience": 2, "batch_size": 16, "crt_epochs": 2, "encoder_frames": 2}

FIRST = 46  # CASME II frame numbers start mid-recording, e.g. img46.jpg ... img60.jpg
N = 15

# subject, filename, onset, apex, offset, emotion  (frame numbers, as in the sheet)
CASME_ROWS = [
    (1, "EP01_01", 48, "52", 58, "happiness"),
    (1, "EP02_01f", 47, "/", 55, "disgust"),  # apex "/" -> centre
    (1, "EP09_01", 50, "55", 70, "surprise"),  # offset past the last image -> clamped
    (2, "EP01_02", 46, "50", 60, "happiness"),
    (2, "EP03_02", 49, "51", 57, "repression"),
    (2, "EP04_01", 46, "47", 52, "fear"),
    (2, "EP08_01", 46, "47", 52, "bewildered"),  # unknown emotion
    (3, "EP05_01", 50, "53", 56, "surprise"),
    (3, "EP06_01", 46, "49", 59, "others"),
    (3, "EP07_01", 46, "49", 59, "sadness"),  # folder missing
    (3, "EP10_01", 47, "48", 53, "happiness"),
]
MISSING = {"EP07_01"}


def _jpeg(path: Path, value: int, mode: str = "RGB") -> None:
    colour = value if mode == "L" else (value, 255 - value, 128)
    Image.new(mode, (16, 16), colour).save(path, quality=90)


def _sheet(path: Path, header: list[str], rows: list[tuple], junk: bool = False) -> None:
    df = pl.DataFrame(
        {h: [str(r[i]) for r in rows] for i, h in enumerate(header)},
        schema=dict.fromkeys(header, pl.Utf8),
    )
    if not junk:
        df.write_excel(path, autofit=False)
        return
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("FACS")
    ws.write(0, 0, "SAMM micro-movements, FACS coded")
    ws.write(2, 0, "Coder: someone")
    ws.write(5, 1, "Notes: frame numbers as in the file names")
    df.write_excel(wb, worksheet=ws, position="A14", autofit=False)
    wb.close()


@pytest.fixture(scope="module")
def casme_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme2")
    for sub, name, *_ in CASME_ROWS:
        if name in MISSING:
            continue
        for kind, prefix in (("CASME2_RAW_selected", "img"), ("Cropped", "reg_img")):
            folder = root / kind / f"sub{sub:02d}" / name
            folder.mkdir(parents=True)
            for n in range(FIRST, FIRST + N):
                _jpeg(folder / f"{prefix}{n}.jpg", 10 * (n - FIRST))
    header = [
        "Subject",
        "Filename",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Action Units",
        "Estimated Emotion",
    ]
    rows = [(s, f, on, ap, off, "4+7", emo) for s, f, on, ap, off, emo in CASME_ROWS]
    _sheet(root / "CASME2-coding-20140508.xlsx", header, rows)
    return root


SAMM_ROWS = [
    # subject, filename, onset, apex, offset, emotion
    (6, "006_1_2", 5562, 5565, 5570, "Anger"),
    (6, "006_1_3", 5562, 5563, 5566, "Happiness"),
    (7, "007_2_1", 5562, 5568, 5571, "Contempt"),
    (7, "007_2_2", 5563, 5566, 5569, "Other"),
    (8, "008_3_1", 5562, 5564, 5570, "Disgust"),
    (8, "008_3_2", 5562, 5564, 5570, "Surprise"),
]


@pytest.fixture(scope="module")
def samm_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("samm")
    for sub, name, *_ in SAMM_ROWS:
        folder = root / "SAMM" / f"{sub:03d}" / name
        folder.mkdir(parents=True)
        for n in range(5560, 5573):
            _jpeg(folder / f"{sub:03d}_{n:05d}.jpg", n - 5560, mode="L")
    header = [
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
    rows = [
        (s, f, 1, on, ap, off, off - on, "Micro - 1/2", "4", emo)
        for s, f, on, ap, off, emo in SAMM_ROWS
    ]
    _sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", header, rows, junk=True)
    return root


def _load(name: str, root: Path, **options):
    out = get_dataset(name).loader(root, **options)
    assert isinstance(out, tuple)
    return out


def _clips(index: pl.DataFrame) -> pl.DataFrame:
    return index.filter(pl.col("split") == "test").sort("clip_id")


def test_casme2_frame_numbers_become_indices(casme_root):
    index, problems = _load("casme2", casme_root)
    clips = _clips(index)
    row = clips.filter(pl.col("clip_id") == "sub01_EP01_01").row(0, named=True)
    assert (row["onset"], row["apex"], row["offset"]) == (2, 6, 12)
    assert row["n_frames"] == N and row["fps"] == 200.0 and row["micro"] is True
    assert row["media"] == "frames" and row["subject"] == "sub01"
    assert row["path"] == str((casme_root / "CASME2_RAW_selected/sub01/EP01_01").resolve())
    # the frame source reads the same order: index -> the number in the file name
    numbers = FolderFrameSource().frame_numbers(row["path"])
    assert [numbers[row[k]] for k in ("onset", "apex", "offset")] == [48, 52, 58]
    # apex "/" -> centre of the window (indices 1..9 -> 5)
    fb = clips.filter(pl.col("clip_id") == "sub01_EP02_01f").row(0, named=True)
    assert (fb["onset"], fb["apex"], fb["offset"]) == (1, 5, 9)
    # offset frame 70 past the last image (60) -> clamped to the last image
    cl = clips.filter(pl.col("clip_id") == "sub01_EP09_01").row(0, named=True)
    assert (cl["onset"], cl["apex"], cl["offset"]) == (4, 9, 14)
    by_kind = {(p["clip_id"], p["kind"]) for p in problems if p["kind"] != "note"}
    assert by_kind == {
        ("sub01_EP02_01f", "apex-fallback"),
        ("sub01_EP09_01", "window"),
        ("sub02_EP08_01", "unknown-label"),
        ("sub03_EP07_01", "missing-media"),
    }
    assert all(p["detail"] for p in problems)
    assert set(index["clip_id"]).isdisjoint({"sub02_EP08_01", "sub03_EP07_01"})
    # plain load_index works on a loader returning (index, problems)
    assert load_index("casme2", casme_root).equals(index)


def test_casme2_loso_folds(casme_root):
    index, _ = _load("casme2", casme_root)
    assert sorted(index["fold"].unique()) == [1, 2, 3]
    test = index.filter(pl.col("split") == "test")
    # each subject is the test split of exactly one fold, in sorted subject order
    per_subject = test.group_by("subject").agg(pl.col("fold").unique()).sort("subject")
    assert per_subject["fold"].to_list() == [[1], [2], [3]]
    assert per_subject["subject"].to_list() == ["sub01", "sub02", "sub03"]
    n_clips = index["clip_id"].n_unique()
    for fold in (1, 2, 3):
        f = index.filter(pl.col("fold") == fold)
        assert f.height == n_clips  # every clip once per fold
        assert f.filter(pl.col("split") == "test")["subject"].unique().to_list() == [f"sub0{fold}"]
        assert f"sub0{fold}" not in f.filter(pl.col("split") == "train")["subject"].to_list()
    assert set(index["split"]) == {"train", "test"}


def test_casme2_class_sets(casme_root):
    labels = dict(_clips(_load("casme2", casme_root)[0]).select("clip_id", "label").iter_rows())
    assert labels["sub02_EP04_01"] == "fear" and labels["sub02_EP03_02"] == "repression"
    five = dict(
        _clips(_load("casme2", casme_root, classes="5-class")[0])
        .select("clip_id", "label")
        .iter_rows()
    )
    assert "sub02_EP04_01" not in five  # fear dropped
    assert set(five.values()) <= {"happiness", "disgust", "repression", "surprise", "others"}
    three = dict(
        _clips(_load("casme2", casme_root, classes="3-class")[0])
        .select("clip_id", "label")
        .iter_rows()
    )
    assert three == {
        "sub01_EP01_01": "positive",
        "sub01_EP02_01f": "negative",
        "sub01_EP09_01": "surprise",
        "sub02_EP01_02": "positive",
        "sub02_EP03_02": "negative",  # repression -> negative in CASME II
        # fear (sub02_EP04_01) is not in CASME II's composite set
        "sub03_EP05_01": "surprise",
        "sub03_EP10_01": "positive",
    }  # others dropped


def test_casme2_cropped_images_and_bad_options(casme_root):
    index, _ = _load("casme2", casme_root, images="cropped")
    row = index.filter(pl.col("clip_id") == "sub01_EP01_01").row(0, named=True)
    assert Path(row["path"]).parts[-3:] == ("Cropped", "sub01", "EP01_01")
    assert (row["onset"], row["offset"]) == (2, 12)
    with pytest.raises(MicroDatasetError, match="images"):
        _load("casme2", casme_root, images="aligned")
    with pytest.raises(MicroDatasetError, match="classes"):
        _load("casme2", casme_root, classes="7-class")
    with pytest.raises(MicroDatasetError, match="protocol"):
        _load("casme2", casme_root, protocol="kfold")
    with pytest.raises(MicroDatasetError, match="not found"):
        _load("casme2", casme_root, annotations="nope.xlsx")


def test_samm_header_row_subjects_and_classes(samm_root):
    index, problems = _load("samm", samm_root)
    assert problems == []
    clips = _clips(index)
    assert clips["subject"].unique().sort().to_list() == ["006", "007", "008"]
    row = clips.filter(pl.col("clip_id") == "006_1_2").row(0, named=True)
    assert (row["onset"], row["apex"], row["offset"]) == (2, 5, 10)
    assert row["n_frames"] == 13 and row["path"].endswith("SAMM/006/006_1_2")
    labels = dict(clips.select("clip_id", "label").iter_rows())
    assert labels == {
        "006_1_2": "anger",
        "006_1_3": "happiness",
        "007_2_1": "contempt",
        "007_2_2": "others",
        "008_3_1": "disgust",
        "008_3_2": "surprise",
    }
    # folds: one per subject
    test = index.filter(pl.col("split") == "test")
    assert dict(test.group_by("subject").agg(pl.col("fold").first()).iter_rows()) == {
        "006": 1,
        "007": 2,
        "008": 3,
    }
    five = set(_clips(_load("samm", samm_root, classes="5-class")[0])["label"])
    assert five == {"anger", "happiness", "contempt", "others", "surprise"}  # disgust dropped
    three = dict(
        _clips(_load("samm", samm_root, classes="3-class")[0])
        .select("clip_id", "label")
        .iter_rows()
    )
    assert three == {
        "006_1_2": "negative",
        "006_1_3": "positive",
        "007_2_1": "negative",
        "008_3_1": "negative",
        "008_3_2": "surprise",
    }
    # greyscale images come out as RGB
    frames = FolderFrameSource().read(row["path"], [row["apex"]])
    assert frames.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("name", ["casme2", "samm"])
def test_window_sampler_stays_in_window(name, casme_root, samm_root):
    root = casme_root if name == "casme2" else samm_root
    for row in _clips(_load(name, root)[0]).iter_rows(named=True):
        idx = sample(row["n_frames"], row["fps"], "window:8", 0, (row["onset"], row["offset"]))
        assert idx.min() >= row["onset"] and idx.max() <= row["offset"]
        assert len(idx) == 8


def test_samm_header_missing_is_one_error(tmp_path):
    (tmp_path / "SAMM").mkdir()
    _sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", ["Subj", "File"], [(6, "006_1_2")])
    with pytest.raises(MicroDatasetError, match="Subject"):
        _load("samm", tmp_path)


def test_small_run_with_window_sampler(casme_root, tmp_path):
    from emobench.config import validate_config
    from emobench.results import RunFolder
    from emobench.runner.execute import Engine

    cfg = validate_config(
        {
            "name": "micro",
            "datasets": [
                {
                    "name": "casme2",
                    "root": str(casme_root),
                    "folds": [1, 2],
                    "options": {"classes": "3-class"},
                }
            ],
            "models": [{"adapter": "baseline:mean", "options": TINY}],
            "sweep": {"sampler": ["window:4"], "order": ["original"]},
            "train": TRAIN,
            "device": "cpu",
            "metrics": {"n_resamples": 20},
        }
    )
    out = tmp_path / "run"
    engine = Engine(cfg, out, progress=False)
    engine.load_datasets()
    engine.execute()
    preds = RunFolder(out).read_predictions()
    assert sorted(preds["fold"].unique()) == [1, 2]
    assert set(preds["clip_id"]) == {
        "sub01_EP01_01",
        "sub01_EP02_01f",
        "sub01_EP09_01",
        "sub02_EP01_02",
        "sub02_EP03_02",
    }  # sub02_EP04_01 (fear) is not in CASME II's composite set
    assert np.all(preds["n_frames"].to_numpy() == 4)
    entry = RunFolder(out).read_manifest()["datasets"]["casme2"]
    assert entry["problem_counts"]["apex-fallback"] == 1
