"""No traceback, ever (issue 20, section 3): each bad input here ends as one ``error:`` line
(exit 1), or, for a damaged cache or checkpoint, as one warning and a recompute.

Each test names the input it feeds; the damaged files are made here from real ones (the
shipped weights, a checkpoint, a cache entry written by a first run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions, fake_run, make_synth
from typer.testing import CliRunner

from emobench.cli import app
from emobench.errors import EmobenchError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

runner = CliRunner()
WEIGHTS = Path(__file__).resolve().parent.parent / "emobench" / "models" / "weights"
TINY_CLIP = WEIGHTS / "emobench-tiny-synth-web.safetensors"
TINY_VLM = WEIGHTS / "emobench-tiny-vlm"


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


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated synth set (7 training and 7 test clips, 3 classes)."""
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3)


def _config(path: Path, root: Path, adapter: str = "baseline:mean", options: str = "{}") -> Path:
    """A TOML config: one model on ``root``'s synth set, uniform:2, its cache beside it."""
    path.write_text(
        f'name = "t"\ndevice = "cpu"\n[[datasets]]\nname = "synth"\nroot = "{root}"\n'
        f'[[models]]\nadapter = "{adapter}"\noptions = {options}\n'
        f'[sweep]\nsampler = ["uniform:2"]\n[cache]\ndir = "{path.parent / "cache"}"\n'
        '[video]\nbackend = "pyav"\n[metrics]\nn_resamples = 0\n'
    )
    return path


# --------------------------------------------------------------------------- dataset roots


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """A dataset root that is a symlink to itself."""
    path = tmp_path / "loop"
    path.symlink_to(path)
    return path


def test_symlink_loop_root_in_data_check(loop: Path) -> None:
    line = one_error_line(["data", "check", "dfew", str(loop)])
    assert str(loop) in line and "symbolic links" in line


@pytest.mark.parametrize("generated", [True, False], ids=["generate", "load"])
def test_symlink_loop_root_in_run(loop: Path, tmp_path: Path, monkeypatch, generated) -> None:
    monkeypatch.chdir(tmp_path)
    if generated:  # quickstart's synth set is generated when absent: the root is made first
        args = ["run", "quickstart", "--set", f"datasets.0.root={json.dumps(str(loop))}"]
    else:
        args = ["run", str(_config(tmp_path / "c.toml", loop))]
    line = one_error_line([*args, "--dry-run"])
    assert str(loop) in line and "symbolic links" in line


# --------------------------------------------------------------------------- numbers, values


