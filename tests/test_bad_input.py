"""Every bad input ends as one ``error:`` line naming the field, clip or file.

Config errors are caught at load (so ``emobench run --dry-run`` reports them); annotation
errors when the clip index is read (``emobench run`` and ``emobench data show``). Plus
hypothesis fuzzing: random ``--set`` overrides and random damage to a small annotations
file either load or raise :class:`EmobenchError`, never anything else.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from emobench.cli import app
from emobench.config import RunConfig, load_config, read_config_source
from emobench.data.registry import load_index
from emobench.errors import EmobenchError

runner = CliRunner()

COLUMNS = [
    "clip_id", "path", "label", "split", "fold", "subject", "n_frames", "fps",
    "onset", "apex", "offset", "micro", "intensity", "distractor",
]  # fmt: skip
#: A small valid synth annotation table: expressive clips have a window, neutral ones none.
ROWS: list[dict[str, str]] = [
    dict(zip(COLUMNS, line.split(","), strict=True))
    for line in (
        "c0,videos/c0.mp4,happiness,train,1,s0,50,25.0,5,10,20,false,0.8,",
        "c1,videos/c1.mp4,neutral,train,1,s0,40,25.0,,,,false,0.5,",
        "c2,videos/c2.mp4,anger,train,1,s1,50,25.0,0,20,49,true,0.9,sadness",
        "c3,videos/c3.mp4,sadness,train,1,s1,60,25.0,10,30,59,false,0.6,",
        "c4,videos/c4.mp4,happiness,test,1,s2,50,25.0,3,9,30,true,0.7,",
        "c5,videos/c5.mp4,neutral,test,1,s2,45,25.0,,,,false,0.5,",
    )
]
DFEW_CLASSES = ("neutral", "happiness", "anger", "sadness", "surprise", "fear", "disgust")


def write_dataset(
    root: Path,
    rows: list[dict[str, str]] | None = None,
    *,
    columns: list[str] | None = None,
    profile: str | None = "dfew",
    videos: bool = True,
) -> Path:
    """annotations.csv (+ synth.json with ``profile``, + empty video files) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ROWS if rows is None else rows
    columns = COLUMNS if columns is None else columns
    with (root / "annotations.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    if profile is not None:
        (root / "synth.json").write_text(json.dumps({"config": {"profile": profile}}))
    if videos:
        (root / "videos").mkdir(exist_ok=True)
        for r in ROWS:
            (root / r["path"]).write_bytes(b"")
    return root


def changed(clip: str, **cells: str) -> list[dict[str, str]]:
    return [{**r, **cells} if r["clip_id"] == clip else r for r in ROWS]


def tiny_config(path: Path, extra: str = "", dataset_root: Path | None = None) -> Path:
    """A TOML config on a (never generated) synth folder with one baseline and one CLIP."""
    root = dataset_root or path.parent / "no-data"
    path.write_text(
        f'name = "t"\n[[datasets]]\nname = "synth"\nroot = "{root}"\n'
        '[[models]]\nadapter = "baseline:mean"\n'
        '[[models]]\nadapter = "openclip:emobench-tiny"\n' + extra
    )
    return path


def one_error_line(args: list[str]) -> str:
    """Run the CLI; check exit code 1, no traceback, exactly one ``error:`` line."""
    res = runner.invoke(app, args)
    out = res.output
    assert res.exit_code == 1, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    return errors[0]


def run_set(*sets: str) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        return ["run", "quickstart", "--dry-run", *(a for s in sets for a in ("--set", s))]

    return args


def run_toml(extra: str) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        return ["run", str(tiny_config(tmp / "c.toml", extra)), "--dry-run"]

    return args


def show(rows: list[dict[str, str]], **kw: Any) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        return ["data", "show", str(write_dataset(tmp / "d", rows, **kw))]

    return args


def run_on(rows: list[dict[str, str]]) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        root = write_dataset(tmp / "d", rows)
        return ["run", str(tiny_config(tmp / "c.toml", dataset_root=root)), "--dry-run"]

    return args


CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    # 1. [train] and models.N.options.train: unknown keys and wrong types, at load
    "train-unknown-key": (run_toml("[train]\nepochz = 3\n"), ("train.epochz", "unknown setting")),
    "train-text-float": (run_toml('[train]\nlr = "fast"\n'), ("train.lr", "number", "'fast'")),
    "train-fraction-int": (run_toml("[train]\nepochs = 1.5\n"), ("train.epochs", "integer")),
    "train-text-int": (run_set('train.epochs="3"'), ("train.epochs", "integer", "'3'")),
    "train-range": (run_set("train.epochs=0"), ("train.epochs", "greater than or equal to 1")),
    "train-nan": (run_set("train.jitter=nan"), ("train.jitter", "finite")),
    "train-seed-elsewhere": (run_set("train.seed=1"), ("train.seed", "sweep.seeds")),
    "model-train": (
        run_set("models.0.options.train.batch_size=0.5"),
        ("models.0.options.train.batch_size", "integer"),
    ),
    # 2. each family's options model
    "baseline-option-type": (
        run_set('models.0.options.frame_size="big"'),
        ("models.0.options.frame_size", "integer"),
    ),
    "baseline-option-unknown": (
        run_set("models.0.options.framesize=64"),
        ("models.0.options.framesize", "allowed: frame_size, crop, encoder, train"),
    ),
    "baseline-crop": (run_set("models.0.options.crop=500"), ("models.0.options", "crop")),
    "baseline-encoder": (
        run_set('models.0.options.encoder.readout="max"'),
        ("models.0.options.encoder.readout", "'spatial'"),
    ),
    "openclip-pool": (
        run_set('models.2.options.pool="median"'),
        ("models.2.options.pool", "'mean-logit'"),
    ),
    "openclip-unknown": (run_set("models.2.options.pooling=1"), ("models.2.options.pooling",)),
    "openclip-prompts": (
        run_set('models.3.options.prompts.templates=["no slot"]'),
        ("models.3.options.prompts", "slot"),
    ),
    # 3. --set values, names, sampler lists, paths
    "set-empty-value": (run_set("train.epochs="), ("train.epochs", "empty value")),
    "set-empty-name": (run_set('name=""'), ("name", "folder name")),
    "set-slash-name": (run_set("name=a/b"), ("name", "'a/b'")),
    "set-dot-name": (run_set('name=".."'), ("name", "'..'")),
    "set-spaced-name": (run_set('name=" x"'), ("name", "' x'")),
    "sampler-empty-item": (
        run_set('sweep.sampler=["uniform:2,,4"]'),
        ("sweep.sampler", "empty item"),
    ),
    "set-into-scalar": (run_set("name.sub=1"), ("name.sub", "not a table")),
    "set-list-range": (run_set("datasets.3.root=/x"), ("datasets.3.root", "index '3'")),
    "set-list-not-index": (run_set("models.x.name=a"), ("models.x.name", "index 'x'")),
    "set-empty-key": (run_set("sweep..seeds=[1]"), ("sweep..seeds", "empty key")),
    # 4. the video section
    "video-backend": (run_set('video.backend="vhs"'), ("video.backend", "'decord'")),
    # 5. annotations: one line naming the file, the column and the first bad clip
    "nan-frames": (show(changed("c2", n_frames="NaN")), ("annotations.csv", "c2", "n_frames")),
    "empty-frames": (show(changed("c3", n_frames="")), ("annotations.csv", "c3", "n_frames")),
    "nan-fps": (show(changed("c1", fps="NaN")), ("annotations.csv", "c1", "fps")),
    "inf-fps": (show(changed("c1", fps="inf")), ("c1", "fps", "finite")),
    "empty-fps": (show(changed("c4", fps="")), ("c4", "fps")),
    "text-fold": (show(changed("c0", fold="one")), ("annotations.csv", "c0", "fold")),
    "other-dataset-label": (
        show(changed("c3", label="contempt")),
        ("c3", "'contempt'", ", ".join(DFEW_CLASSES)),
    ),
    "other-dataset-label-run": (run_on(changed("c3", label="contempt")), ("c3", "'contempt'")),
    "profile-classes": (
        show(ROWS, profile="uniform:happiness,anger,sadness"),
        ("c1", "'neutral'", "happiness, anger, sadness"),
    ),
    "unknown-label-no-manifest": (
        show(changed("c0", label="bored"), profile=None),
        ("c0", "'bored'", "contempt"),
    ),
    "offset-past-end": (show(changed("c3", offset="60")), ("c3", "onset/apex/offset", "(60)")),
    "apex-before-onset": (show(changed("c0", onset="12", apex="11")), ("c0", "onset/apex")),
    "negative-onset": (show(changed("c4", onset="-1")), ("c4", "onset/apex")),
    "duplicate-clip": (show([*ROWS, ROWS[2]]), ("c2", "twice")),
    "missing-column": (
        show(ROWS, columns=[c for c in COLUMNS if c != "fps"]),
        ("annotations.csv", "fps"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line(case: str, tmp_path: Path) -> None:
    make_args, fragments = CASES[case]
    line = one_error_line(make_args(tmp_path))
    for frag in fragments:
        assert frag in line, line


def test_quickstart_settings_are_unchanged() -> None:
    cfg = load_config("quickstart")
    assert cfg.train == {"epochs": 14}
    assert [m.options for m in cfg.models] == [
        {"frame_size": 112, "crop": 64},
        {"frame_size": 112, "crop": 64},
        {},
        {"probe": "linear"},
        {"batch_size": 16, "max_new_tokens": 4},
        {"scoring": "loglik", "batch_size": 16},
        {"batch_size": 16, "max_new_tokens": 4, "gap_frames": 4, "msce_max_new_tokens": 24},
    ]
    assert cfg.video.backend == "auto"
    assert load_config("quickstart", ['video.backend="pyav"']).video.backend == "pyav"


def test_missing_video_is_kept_for_the_run_to_skip(tmp_path: Path) -> None:
    from emobench.video.frames import FrameReadError, read_clip

    root = write_dataset(tmp_path / "d")
    (root / "videos" / "c3.mp4").unlink()
    index = load_index("synth", root)
    assert index.height == len(ROWS)
    row = index.filter(index["clip_id"] == "c3").row(0, named=True)
    with pytest.raises(FrameReadError) as exc:
        read_clip(row, [0])
    assert exc.value.reason == "missing file"


# --------------------------------------------------------------------------- fuzzing


def _paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key path of a raw config (list items by position)."""
    out = [prefix] if prefix else []
    if isinstance(node, (dict, list)):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            out += _paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


QUICKSTART_PATHS = _paths(read_config_source("quickstart")[0]) + [
    "train.epochs",
    "train.lr",
    "train.train_frames",
    "video.backend",
    "models.0.options.train.epochs",
    "models.2.options.pool",
    "models.2.options.seed",
    "models.3.options.prompts",
    "cache.frames",
    "limit",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            '""',
            "''",
            '"x"',
            "3",
            "0",
            "-1",
            "1.5",
            "nan",
            "inf",
            "-inf",
            "true",
            "[]",
            "[1, 2]",
            '["uniform:2,,4"]',
            '["uniform:4"]',
            "{a = 1}",
            "{}",
            "9" * 40,
            "-" + "9" * 25,
            '"' + "a" * 300 + '"',
            "[[1], [2]]",
            '"a/b"',
            '".."',
            "1e400",
            '"fast"',
            '"3"',
            "[1.5]",
            "[-1]",
            '"auto"',
            '"cuda"',
            '"median"',
            "[nan]",
            "x = 1",
            '"unterminated',
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="ab1.,:[]{}\"'= -", max_size=12),
)
KEYS = st.one_of(
    st.sampled_from(QUICKSTART_PATHS),
    st.builds(
        lambda a, b: f"{a}.{b}",
        st.sampled_from(QUICKSTART_PATHS),
        st.sampled_from(["x", "0", "9", "-1", "", "epochs", "options", "train"]),
    ),
    st.text(alphabet="abc.0", max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=3))
def test_fuzz_overrides_load_or_raise_emobench_error(sets: list[str]) -> None:
    try:
        cfg = load_config("quickstart", sets)
    except EmobenchError:
        return
    assert isinstance(cfg, RunConfig)


JUNK = st.sampled_from(
    [
        "",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "1.5",
        "99999999999999999999999",
        "1e309",
        "contempt",
        "happiness",
        "bored",
        "val",
        "dev",
        "test",
        "true",
        "maybe",
        "x",
        '"',
        "a,b",
        " 5",
        "49",
        "50",
        "videos/c0.mp4",
        "c1",
    ]
)
Mutation = tuple[str, int, str, str]
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["cell", "cell", "cell", "duplicate", "drop", "column"]),
        st.integers(0, len(ROWS) - 1),
        st.sampled_from(COLUMNS),
        JUNK,
    ),
    min_size=1,
    max_size=4,
)


def _mutate(mutations: list[Mutation]) -> tuple[list[dict[str, str]], list[str]]:
    rows = [dict(r) for r in ROWS]
    columns = list(COLUMNS)
    for kind, i, col, junk in mutations:
        if not rows:
            break
        i %= len(rows)
        if kind == "cell":
            rows[i][col] = junk
        elif kind == "duplicate":
            rows.append(dict(rows[i]))
        elif kind == "drop":
            rows.pop(i)
        elif col in columns and len(columns) > 1:
            columns.remove(col)
    return rows, columns


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATIONS, st.sampled_from(["dfew", "uniform:happiness,anger,sadness,neutral", None]))
def test_fuzz_annotations_load_or_raise_emobench_error(
    mutations: list[Mutation], profile: str | None
) -> None:
    from emobench.data.index import validate_index
    from emobench.data.summary import summary_tables

    rows, columns = _mutate(mutations)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp), rows, columns=columns, profile=profile, videos=False)
        try:
            index = load_index("synth", root)
        except EmobenchError:
            return
    assert index.height == len(rows)
    assert validate_index(index).equals(index)
    if profile == "dfew":
        assert set(index["label"]) <= set(DFEW_CLASSES)
    assert summary_tables(index)  # what `emobench data show` prints
