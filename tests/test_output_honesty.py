"""What emobench prints and writes is safe to open and says what it is (issue 20, section 4).

* an API key a server echoes back (in a 401 body, as its model name, in an answer) reaches
  neither the console nor any file of the results folder or cache;
* text from a model, a file or a config is escaped in ``summary.md`` as in ``report.html``;
* ``emobench report`` refuses a folder whose run still holds its lock, and on a run that was
  killed shows metrics computed from the predictions that are there, naming the cells that
  are incomplete;
* the report's figure worker dies with a killed ``emobench report``;
* clips a dataset loader excluded, and imported rows for training clips, reach the console
  (and the report), not only ``manifest.json`` / a JSON file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions, fake_run, make_synth
from typer.testing import CliRunner

from emobench.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
SCRIPT = "<script>alert(1)</script>"


# ------------------------------------------------------------------------ 1. API keys

KEY = "sk-honesty-0123456789abcdefSECRET"
ENV = "EMOBENCH_TEST_HONESTY_KEY"


class EchoServer:
    """An OpenAI-compatible server that echoes the caller's key: in a 401 body
    (``refuse``), else as its ``model`` name and inside every answer."""

    def __init__(self, refuse: bool) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                auth = self.headers.get("Authorization", "")
                if refuse:
                    code = 401
                    body = {
                        "error": {
                            "message": f"Incorrect API key provided: {auth}. Check it.",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    }
                else:
                    code = 200
                    answer = f"Happiness ({auth.removeprefix('Bearer ')})"
                    body = {
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": auth.removeprefix("Bearer "),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                                "logprobs": None,
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_synth(root, profile="exp:3", n_train=7, n_test=7, n_train_subjects=2, seed=3)


def _openai_config(path: Path, root: Path, url: str, cache: Path) -> Path:
    path.write_text(
        'name = "honesty"\ndevice = "cpu"\n'
        f'[[datasets]]\nname = "synth"\nroot = "{root}"\n'
        '[[models]]\nadapter = "openai:tiny-vlm"\nname = "api"\n'
        f'options = {{ base_url = "{url}", api_key_env = "{ENV}", max_retries = 0 }}\n'
        '[sweep]\nsampler = ["uniform:2"]\n'
        f'[cache]\ndir = "{cache}"\n[video]\nbackend = "pyav"\n'
        "[metrics]\nn_resamples = 0\n"
    )
    return path


def _files_with_key(*roots: Path) -> list[Path]:
    return [
        p
        for root in roots
        for p in Path(root).rglob("*")
        if p.is_file() and KEY.encode() in p.read_bytes()
    ]


@pytest.mark.parametrize("refuse", [True, False], ids=["401-echo", "model-name-echo"])
def test_openai_key_echoed_by_the_server_is_redacted_everywhere(
    synth_root, tmp_path, monkeypatch, refuse
):
    pytest.importorskip("openai")
    monkeypatch.setenv(ENV, KEY)
    out, cache = tmp_path / "run", tmp_path / "cache"
    with EchoServer(refuse) as server:
        cfg = _openai_config(tmp_path / "c.toml", synth_root, server.url, cache)
        res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--no-progress"], env=WIDE)
        if not refuse:
            assert res.exit_code == 0, res.output
            rep = runner.invoke(app, ["report", str(out), "--workers", "0", "--resamples", "20"])
            assert rep.exit_code == 0, rep.output
            assert KEY not in rep.output
    assert KEY not in res.output
    if refuse:
        assert res.exit_code == 1
        lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "401" in lines[0] and "REDACTED" in lines[0], res.output
    else:
        manifest = json.loads((out / "manifest.json").read_text())
        info = next(iter(manifest["cell_info"].values()))["1"]
        assert "REDACTED" in str(info["server_model"])
    assert _files_with_key(tmp_path) == []


# ------------------------------------------------------------------------ 2. escaping

LABELS = ["neutral", "happiness", "sadness", "anger"]
TRAIN = {"neutral": 40, "happiness": 30, "sadness": 15, "anger": 5}


def _cells(
    rng: np.random.Generator, models: dict[str, str], n: int = 40, folds=(1, 2)
) -> pl.DataFrame:
    frames = []
    for fold in folds:
        y = np.array(LABELS)[rng.integers(0, len(LABELS), n)]
        clips = [f"f{fold}c{i:03d}" for i in range(n)]
        for cell_id, model in models.items():
            pred = np.where(rng.random(n) < 0.6, y, np.array(LABELS)[rng.integers(0, 4, n)])
            frames.append(
                fake_predictions(
                    cell_id=cell_id, model=model, fold=fold, clip_ids=clips, labels=y, preds=pred
                )
            )
    return pl.concat(frames)


def _write(root: Path, predictions: pl.DataFrame, **kw):
    cells = predictions.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    folds = sorted(predictions["fold"].unique().to_list())
    return fake_run(
        root,
        predictions,
        labels=LABELS,
        train_counts={str(f): TRAIN for f in folds},
        n_clips=predictions.select("fold", "clip_id").n_unique(),
        cells=kw.pop("cells", cells),
        **kw,
    )


def _md_table_rows(text: str) -> list[list[str]]:
    """Each markdown table of ``text`` as its rows' cell counts (unescaped pipes)."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(len(re.findall(r"(?<!\\)\|", line)))
        elif current:
            tables.append(current)
            current = []
    return tables