def test_run_limit_beyond_any_integer_type(synth: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "c.toml", synth)
    line = one_error_line(["run", str(cfg), "--dry-run", "--limit", "9" * 23])
    assert "limit" in line and "9" * 23 in line


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder: one model, original and shuffled order, 12 clips of 3 classes."""
    labels = ["neutral", "happiness", "anger"]
    rng = np.random.default_rng(0)
    y = np.array(labels)[np.arange(12) % 3]
    preds = pl.concat(
        [
            fake_predictions(
                cell_id=f"m/{order}",
                model="m",
                fold=1,
                clip_ids=[f"c{i:02d}" for i in range(12)],
                labels=y,
                preds=np.array(labels)[rng.integers(0, 3, 12)],
                order=order,
            )
            for order in ("original", "shuffle")
        ]
    )
    root = tmp_path_factory.mktemp("run") / "r"
    cells = preds.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    train = {"1": {"neutral": 30, "happiness": 20, "anger": 5}}
    fake_run(root, preds, labels=labels, train_counts=train, n_clips=12, cells=cells)
    return root


def _report(run: Path, out: Path, *extra: str) -> list[str]:
    return ["report", str(run), "--out", str(out), "--resamples", "20", "--workers", "0", *extra]


def test_report_negative_seed(small_run: Path, tmp_path: Path) -> None:
    line = one_error_line(_report(small_run, tmp_path / "rep", "--seed", "-1"))
    assert "seed" in line and "-1" in line


@pytest.mark.parametrize("n", ["9" * 23, "100001"])
def test_report_resamples_beyond_what_fits(small_run: Path, tmp_path: Path, n: str) -> None:
    args = _report(small_run, tmp_path / "rep")
    args[args.index("--resamples") + 1] = n
    line = one_error_line(args)
    assert "n_resamples must be in 1..100000" in line and n in line


def test_config_resamples_beyond_what_fits(synth: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "c.toml", synth)
    line = one_error_line(["run", str(cfg), "--dry-run", "--set", "metrics.n_resamples=200000"])
    assert "n_resamples" in line and "100000" in line


def test_report_reference_value_no_cell_has(small_run: Path, tmp_path: Path) -> None:
    line = one_error_line(_report(small_run, tmp_path / "rep", "--reference", "order=backwards"))
    assert "order=backwards" in line and "original, shuffle" in line


# --------------------------------------------------------------------------- loader options


def test_data_check_validates_loader_options_as_run_does(tmp_path: Path) -> None:
    checked = one_error_line(["data", "check", "dfew", str(tmp_path), "--option", "foo=1"])
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'name = "t"\n[[datasets]]\nname = "dfew"\nroot = "{tmp_path}"\noptions = {{ foo = 1 }}\n'
        '[[models]]\nadapter = "baseline:mean"\n'
    )
    ran = one_error_line(["run", str(cfg), "--dry-run"])
    same = "unknown dfew loader option 'foo'; allowed: media"
    assert same in checked and same in ran


# --------------------------------------------------------------------------- weights files


def _evil_pickle(path: Path) -> Path:
    import pickle

    path.write_bytes(pickle.dumps({"weight": print}))  # a pickle naming a Python callable
    return path


def test_pickled_pt_as_openclip_weights_in_run(synth: Path, tmp_path: Path) -> None:
    evil = _evil_pickle(tmp_path / "evil.pt")
    cfg = _config(tmp_path / "c.toml", synth, adapter=f"openclip:emobench-tiny@{evil}")
    line = one_error_line(["run", str(cfg), "--out", str(tmp_path / "out"), "--limit", "2"])
    assert str(evil) in line and "pickle" in line


@pytest.mark.parametrize("content", ["hf-keys", "empty", "not-a-dict"])
def test_pytorch_model_bin_as_openclip_weights(tmp_path: Path, content: str) -> None:
    torch = pytest.importorskip("torch")
    from emobench.models.openclip.weights import load_openclip

    path = tmp_path / "pytorch_model.bin"
    value: Any = {
        "hf-keys": {
            "text_model.embeddings.token_embedding.weight": torch.zeros(4, 2),
            "vision_model.embeddings.patch_embedding.weight": torch.zeros(2, 3, 1, 1),
            "logit_scale": torch.zeros(()),
        },
        "empty": {},
        "not-a-dict": [torch.zeros(2)],
    }[content]
    torch.save(value, path)
    with pytest.raises(EmobenchError) as err:
        load_openclip("emobench-tiny", str(path))
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400 and str(path) in msg


def _vlm_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "vlm"
    shutil.copytree(TINY_VLM, folder)
    return folder


def test_truncated_safetensors_in_a_model_folder(tmp_path: Path) -> None:
    from emobench.models.hf.loading import load_model

    folder = _vlm_copy(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 4096])
    with pytest.raises(EmobenchError) as err:
        load_model(folder, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and "safetensors" in msg


def test_pickled_pytorch_model_bin_in_a_model_folder(tmp_path: Path) -> None:
    from emobench.models.hf.loading import load_model

    folder = _vlm_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    _evil_pickle(folder / "pytorch_model.bin")
    with pytest.raises(EmobenchError) as err:
        load_model(folder, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and "pickle" in msg


# --------------------------------------------------------------------------- checkpoints


SIDECARS = {
    "a-list": lambda m: [m],
    "module-a-string": lambda m: {**m, "module": "head"},
    "no-kwargs": lambda m: {**m, "module": {"kind": "head", "name": "mean", "kwargz": {}}},
    "unknown-argument": lambda m: {
        **m,
        "module": {**m["module"], "kwargs": {**m["module"]["kwargs"], "colour": 1}},
    },
    "unknown-head": lambda m: {**m, "module": {**m["module"], "name": "median"}},
    "config-a-list": lambda m: {**m, "config": [1]},
}


@pytest.mark.parametrize("damage", list(SIDECARS), ids=list(SIDECARS))
def test_checkpoint_sidecar_with_wrong_keys_is_removed_and_retrained(tmp_path, damage) -> None:
    from emobench.training.checkpoint import load_checkpoint, save_module, sidecar_path
    from emobench.training.temporal_heads import build_head

    path = save_module(build_head("mean", d_in=8, n_classes=3), tmp_path / "head-x.safetensors")
    side = sidecar_path(path)
    side.write_text(json.dumps(SIDECARS[damage](json.loads(side.read_text()))))
    warned: list[str] = []
    assert load_checkpoint(path, warned.append) is None  # None: the caller trains again
    assert len(warned) == 1 and "head-x" in warned[0] and "\n" not in warned[0]
    assert not path.exists() and not side.exists()


# --------------------------------------------------------------------------- feature cache


class _MeanRGB:
    """Features: each frame's per-channel mean (3 wide); ``feature_dim`` says so or not."""

    feature_key = "mean-rgb"
    frame_size = 24
    batch_size = 0

    def __init__(self, declares_width: bool) -> None:
        if declares_width:
            self.feature_dim = 3

    def encode(self, frames: np.ndarray) -> np.ndarray:
        return frames.reshape(len(frames), -1, 3).mean(1).astype(np.float32)


