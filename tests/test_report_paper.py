"""For paper-* runs the report puts the study's published numbers beside the run's own,
with the difference; other runs get no such table. Also: one fold prints no "± 0.000"."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
from conftest import fake_predictions

from emobench.report.build import ReportOptions, report_run
from emobench.report.section_paper import STUDY_F1, STUDY_FPS, STUDY_MSCE

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust"]
MODEL = "qwen2.5-vl-7b"
N = 70


def _run(root, run_name: str):
    from emobench.results import RunFolder, build_manifest

    rng = np.random.default_rng(0)
    y = np.array(LABELS)[rng.integers(0, len(LABELS), N)]
    frames, cells = [], []
    variants = [
        ("uniform:8", 8.0, "frames", "original", "none"),
        ("uniform:8", 8.0, "frames", "shuffle", "none"),
        ("uniform:8", 8.0, "frames", "original", "msce"),
        *[(f"fps:{f:g}", f, "fps", "original", "none") for f in (1.0, 5.0, 25.0)],
    ]
    for sampler, density, unit, order, enrichment in variants:
        cid = f"{MODEL}/{sampler}/{order}/{enrichment}"
        ok = rng.random(N) < 0.3 + 0.01 * density
        pred = np.where(ok, y, np.array(LABELS)[rng.integers(0, len(LABELS), N)])
        frames.append(
            fake_predictions(
                cell_id=cid,
                model=MODEL,
                fold=1,
                clip_ids=[f"c{i}" for i in range(N)],
                labels=y,
                preds=pred,
                dataset="mafw",
                sampler=sampler,
                density=density,
                density_unit=unit,
                order=order,
                enrichment=enrichment,
            )
        )
        cells.append({"cell_id": cid, "model": MODEL})
    manifest = build_manifest(
        run_name=run_name,
        config={"preset": run_name, "models": [{"name": MODEL, "adapter": "hf:Qwen/x"}]},
        datasets={
            "mafw": {
                "fingerprint": "f",
                "labels": LABELS,
                "train_counts": {"1": dict.fromkeys(LABELS, 10)},
                "n_clips": N,
            }
        },
        cells=cells,
    )
    run = RunFolder(root)
    run.write_manifest(manifest)
    run.write_predictions(pl.concat(frames))
    return run


def _rows(summary: str, caption: str) -> list[list[str]]:
    part = summary.split(f"*{caption}*", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in part.splitlines()[2:]]


def test_paper_run_shows_the_study_beside_the_run(tmp_path):
    run = _run(tmp_path / "r", "paper-shuffle-mafw")
    out = report_run(run.path, ReportOptions(formats=["md"], n_resamples=20, max_confusion=0))
    summary = (out / "summary.md").read_text()
    assert "## The study's numbers beside this run's" in summary
    metrics = run.read_metrics().filter(
        pl.col("fold").is_null() & (pl.col("scope") == "overall") & (pl.col("metric") == "macro_f1")
    )
    f1 = dict(zip(metrics["cell_id"], metrics["value"], strict=True))
    orig, shuf = STUDY_F1["Qwen2.5-VL"]["mafw"]
    (row,) = _rows(summary, "Original → shuffled frame order (Table 1)")
    assert row[0] == f"Qwen2.5-VL (`{MODEL}`)" and row[2] == f"{orig:.3f} → {shuf:.3f}"
    # the run's reference cell is the densest sampling (25 fps), shuffled twin: none here
    r = f1[f"{MODEL}/fps:25/original/none"]
    assert row[3] == f"{r:.3f} → –" and row[4] == f"{r - orig:+.3f} / –"
    fps = {float(r[2]): r for r in _rows(summary, "Macro-F1 vs input FPS")}
    assert set(fps) == set(STUDY_FPS["mafw"])
    for x, study in STUDY_FPS["mafw"].items():
        run_f1 = f1[f"{MODEL}/fps:{x:g}/original/none"]
        assert fps[x][4] == f"{run_f1:.3f}" and fps[x][5] == f"{run_f1 - study:+.3f}"
    assert STUDY_MSCE["mafw"] == (0.2449, 0.2731)
    # one fold: no spread is printed anywhere
    assert not re.search(r"± 0\.000", summary)


def test_other_runs_have_no_study_table(tmp_path):
    run = _run(tmp_path / "r", "my-run")
    out = report_run(run.path, ReportOptions(formats=["md"], n_resamples=20, max_confusion=0))
    assert "The study's numbers" not in (out / "summary.md").read_text()