def test_summary_md_escapes_model_answers_names_and_config(tmp_path):
    rng = np.random.default_rng(1)
    evil_model = f"hf:{SCRIPT}|x $\\frac{{$"  # and no mathtext in the figures
    preds = _cells(rng, {"good": "hf:good", "evil": evil_model})
    answer = f"{SCRIPT} | `x` <img src=x onerror=alert(2)> &amp;"
    preds = preds.with_columns(
        pl.when(pl.col("clip_id").str.ends_with("1"))
        .then(pl.lit("invalid"))
        .otherwise(pl.col("pred"))
        .alias("pred"),
        pl.lit(answer).alias("raw_text"),
    )
    run = _write(
        tmp_path / "run",
        preds,
        run_name=f"<b>{SCRIPT}</b>",
        config={"name": SCRIPT, "note": "a | b ``` c"},
    )
    res = runner.invoke(
        app, ["report", str(run.path), "--workers", "0", "--resamples", "20"], env=WIDE
    )
    assert res.exit_code == 0, res.output
    md = (run.report_dir / "summary.md").read_text()
    html = (run.report_dir / "report.html").read_text()
    # outside code blocks and `code` spans (shown literally by every markdown renderer)
    # no tag survives
    prose = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", md, flags=re.M | re.S)
    prose = re.sub(r"(?<!\\)`[^`\n]*`", "", prose)
    for text in (prose, html):
        assert "<script" not in text and "<img src=x" not in text and "<b>" not in text
    assert "&lt;script&gt;" in md and "&lt;img" in md and "&lt;script&gt;" in html
    # the raw answer is in the invalid-answers table, its pipe escaped: every row of every
    # table has as many cells as its header
    assert "unparsed" in md or "raw answer" in md
    for counts in _md_table_rows(md):
        assert len(set(counts)) == 1, counts
    # the config block cannot be closed early by backticks inside it
    fences = re.findall(r"^(`{3,})", md, flags=re.M)
    assert len(fences) % 2 == 0


# ------------------------------------------------------------------------ 3. unfinished runs


def test_report_refuses_a_folder_whose_run_holds_its_lock(tmp_path):
    from emobench.runner.lock import RunLock

    run = _write(tmp_path / "run", _cells(np.random.default_rng(2), {"a": "m:a"}))
    with RunLock(run.path):
        res = runner.invoke(app, ["report", str(run.path), "--workers", "0"], env=WIDE)
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error:")
    assert f"run still in progress (lock held by pid {os.getpid()})" in lines[0]
    assert not (run.report_dir / "summary.md").exists()


ABC = {"cell-a": "m:a", "cell-b": "m:b", "cell-c": "m:c"}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _uar_means(predictions: pl.DataFrame) -> dict[str, float]:
    """Each cell's mean over folds of the per-fold UAR, computed here by hand."""
    per_fold = (
        predictions.group_by("cell_id", "fold", "label")
        .agg((pl.col("pred") == pl.col("label")).mean().alias("recall"))
        .group_by("cell_id", "fold")
        .agg(pl.col("recall").mean().alias("uar"))
        .group_by("cell_id")
        .agg(pl.col("uar").mean())
    )
    return dict(zip(per_fold["cell_id"], per_fold["uar"], strict=True))