def _features(synth: Path, tmp_path: Path, declares_width: bool, warned: list[str]) -> tuple:
    """Frames 0, 2 and 5 of every test clip through the features phase: (features per
    clip, the scorer, the cache, the feature key, the rows)."""
    from emobench.data.registry import load_index
    from emobench.runner.cache import FeatureCache, FrameCache
    from emobench.runner.frame_features import FrameFeatureScorer
    from emobench.runner.media import MediaReader
    from emobench.runner.scorers import Services
    from emobench.runner.work import WorkProgress

    index = load_index("synth", synth).filter(pl.col("split") == "test").sort("clip_id")
    cache = FeatureCache(tmp_path / "cache")
    cache.warn = warned.append
    reader = MediaReader(FrameCache(None), "pyav", WorkProgress(show=False), workers=0)
    scorer = FrameFeatureScorer(Services(cache, reader, WorkProgress(show=False), {}))
    model = _MeanRGB(declares_width)
    want = {r["clip_id"]: np.array([0, 2, 5]) for r in index.iter_rows(named=True)}
    feats, bad, _ = scorer.features(model, index, want, "test")
    assert not bad
    key = reader.artefact_key(model.feature_key)
    return feats, reader, cache, key, list(index.iter_rows(named=True))


@pytest.mark.parametrize("declares_width", [True, False], ids=["feature_dim", "no-feature_dim"])
@pytest.mark.parametrize("partial", [False, True], ids=["cached-whole", "cached-part"])
def test_feature_cache_entry_of_another_width_or_nan_is_recomputed(
    synth: Path, tmp_path: Path, declares_width: bool, partial: bool
) -> None:
    warned: list[str] = []
    first, media, cache, key, rows = _features(synth, tmp_path, declares_width, warned)
    kept = [0, 2] if partial else [0, 2, 5]  # partial: frame 5 is still to compute
    wide = np.ones((len(kept), 5), np.float32)  # 5 features a frame instead of 3
    cache.store(key, media.clip_key(rows[0]), np.array(kept), wide)
    nan = np.full((len(kept), 3), np.nan, np.float32)
    cache.store(key, media.clip_key(rows[1]), np.array(kept), nan)

    again, _, cache, _, _ = _features(synth, tmp_path, declares_width, warned)
    assert cache.stats.miss_frames == 6  # both damaged clips' three frames, nothing else
    for r in rows:
        idx, f = again[r["clip_id"]]
        assert idx.tolist() == [0, 2, 5] and np.array_equal(f, first[r["clip_id"]][1])
    assert len(warned) == 1 and "\n" not in warned[0]
    assert cache.stats.invalid_files == 2
    # the rewritten entries are served next time, without a warning
    _, _, cache, _, _ = _features(synth, tmp_path, declares_width, warned)
    assert cache.stats.miss_frames == 0 and len(warned) == 1


