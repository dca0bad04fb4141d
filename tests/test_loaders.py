"""Real-dataset loaders (dfew, mafw, ferv39k, listfile) on miniature trees built here in the
documented layouts (docs/datasets.md): label orders, folds, media options, problems, and a
full run + report on a miniature DFEW (frames) and MAFW (videos)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from emobench.data.loading import DatasetLoadError, count_images
from emobench.data.registry import get_dataset, load_dataset, load_index
from emobench.labels import DATASET_ORDERS

DFEW_ORDER = DATASET_ORDERS["dfew"]
MAFW_ORDER = DATASET_ORDERS["mafw"]


def write_frames(folder, n, level=128, ext="jpg", side=8):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        img = np.full((side, side, 3), (level + 3 * i) % 256, dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{i:05d}.{ext}")
    return folder


def write_video(path, n, level=128, side=32, fps=25):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(n):
            img = np.full((side, side, 3), (level + 5 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def problems_of(problems, kind):
    return {p["clip_id"]: p["detail"] for p in problems if p["kind"] == kind}


# --------------------------------------------------------------------------- DFEW

#: 14 clips, ids 1..14, official label id (i - 1) % 7 + 1; fold k tests clips i % 5 == k - 1.
DFEW_CLIPS = {i: (i - 1) % 7 + 1 for i in range(1, 15)}


def dfew_frames(i):
    return 6 + i % 3


@pytest.fixture(scope="module")
def dfew_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfew")
    for i, lab in DFEW_CLIPS.items():
        write_frames(root / "Clip/clip_224x224" / f"{i:05d}", dfew_frames(i), level=30 * lab)
        write_frames(root / "Clip/clip_224x224_16f" / f"{i:05d}", 16, level=30 * lab, ext="png")
        if i <= 4:  # only some videos: the others are missing media under media="videos"
            write_video(root / "Clip/original" / f"{i:05d}.mp4", 5 + i)
    for k in range(1, 6):
        test = [i for i in DFEW_CLIPS if i % 5 == k - 1]
        train = [i for i in DFEW_CLIPS if i % 5 != k - 1]
        rows = {
            "train": [(i, DFEW_CLIPS[i]) for i in train],
            "test": [(i, DFEW_CLIPS[i]) for i in test],
        }
        if k == 1:
            # no folder; label 9; clip 5 also in train; clip 10 listed twice in test
            rows["train"] += [(99, 2), (98, 9), (5, DFEW_CLIPS[5])]
            rows["test"] += [(10, DFEW_CLIPS[10])]
        for split, items in rows.items():
            folder = root / f"EmoLabel_DataSplit/{split}(single-labeled)"
            folder.mkdir(parents=True, exist_ok=True)
            body = "".join(f"{i},{lab}\n" for i, lab in items)
            (folder / f"set_{k}.csv").write_text("video_name,label\n" + body)
    return root


def test_dfew_labels_folds_and_problems(dfew_root):
    index, problems = load_dataset("dfew", dfew_root)
    labels = dict(zip(index["clip_id"], index["label"], strict=True))
    assert labels["00001"] == "happiness" and labels["00003"] == "neutral"
    assert labels["00002"] == "sadness" and labels["00004"] == "anger"
    assert labels["00007"] == "fear" and labels["00006"] == "disgust"
    assert all(lab == DFEW_ORDER[DFEW_CLIPS[int(c)] - 1] for c, lab in labels.items())
    assert sorted(index["fold"].unique()) == [1, 2, 3, 4, 5]
    for k in range(1, 6):
        test = index.filter((pl.col("fold") == k) & (pl.col("split") == "test"))
        want = {f"{i:05d}" for i in DFEW_CLIPS if i % 5 == k - 1}
        if k == 1:
            want.discard("00005")  # excluded from fold 1: also in its train split
        assert set(test["clip_id"]) == want
    # every clip is tested in exactly one fold (but 5, dropped from fold 1)
    tested = index.filter(pl.col("split") == "test")["clip_id"].to_list()
    assert len(tested) == len(set(tested)) == 13
    row = index.filter(pl.col("clip_id") == "00004").row(0, named=True)
    assert row["n_frames"] == dfew_frames(4) and row["fps"] == 25.0 and row["media"] == "frames"
    assert row["path"].endswith("Clip/clip_224x224/00004")
    assert index["scene"].null_count() == index.height
    assert "00099" in problems_of(problems, "missing-media")
    assert "set_1.csv:" in problems_of(problems, "unknown-label")["00098"]
    assert "fold 1" in problems_of(problems, "two-splits")["00005"]
    assert "listed twice" in problems_of(problems, "duplicate")["00010"]
    assert not index.filter((pl.col("clip_id") == "00005") & (pl.col("fold") == 1)).height
    assert not index.filter(pl.col("clip_id").is_in(["00098", "00099"])).height
    assert load_index("dfew", dfew_root).equals(index)


def test_dfew_media_options(dfew_root):
    f16, _ = load_dataset("dfew", dfew_root, media="frames16")
    assert set(f16["n_frames"]) == {16}
    assert f16["path"][0].split("/")[-2] == "clip_224x224_16f"
    vids, problems = load_dataset("dfew", dfew_root, media="videos")
    assert set(vids["clip_id"]) == {"00001", "00002", "00003", "00004"}
    assert set(vids["media"]) == {"video"}
    row = vids.filter(pl.col("clip_id") == "00003").row(0, named=True)
    assert row["n_frames"] == 8 and row["fps"] == pytest.approx(25.0)
    assert "00010" in problems_of(problems, "missing-media")
    with pytest.raises(DatasetLoadError, match="media must be one of"):
        load_dataset("dfew", dfew_root, media="faces")


def test_missing_split_files_and_empty(tmp_path):
    with pytest.raises(DatasetLoadError, match="no split files"):
        load_dataset("dfew", tmp_path)
    folder = tmp_path / "EmoLabel_DataSplit/train(single-labeled)"
    folder.mkdir(parents=True)
    (folder / "set_1.csv").write_text("video_name,label\n1,1\n")
    with pytest.raises(DatasetLoadError, match="test.*set_1.csv not found"):
        load_dataset("dfew", tmp_path)
    test = tmp_path / "EmoLabel_DataSplit/test(single-labeled)"
    test.mkdir(parents=True)
    (test / "set_1.csv").write_text("video_name,label\n2,1\n")
    with pytest.raises(DatasetLoadError, match="no usable clip.*not found"):
        load_dataset("dfew", tmp_path)


# --------------------------------------------------------------------------- MAFW

#: 11 classes × 1 clip + 3 more; clip name 000NN, label MAFW_ORDER[n % 11].
MAFW_CLIPS = {f"{n:05d}": MAFW_ORDER[n % 11] for n in range(1, 15)}


@pytest.fixture(scope="module")
def mafw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mafw")
    for j, (clip, lab) in enumerate(MAFW_CLIPS.items()):
        level = 20 * MAFW_ORDER.index(lab)
        write_video(root / "data/clips" / f"{clip}.mp4", 6 + j % 3, level=level)
        write_frames(root / "data/frames" / clip, 5 + j % 2, level=level)
        if j % 2 == 0:
            write_frames(root / "data/faces" / clip, 4, level=level)
    names = list(MAFW_CLIPS)
    for k in range(1, 6):
        folder = root / f"split/single/no_caption/set_{k}"
        folder.mkdir(parents=True)
        test = [c for j, c in enumerate(names) if j % 5 == k - 1]
        train = [c for c in names if c not in test]
        lines = {
            s: [f"{c}.mp4 {MAFW_CLIPS[c]}" for c in cs]
            for s, cs in (("train", train), ("test", test))
        }
        if k == 2:
            lines["train"] += [
                "00077.mp4 anger",
                "00078.mp4 boredom",
                f"{test[0]}.mp4 {MAFW_CLIPS[test[0]]}",
            ]
        for split, ls in lines.items():
            (folder / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def test_mafw_names_folds_media_and_problems(mafw_root):
    index, problems = load_dataset("mafw", mafw_root)
    labels = dict(zip(index["clip_id"], index["label"], strict=True))
    assert labels == {c: lab for c, lab in MAFW_CLIPS.items()}
    assert len(set(labels.values())) == 11 and set(labels.values()) == set(MAFW_ORDER)
    assert sorted(index["fold"].unique()) == [1, 2, 3, 4, 5]
    assert set(index["media"]) == {"video"} and index["path"][0].endswith(".mp4")
    row = index.filter(pl.col("clip_id") == "00002").row(0, named=True)
    assert row["n_frames"] == 7 and row["fps"] == pytest.approx(25.0)
    names = list(MAFW_CLIPS)
    assert problems_of(problems, "missing-media").keys() == {"00077"}
    assert "boredom" in problems_of(problems, "unknown-label")["00078"]
    assert "fold 2" in problems_of(problems, "two-splits")[names[1]]
    assert not index.filter((pl.col("clip_id") == names[1]) & (pl.col("fold") == 2)).height
    frames, _ = load_dataset("mafw", mafw_root, media="frames")
    assert set(frames["media"]) == {"frames"}
    assert frames.filter(pl.col("clip_id") == "00002")["n_frames"][0] == 6
    faces, problems = load_dataset("mafw", mafw_root, media="faces")
    assert set(faces["clip_id"]) == set(names[::2])
    assert names[1] in problems_of(problems, "missing-media")


# --------------------------------------------------------------------------- FERV39k


def test_ferv39k_scene_column_and_note(tmp_path):
    root = tmp_path
    clips = {
        "train": [
            ("Action", "Happy", "0001"),
            ("Action", "Sad", "0001"),
            ("Daily", "Fear", "0002"),
        ],
        "test": [
            ("Daily", "Angry", "0001"),
            ("Action", "Neutral", "0003"),
            ("Crime", "Surprise", "0001"),
        ],
    }
    for items in clips.values():
        for scene, emo, cid in items:
            write_frames(root / "2_ClipsforFaceCrop" / scene / emo / cid, 3)
    (root / "2_ClipsforFaceCrop/Action/Disgust/0009").mkdir(parents=True)  # empty folder
    setups = root / "4_setups/All_scenes"
    setups.mkdir(parents=True)
    for split, items in clips.items():
        lines = [f"{s}/{e}/{c} {e}" for s, e, c in items]
        if split == "train":
            lines += ["Action/Disgust/0009 Disgust", "Action/Sad/0002 Bored"]
        (setups / f"{split}_All.csv").write_text("\n".join(lines) + "\n")
    index, problems = load_dataset("ferv39k", root)
    assert index.height == 6 and set(index["fold"]) == {1}
    row = index.filter(pl.col("clip_id") == "Daily/Fear/0002").row(0, named=True)
    assert row["scene"] == "Daily" and row["label"] == "fear" and row["split"] == "train"
    assert row["n_frames"] == 3 and row["path"].endswith("2_ClipsforFaceCrop/Daily/Fear/0002")
    assert set(index["label"]) == set(DATASET_ORDERS["ferv39k"]) - {"disgust"}
    assert set(index["scene"]) == {"Action", "Daily", "Crime"}
    notes = [p for p in problems if p["kind"] == "note"]
    assert notes and notes[0]["clip_id"] is None and "no validation split" in notes[0]["detail"]
    assert "no images" in problems_of(problems, "missing-media")["Action/Disgust/0009"]
    assert "Action/Sad/0002" in problems_of(problems, "unknown-label")


# --------------------------------------------------------------------------- list files


def test_listfile_class_order_index_base_and_problems(tmp_path):
    root = tmp_path
    for name, n in [("a", 4), ("b", 5), ("c", 3), ("d", 6)]:
        write_frames(root / "frames" / name, n)
    (root / "lists").mkdir()
    (root / "lists/train.txt").write_text(
        "frames/a 4 1\nframes/b 7 2\nframes/gone 5 1\nframes/c 3 9\nframes/d 6 3\n"
    )
    (root / "lists/test.txt").write_text(f"{root}/frames/c 3 3\nframes/d 6 3\n")
    opts = {"train": "lists/train.txt", "test": str(root / "lists/test.txt")}
    index, problems = load_dataset(
        "listfile", root, classes=["Happy", "sad", "neutral"], index_base=1, **opts
    )
    labels = dict(zip(index["clip_id"], index["label"], strict=True))
    assert labels == {"frames/a": "happiness", "frames/b": "sadness", f"{root}/frames/c": "neutral"}
    assert index.filter(pl.col("clip_id") == "frames/b")["n_frames"][0] == 5
    assert "says 7 frames" in problems_of(problems, "frame-count")["frames/b"]
    assert "frames/gone" in problems_of(problems, "missing-media")
    assert "'9'" in problems_of(problems, "unknown-label")["frames/c"]
    assert "frames/d" in problems_of(problems, "two-splits")
    zero, _ = load_dataset("listfile", root, classes="happiness,sadness,neutral,anger", **opts)
    assert dict(zip(zero["clip_id"], zero["label"], strict=True))["frames/a"] == "sadness"
    with pytest.raises(DatasetLoadError, match="classes"):
        load_dataset("listfile", root, **opts)
    with pytest.raises(DatasetLoadError, match="unknown emotion label 'joyous'"):
        load_dataset("listfile", root, classes=["joyous"], **opts)
    with pytest.raises(DatasetLoadError, match="index_base"):
        load_dataset("listfile", root, classes=["happy"], index_base=2, **opts)


def test_count_images_and_loader_options(tmp_path):
    write_frames(tmp_path / "f", 3)
    (tmp_path / "f/notes.txt").write_text("x")
    assert count_images(tmp_path / "f") == 3 and count_images(tmp_path / "nope") is None
    assert get_dataset("dfew").description and get_dataset("listfile").description


# --------------------------------------------------------------------------- full run


def test_run_and_report_on_dfew_frames_and_mafw_videos(dfew_root, mafw_root, tmp_path):
    from emobench.cli import app

    tiny = "options = { frame_size = 32, encoder = { widths = [8, 16] } }\n"
    cfg = tmp_path / "real.toml"
    cfg.write_text(
        'name = "real"\ndevice = "cpu"\n'
        f'[[datasets]]\nname = "dfew"\nroot = "{dfew_root}"\nfolds = [1, 2]\n'
        f'[[datasets]]\nname = "mafw"\nroot = "{mafw_root}"\nfolds = [1, 2]\n'
        'options = { media = "clips" }\n'
        f'[[models]]\nadapter = "baseline:mean"\n{tiny}'
        '[[models]]\nadapter = "openclip:emobench-tiny@synth-web"\n'
        '[sweep]\nsampler = ["uniform:4"]\n'
        "[train]\nepochs = 1\npatience = 1\nbatch_size = 16\nencoder_frames = 2\n"
        "[metrics]\nn_resamples = 20\n"
    )
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    preds = pl.read_parquet(out / "predictions.parquet")
    assert set(preds["dataset"]) == {"dfew", "mafw"} and set(preds["fold"]) == {1, 2}
    dfew = preds.filter(pl.col("dataset") == "dfew")
    assert set(dfew["label"]) <= set(DFEW_ORDER)
    assert set(preds.filter(pl.col("dataset") == "mafw")["label"]) <= set(MAFW_ORDER)
    manifest = json.loads((out / "manifest.json").read_text())["datasets"]
    dfew_problems = {(p["clip_id"], p["kind"]) for p in manifest["dfew"]["problems"]}
    assert ("00099", "missing-media") in dfew_problems
    assert manifest["mafw"]["problem_counts"]["missing-media"] == 1
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report" / "summary.md").is_file()