def _summary_uar(md: str) -> dict[str, float]:
    section = md.split("## Overall metrics per cell", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [h.strip() for h in lines[0].strip("|").split(" | ")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))]
        row = dict(zip(header, cells, strict=True))
        out[row["cell"].strip("`")] = float(row["UAR"].split("±")[0])
    return out


def test_report_on_a_killed_run_uses_metrics_of_its_predictions_and_names_incomplete_cells(
    tmp_path,
):
    from emobench.config import MetricsConfig
    from emobench.results.metrics_table import compute_metrics
    from emobench.runner.lock import LOCK_FILE, PID_FILE

    rng = np.random.default_rng(3)
    full = _cells(rng, ABC)
    # the kill: cell c never got its fold 2, and metrics.parquet is the previous run's
    # (made from other predictions of the same cells)
    preds = full.filter(~((pl.col("cell_id") == "cell-c") & (pl.col("fold") == 2)))
    run = _write(tmp_path / "run", preds)
    old = _cells(np.random.default_rng(99), ABC)
    old = old.filter(~((pl.col("cell_id") == "cell-c") & (pl.col("fold") == 2)))
    run.write_metrics(compute_metrics(old, run.read_manifest(), MetricsConfig(n_resamples=0)))
    before = run.metrics_path.read_bytes()
    (run.path / LOCK_FILE).touch()
    started = "2026-01-01T00:00:00+00:00"
    (run.path / PID_FILE).write_text(json.dumps({"pid": _dead_pid(), "started": started}))

    res = runner.invoke(
        app, ["report", str(run.path), "--workers", "0", "--resamples", "20"], env=WIDE
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any("did not finish" in ln for ln in lines), res.output
    incomplete = [ln for ln in lines if "incomplete" in ln]
    assert len(incomplete) == 1 and "cell-c" in incomplete[0], res.output
    assert "cell-a" not in incomplete[0] and "cell-b" not in incomplete[0]
    assert any("recomputed" in ln for ln in lines), res.output
    md = (run.report_dir / "summary.md").read_text()
    assert "did not finish" in md
    got, want = _summary_uar(md), _uar_means(preds)
    assert set(got) == set(ABC)
    for cid, value in want.items():
        assert got[cid] == pytest.approx(value, abs=5e-4), cid
    assert run.metrics_path.read_bytes() == before  # the run's own file is left as it was


def test_report_recomputes_metrics_that_disagree_with_the_predictions(tmp_path):
    """No sign of a kill, but metrics.parquet was made from other predictions of the same
    cells (24 of 48 UARs differed in the issue): the report says so and recomputes."""
    from emobench.config import MetricsConfig
    from emobench.results.metrics_table import compute_metrics

    preds = _cells(np.random.default_rng(4), {"cell-a": "m:a", "cell-b": "m:b"})
    run = _write(tmp_path / "run", preds)
    other = preds.with_columns(
        pl.when((pl.col("cell_id") == "cell-b") & pl.col("clip_id").str.ends_with("3"))
        .then(pl.lit("anger"))
        .otherwise(pl.col("pred"))
        .alias("pred")
    )
    run.write_metrics(compute_metrics(other, run.read_manifest(), MetricsConfig(n_resamples=0)))
    res = runner.invoke(
        app, ["report", str(run.path), "--workers", "0", "--resamples", "20"], env=WIDE
    )
    assert res.exit_code == 0, res.output
    disagree = [ln for ln in res.output.splitlines() if "disagree" in ln]
    assert len(disagree) == 1 and disagree[0].startswith("warning:"), res.output
    assert "cell-b" in disagree[0] and "cell-a" not in disagree[0]
    got, want = _summary_uar((run.report_dir / "summary.md").read_text()), _uar_means(preds)
    for cid, value in want.items():
        assert got[cid] == pytest.approx(value, abs=5e-4), cid


# ------------------------------------------------------------------------ 4. figure worker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_figure_worker_dies_with_a_killed_report(tmp_path):
    psutil = pytest.importorskip("psutil")
    models = {f"c{i}": f"m:{i}" for i in range(12)}
    run = _write(tmp_path / "run", _cells(np.random.default_rng(5), models, n=200))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "emobench", "report", str(run.path)]
    cmd += ["--workers", "1", "--resamples", "20000"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    parent = psutil.Process(proc.pid)
    workers: list = []
    try:
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                workers = [
                    c
                    for c in parent.children(recursive=True)
                    if "spawn_main" in " ".join(c.cmdline())
                ]
            time.sleep(0.02)
        assert workers, "the report never started a figure worker"
        time.sleep(0.3)  # let it get past its start-up
        assert proc.poll() is None, "the report finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        def alive(p) -> bool:
            try:
                return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False

        deadline = time.monotonic() + 5
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in workers), "the figure worker outlived its report"
    finally:
        for w in workers:
            with contextlib.suppress(psutil.Error):
                w.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------ 5. dataset problems