def test_hfvideo_feature_cache_entry_with_nan_is_recomputed(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from emobench.models.hfvideo.adapter import HFVideoModel

    model: Any = SimpleNamespace(_cache=tmp_path)
    model._cache_path = lambda key: HFVideoModel._cache_path(model, key)
    path = model._cache_path("ab12")
    path.parent.mkdir(parents=True)
    np.save(path, np.array([0.5, np.nan], np.float32))
    assert HFVideoModel._cached(model, "ab12") is None and not path.exists()
    np.save(path, np.array([0.5, 1.5], np.float32))  # a sound entry is served
    assert HFVideoModel._cached(model, "ab12").tolist() == [0.5, 1.5]


# --------------------------------------------------------------------------- failed writes

WRITE_SCRIPT = """
import resource, sys
from pathlib import Path

import typer

from emobench.errors import run_cli

out, what = Path(sys.argv[1]), sys.argv[2]


def body():
    if what == "safetensors":
        from emobench.training.temporal_heads import build_head
        from emobench.training.checkpoint import save_module

        head = build_head("mean", d_in=1024, n_classes=7)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        save_module(head, out / "head.safetensors")
    else:
        import numpy as np
        import polars as pl

        from emobench.io import write_parquet_atomic

        df = pl.DataFrame({"x": np.random.default_rng(0).random(20000)})
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        write_parquet_atomic(out / "metrics.parquet", df)


try:
    run_cli(body)
except typer.Exit as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize("what", ["safetensors", "parquet"])
def test_write_past_the_file_size_limit_is_one_line_and_leaves_no_file(tmp_path, what) -> None:
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run(
        [sys.executable, "-c", WRITE_SCRIPT, str(out), what],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "File too large" in errors[0] and str(out) in errors[0]
    left = sorted(p.name for p in out.iterdir() if not p.name.endswith(".json"))
    assert left == []  # no partial weights or table, no temporary file


# --------------------------------------------------------------------------- answer cache


@pytest.mark.parametrize(
    ("scoring", "entry"),
    [("generate", {"text": 5}), ("loglik", {"scores": ["x", "y", "z"]}), ("loglik", [1])],
    ids=["text-a-number", "scores-text", "a-list"],
)
def test_answer_cache_entry_of_wrong_types_is_recomputed(synth, tmp_path, scoring, entry) -> None:
    from emobench.results import RunFolder
    from emobench.runner.commands import run_command

    opts = f'{{ scoring = "{scoring}", max_new_tokens = 2, batch_size = 8 }}'
    cfg = _config(tmp_path / "c.toml", synth, adapter="hf:emobench-tiny-vlm", options=opts)
    run_command(str(cfg), out=tmp_path / "a", progress=False)
    entries = sorted((tmp_path / "cache" / "hf-generations").rglob("*.json"))
    assert len(entries) == 7
    for p in entries:
        p.write_text(json.dumps(entry))
    run_command(str(cfg), out=tmp_path / "b", progress=False)
    a, b = RunFolder(tmp_path / "a"), RunFolder(tmp_path / "b")
    assert b.read_predictions()["pred"].to_list() == a.read_predictions()["pred"].to_list()
    manifest = b.read_manifest()
    (info,) = [f["1"] for f in manifest["cell_info"].values()]
    assert info["cache_hits"] == 0 and info["cache_invalid"] == 7 and info["model_calls"] > 0
    cache_warnings = [w for w in manifest["warnings"] if "answer cache" in w]
    assert len(cache_warnings) == 1
