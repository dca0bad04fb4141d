"""The emobench CLI: help is fast and complete; data/run/report commands on tiny data."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import make_synth
from typer.testing import CliRunner

from emobench.cli import app

runner = CliRunner()


def test_help_lists_commands_and_avoids_heavy_imports():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("run", "report", "models", "data"):
        assert cmd in res.output
    code = (
        "import sys, time; t = time.perf_counter(); import emobench.cli; "
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'matplotlib', 'polars') "
        "if m in sys.modules]; print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(seconds) < 3.0  # no heavy import: 0.2 s here, generous for slow disks


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--help"],
        ["report", "--help"],
        ["data", "--help"],
        ["data", "generate", "synth", "--help"],
        ["data", "show", "--help"],
    ],
)
def test_every_command_has_help(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_data_list_and_show_on_generated_set(tmp_path):
    root = make_synth(tmp_path / "d", n_train=14, n_test=7, n_train_subjects=3, micro_share=0.3)
    res = runner.invoke(app, ["data", "list"])
    assert res.exit_code == 0 and "synth" in res.output
    res = runner.invoke(app, ["data", "show", str(root)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "clips per class" in res.output and "micro_share" in res.output
    # 14 train + 7 test clips of 1 s at 25 fps
    assert "train" in res.output and "25" in res.output


def test_data_show_missing_folder_is_one_error_line(tmp_path):
    res = runner.invoke(app, ["data", "show", str(tmp_path / "nope")])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_run_list_presets_and_bad_inputs(tmp_path):
    res = runner.invoke(app, ["run", "--list-presets"])
    assert res.exit_code == 0 and "quickstart" in res.output
    res = runner.invoke(app, ["run", "nope"])
    assert res.exit_code == 1 and "unknown preset 'nope'" in res.output
    res = runner.invoke(app, ["run", "--set", 'sweep.order=["sideways"]', "--dry-run"])
    assert res.exit_code == 1 and "sweep.order: unknown frame order 'sideways'" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[[datasets]]\nname = "synth"\nroot = "/nonexistent/x"\n'
        '[[models]]\nadapter = "baseline:gru"\n'
    )
    t = time.perf_counter()
    res = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert res.output.startswith("error:") and "annotations" in res.output
    assert time.perf_counter() - t < 30


def test_run_dry_run_then_run_then_report(tmp_path):
    root = make_synth(tmp_path / "d", n_train=28, n_test=14, seed=5)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'name = "cli"\n[[datasets]]\nname = "synth"\nroot = "{root}"\n'
        '[[models]]\nadapter = "baseline:mean"\n'
        "options = { frame_size = 32, encoder = { widths = [8, 16] } }\n"
        '[sweep]\nsampler = ["uniform:2,4"]\n[train]\nepochs = 1\n[metrics]\nn_resamples = 20\n'
    )
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["run", str(cfg), "--out", str(out), "--dry-run"], env={"COLUMNS": "250"}
    )
    assert res.exit_code == 0, res.output
    assert "0 of 2 already done" in res.output
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (out / "predictions.parquet").is_file() and (out / "manifest.json").is_file()
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--no-progress"])
    assert "2 already done, 0 computed" in res.output
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report" / "summary.md").is_file()
    assert (out / "report" / "report.html").is_file()


def test_models_lists_baselines():
    res = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "baseline:gru" in res.output


def test_progress_bar_shows_counts_and_the_task_field():
    import io

    from rich.console import Console

    from emobench.progress import progress_bar

    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    with progress_bar(field="rate", console=console, auto_refresh=False) as bar:
        task = bar.add_task("test clips", total=5, rate="3.0 clips/s")
        bar.update(task, completed=2)
        bar.refresh()
    text = buf.getvalue()
    assert "test clips" in text and "2/5" in text and "3.0 clips/s" in text and "ETA" in text


def test_phase_progress_makes_one_task_per_phase_with_its_loss():
    import io

    from rich.console import Console

    from emobench.progress import PhaseProgress

    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    with PhaseProgress({"train": "training steps"}, default="evaluation", console=console,
                       auto_refresh=False) as report:  # fmt: skip
        report(3, 10, {"phase": "train", "loss": 1.23456})
        report(4, 10, {"phase": "train", "loss": 0.5})
        report(7, 20, {"phase": "eval-0"})
        report.bar.refresh()
        tasks = report.bar.tasks
    assert [t.description for t in tasks] == ["training steps", "evaluation"]
    assert [(t.completed, t.total) for t in tasks] == [(4, 10), (7, 20)]
    text = buf.getvalue()
    assert "4/10" in text and "loss 0.500" in text and "7/20" in text