def _listfile_set(root: Path) -> Path:
    """A 2-class listfile set: 9 train and 6 test frame folders (empty .jpg files: an
    imported model decodes nothing; one named like rich markup); two test folders
    deleted, one line unreadable."""
    train, test = [], []
    for split, n, lines in (("train", 8, train), ("test", 6, test)):
        for i in range(n):
            folder = root / split / f"{split}{i}"
            folder.mkdir(parents=True)
            for k in range(3):
                (folder / f"{k:03d}.jpg").write_bytes(b"")
            lines.append(f"{split}/{split}{i} 3 {i % 2}")
    folder = root / "train" / "t[" / "b]"
    folder.mkdir(parents=True)
    for k in range(3):
        (folder / f"{k:03d}.jpg").write_bytes(b"")
    train.append("train/t[/b] 3 1")
    for i in (4, 5):
        for f in (root / "test" / f"test{i}").iterdir():
            f.unlink()
        (root / "test" / f"test{i}").rmdir()
    test.append("test/garbled-line")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "test.txt").write_text("\n".join(test) + "\n")
    return root


def _imported_config(path: Path, root: Path, preds: Path) -> Path:
    path.write_text(
        'name = "excl"\n'
        f'[[datasets]]\nname = "listfile"\nroot = "{root}"\n'
        'options = { train = "train.txt", test = "test.txt", classes = "happiness,sadness" }\n'
        f'[[models]]\nadapter = "predictions:{preds}"\nname = "imp"\n'
        '[sweep]\nsampler = ["uniform:4"]\norder = ["original"]\n'
        "[metrics]\nn_resamples = 0\n"
    )
    return path


@pytest.fixture(scope="module")
def excluded_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("excl")
    root = _listfile_set(tmp / "data")
    rows = [{"clip_id": f"test/test{i}", "pred": "happiness"} for i in range(4)]
    # training clips, one of them named like rich markup (printed as it is)
    rows += [{"clip_id": c, "pred": "happiness"} for c in ("train/train0", "train/t[/b]")]
    pl.DataFrame(rows).write_csv(tmp / "preds.csv")
    cfg = _imported_config(tmp / "c.toml", root, tmp / "preds.csv")
    out = tmp / "run"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--no-progress"], env=WIDE)
    assert res.exit_code == 0, res.output
    rep = runner.invoke(app, ["report", str(out), "--workers", "0", "--resamples", "20"])
    assert rep.exit_code == 0, rep.output
    return out, " ".join(res.output.split())


def test_excluded_clips_are_counted_on_the_console_and_in_the_report(excluded_run):
    out, console = excluded_run
    problems = json.loads((out / "manifest.json").read_text())["datasets"]["listfile"]
    assert problems["problem_counts"] == {"missing-media": 2, "unknown-label": 1}
    assert re.search(r"listfile: 3 clip\(s\) excluded", console), console
    assert "2 missing-media" in console and "1 unknown-label" in console
    for name in ("summary.md", "report.html"):
        text = " ".join((out / "report" / name).read_text().split())
        assert "3 clip(s) excluded" in text, name
        assert "missing-media" in text and "test/test4" in text, name


def test_imported_rows_for_training_clips_warn_on_the_console(excluded_run):
    _, console = excluded_run
    assert re.search(r"warning: .*training clip.*possible leak", console), console
    assert "train/train0" in console and "train/t[/b]" in console
