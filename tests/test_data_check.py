"""`emobench data check`: counts equal a polars group-by, exit codes, the --json shape."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import make_synth
from typer.testing import CliRunner

from emobench.cli import app
from emobench.data import registry
from emobench.data.check import DataCheckError, check_index, parse_options
from emobench.data.index import make_index
from emobench.metrics import class_groups

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def synth5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check") / "synth5"
    return make_synth(root, folds=5, n_train=40, n_test=20, n_train_subjects=4, seed=3)


def _expected(index: pl.DataFrame) -> dict[str, dict[str, dict[str, object]]]:
    """The JSON ``folds`` part computed independently with a polars group-by."""
    g = index.group_by(["fold", "split", "label"]).len()
    out: dict[str, dict[str, dict[str, object]]] = {}
    for (fold, split), part in g.group_by(["fold", "split"]):
        counts = dict(zip(part["label"].to_list(), part["len"].to_list(), strict=True))
        out.setdefault(str(fold), {})[split] = {"n_clips": sum(counts.values()), "counts": counts}
    return out


def test_json_equals_a_polars_group_by(synth5: Path) -> None:
    res = runner.invoke(app, ["data", "check", "synth", str(synth5), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert list(doc) == ["dataset", "root", "folds", "problems"]
    assert doc["dataset"] == "synth" and doc["root"] == str(synth5)
    assert doc["problems"] == []
    index = registry.load_index("synth", synth5)
    assert doc["folds"] == _expected(index)
    assert list(doc["folds"]) == ["1", "2", "3", "4", "5"]
    for splits in doc["folds"].values():
        assert set(splits) == {"train", "test"}
        for split in splits.values():
            assert set(split) == {"n_clips", "counts"}
        # head → tail: the fold's training counts, largest first
        train = splits["train"]["counts"]
        assert list(train.values()) == sorted(train.values(), reverse=True)
        test = splits["test"]["counts"]
        order = list(train) + sorted(set(test) - set(train))  # absent from train: last
        assert list(test) == [k for k in order if k in test]
    one = runner.invoke(app, ["data", "check", "synth", str(synth5), "--json", "--fold", "3"])
    assert one.exit_code == 0
    assert json.loads(one.stdout)["folds"] == {"3": doc["folds"]["3"]}


def test_single_split_set_is_fold_1_and_table_numbers(tmp_path: Path) -> None:
    root = make_synth(tmp_path / "s", n_train=30, n_test=14, n_train_subjects=3, seed=4)
    index = registry.load_index("synth", root)
    res = runner.invoke(app, ["data", "check", "synth", str(root), "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["folds"] == _expected(index) and list(doc["folds"]) == ["1"]
    res = runner.invoke(app, ["data", "check", "synth", str(root)], env=WIDE)
    assert res.exit_code == 0, res.output
    train = index.filter(pl.col("split") == "train").group_by("label").len()
    counts = dict(zip(train["label"], train["len"], strict=True))
    groups, _ = class_groups(counts)
    lines = res.output.splitlines()
    for label, n in counts.items():
        row = next(line for line in lines if line.strip("│ ").startswith(label + " "))
        cells = [c.strip() for c in row.strip("│").split("│")]
        test_n = index.filter((pl.col("split") == "test") & (pl.col("label") == label)).height
        assert cells == [label, groups[label], str(n), str(test_n)]
    ratio = max(counts.values()) / min(counts.values())
    assert f"{ratio:.1f}" in res.output
    frames = index.filter(pl.col("split") == "train")["n_frames"]
    assert f"{frames.min()} / {frames.median():g} / {frames.max()}" in res.output
    assert "usable: 44 clips" in res.output and "no problems found" in res.output


def _rows(spec: list[tuple[str, str, str, int]]) -> list[dict]:
    return [
        {
            "clip_id": cid,
            "path": f"/x/{cid}",
            "media": "frames",
            "label": label,
            "split": split,
            "fold": fold,
            "n_frames": 10 + "abcdefgh".index(cid),
            "fps": 25.0,
        }
        for cid, label, split, fold in spec
    ]


def _fake_loader(monkeypatch: pytest.MonkeyPatch, index: pl.DataFrame, problems: list) -> None:
    def load_dataset(name: str, root: Path, **options: object):
        assert options == {"frames": "clip_224x224", "strict": True}
        return index, problems

    monkeypatch.setattr(registry, "load_dataset", load_dataset, raising=False)


GOOD = [
    ("a", "happiness", "train", 1),
    ("b", "happiness", "train", 1),
    ("c", "sadness", "train", 1),
    ("d", "sadness", "test", 1),
    ("e", "happiness", "test", 1),
]


@pytest.mark.parametrize(
    ("spec", "problems", "why"),
    [
        ([], [], "no clips"),
        (
            [],
            [{"clip_id": "a", "kind": "missing-media", "detail": "no folder"}],
            "every clip has a problem",
        ),
        (GOOD[:3], [], "the test split is empty in the dataset"),
        (
            [("a", "happiness", "train", 1), ("d", "sadness", "test", 1)],
            [],
            "has 1 class (happiness)",
        ),
        (
            GOOD,
            [{"clip_id": c, "kind": "frame-count", "detail": "x"} for c in "abcde"],
            "every clip has a problem (5 clip(s)",
        ),
        (
            [*GOOD, ("a", "happiness", "test", 2), ("d", "sadness", "test", 2)],
            [],
            "the train split is empty in fold 2",
        ),
    ],
)
def test_unusable_exits_2_with_one_line(monkeypatch, spec, problems, why) -> None:
    index = make_index(_rows(spec)) if spec else make_index([])
    _fake_loader(monkeypatch, index, problems)
    args = ["data", "check", "dfew", "/nowhere"]
    opts = ["--option", 'frames="clip_224x224"', "--set-option", "strict=true"]
    res = runner.invoke(app, [*args, *opts], env=WIDE)
    assert res.exit_code == 2, res.output
    assert why in res.output
    res = runner.invoke(app, [*args, *opts, "--json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["problems"] == problems
    assert res.stderr.startswith("unusable: ") and why in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_problems_are_listed_and_usable(monkeypatch) -> None:
    problems = [{"clip_id": "z", "kind": "missing-media", "detail": "folder 00099 not found"}]
    _fake_loader(monkeypatch, make_index(_rows(GOOD)), problems)
    args = ["data", "check", "dfew", "/nowhere", "--option", "frames=clip_224x224"]
    res = runner.invoke(app, [*args, "--option", "strict=true"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "1 problem(s)" in res.output and "folder 00099 not found" in res.output
    res = runner.invoke(app, [*args, "--option", "strict=true", "--json"])
    doc = json.loads(res.stdout)
    assert doc["problems"] == problems
    assert doc["folds"]["1"]["train"] == {"n_clips": 3, "counts": {"happiness": 2, "sadness": 1}}


def test_bad_arguments_are_one_error_line(synth5: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["data", "check", "synth", str(synth5), "--fold", "9"])
    assert res.exit_code == 1 and "no fold 9 (folds: 1, 2, 3, 4, 5)" in res.output
    res = runner.invoke(app, ["data", "check", "synth", str(synth5), "--option", "novalue"])
    assert res.exit_code == 1 and "expected key=value" in res.output
    res = runner.invoke(app, ["data", "check", "nosuch", str(tmp_path)])
    assert res.exit_code == 1 and "error:" in res.output


def test_parse_options_and_check_index_directly() -> None:
    assert parse_options(["a=1", "b=true", "c=text", 'd="q"', "e=[1, 2]"]) == {
        "a": 1,
        "b": True,
        "c": "text",
        "d": "q",
        "e": [1, 2],
    }
    with pytest.raises(DataCheckError):
        parse_options(["=1"])
    rep = check_index(make_index(_rows(GOOD)), dataset="d", root="/r")
    (train, test) = rep.folds[1]
    got = (train.split, train.n_clips, train.ratio, train.frames)
    assert got == ("train", 3, 2.0, (10, 11.0, 12))
    assert rep.groups[1] == {"happiness": "head", "sadness": "head"}
    assert test.counts == {"happiness": 1, "sadness": 1} and rep.unusable is None


def test_help() -> None:
    res = runner.invoke(app, ["data", "check", "--help"], env=WIDE)
    assert res.exit_code == 0 and "--option" in res.output and "--json" in res.output


DFEW_NAMES = {1: "happiness", 2: "sadness", 3: "neutral", 4: "anger", 5: "surprise"}


def _dfew_available() -> bool:
    try:
        registry.get_dataset("dfew")
    except KeyError:
        return False
    return hasattr(registry, "load_dataset")


@pytest.mark.skipif(not _dfew_available(), reason="the dfew loader is not there yet")
def test_miniature_dfew_tree(tmp_path: Path) -> None:
    root = tmp_path / "DFEW"
    rows = []  # (fold, split, video_name, official label)
    for v in range(1, 31):
        label = 1 + (v * 7) % 5
        fold = 1 + v % 5
        for f in range(1, 6):
            rows.append((f, "test" if f == fold else "train", v, label))
        folder = root / "Clip" / "clip_224x224" / f"{v:05d}"
        folder.mkdir(parents=True)
        for k in range(1, 3 + v % 4):  # 3..6 frames; only the listing counts
            (folder / f"{k:05d}.jpg").write_bytes(b"")
    for split in ("train", "test"):
        d = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
        d.mkdir(parents=True)
        for f in range(1, 6):
            lines = [f"{v},{lab}" for ff, s, v, lab in rows if ff == f and s == split]
            (d / f"set_{f}.csv").write_text("video_name,label\n" + "\n".join(lines) + "\n")
    res = runner.invoke(app, ["data", "check", "dfew", str(root), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    table = pl.DataFrame(rows, schema=["fold", "split", "v", "lab"], orient="row")
    g = table.group_by(["fold", "split", "lab"]).len()
    expected: dict = {}
    for (fold, split), part in g.group_by(["fold", "split"]):
        counts = {DFEW_NAMES[lab]: n for lab, n in zip(part["lab"], part["len"], strict=True)}
        expected.setdefault(str(fold), {})[split] = {
            "n_clips": sum(counts.values()),
            "counts": counts,
        }
    assert doc["folds"] == expected and doc["problems"] == []
    # a missing clip folder is a problem listed by the loader; the set stays usable
    (root / "Clip" / "clip_224x224" / "00007").rename(root / "moved")
    res = runner.invoke(app, ["data", "check", "dfew", str(root), "--json"])
    assert res.exit_code == 0, res.output
    assert [p["clip_id"] for p in json.loads(res.stdout)["problems"]] == ["00007"]
    res = runner.invoke(app, ["data", "check", "dfew", str(root)], env=WIDE)
    assert "00007" in res.output and "frames min / median / max" in res.output
