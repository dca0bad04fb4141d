"""Tests for emobench.report: figures, summary.md, report.html and the CLI command.

A small run folder is built here with a fixed RNG (3 models, frame-count sweep, original
and shuffled order, 2 folds, 7 labels, skewed training counts, a few invalid answers) and
reported once; the numbers in summary.md are checked against scikit-learn.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from conftest import fake_predictions, fake_run
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, recall_score
from typer.testing import CliRunner

from emobench.config import MetricsConfig
from emobench.report import analysis as an
from emobench.report.build import ReportOptions, parse_formats, parse_reference, report_run
from emobench.report.cli import report
from emobench.results import RunFolder

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust"]
TRAIN = {"neutral": 300, "happiness": 220, "sadness": 150, "anger": 90, "surprise": 50}
TRAIN |= {"fear": 25, "disgust": 10}
MODELS = ("baseline:tiny", "openclip:ViT-T", "hf:tiny-vlm")
CLIPS_PER_FOLD = 60
DPI = 150


def _predictions(rng: np.random.Generator) -> pl.DataFrame:
    share = np.array([TRAIN[lab] for lab in LABELS], dtype=float)
    share /= share.sum()
    test_share = 0.5 * share + 0.5 / len(LABELS)
    frames = []
    for fold in (1, 2):
        y = rng.choice(len(LABELS), size=CLIPS_PER_FOLD, p=test_share)
        clips = [f"f{fold}c{i:03d}" for i in range(CLIPS_PER_FOLD)]
        for m, model in enumerate(MODELS):
            densities = (4.0,) if model.startswith("hf:") else (2.0, 4.0, 8.0)
            for density in densities:
                for order in ("original", "shuffle"):
                    acc = 0.35 + 0.05 * m + 0.03 * np.log2(density)
                    acc -= 0.08 if (order == "shuffle" and m == 0) else 0.0
                    ok = rng.random(CLIPS_PER_FOLD) < acc
                    pred = np.where(ok, y, rng.choice(len(LABELS), size=CLIPS_PER_FOLD, p=share))
                    names = np.array(LABELS, dtype=object)[pred]
                    if model.startswith("hf:"):
                        names[rng.random(CLIPS_PER_FOLD) < 0.1] = "invalid"
                    frames.append(
                        fake_predictions(
                            cell_id=f"{model}/uniform:{int(density)}/{order}",
                            model=model,
                            fold=fold,
                            clip_ids=clips,
                            labels=np.array(LABELS)[y],
                            preds=names.astype(str),
                            sampler=f"uniform:{int(density)}",
                            density=density,
                            order=order,
                        )
                    )
    return pl.concat(frames)


def _write_run(root: Path, predictions: pl.DataFrame, *, train: bool = True) -> RunFolder:
    cells = predictions.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    return fake_run(
        root,
        predictions,
        labels=LABELS,
        train_counts={"1": TRAIN, "2": TRAIN} if train else {},
        n_clips=2 * CLIPS_PER_FOLD,
        cells=cells,
        config={"preset": "test", "folds": 2},
        skipped=[
            {"cell_id": cells[0]["cell_id"], "fold": 1, "clip_id": "zz1", "reason": "unreadable"},
            {"cell_id": cells[0]["cell_id"], "fold": 2, "clip_id": "zz2", "reason": "unreadable"},
        ],
        seeds={"run": 0},
        packages=("numpy", "polars"),
    )


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunFolder, pl.DataFrame, Path]:
    predictions = _predictions(np.random.default_rng(7))
    run = _write_run(tmp_path_factory.mktemp("run") / "r1", predictions)
    out = report_run(run.path, ReportOptions(n_resamples=200))
    return run, predictions, out


def _figure_names(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / "figures").glob("*.png"))


def test_every_figure_has_png_and_svg_with_paper_sizes(reported):
    _, _, out = reported
    assert out == reported[0].report_dir
    names = _figure_names(out)
    expected = {
        "confusion-grid_synth": 7.0,
        "longtail-recall_synth": 3.5,
        "density_synth_frames": 7.0,
        "f1-vs-prior_synth_train_freq": 7.0,
        "f1-vs-prior_synth_web_word_freq": 7.0,
    }
    for stem in expected:
        assert stem in names
    confusion = [n for n in names if n.startswith("confusion_")]
    # each model's reference sampling: uniform:8 (or uniform:4 for hf) x two orders
    assert len(confusion) == 6
    assert any("baseline-tiny_uniform-8_original" in n for n in confusion)
    assert any("hf-tiny-vlm_uniform-4_shuffle" in n for n in confusion)
    for stem in names:
        assert re.fullmatch(r"[a-z0-9._-]+", stem), stem
        svg = (out / "figures" / f"{stem}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        with Image.open(out / "figures" / f"{stem}.png") as im:
            w, h = im.size
        if stem in expected:
            assert w == round(expected[stem] * DPI), stem
        else:  # single-column confusion matrices, grown for the invalid column if needed
            assert 3.5 * DPI <= w <= 5.0 * DPI, (stem, w)
        assert 2.0 * DPI <= h <= 6.0 * DPI, (stem, h)


def test_html_is_self_contained(reported):
    _, _, out = reported
    html = (out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == len(_figure_names(out))
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"<link|<script|https?://|url\(", html)
    assert "<table>" in html and "emobench report: test-run" in html


def _overall_rows(summary: str) -> dict[str, dict[str, str]]:
    """Parse the overall table of summary.md: cell id -> {column: cell text}."""
    section = summary.split("## Overall metrics per cell", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [h.strip() for h in lines[0].strip("|").split(" | ")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))]
        row = dict(zip(header, cells, strict=True))
        rows[row["cell"].strip("`").replace("\\|", "|")] = row
    return rows


def _sk_fold_metrics(df: pl.DataFrame) -> tuple[list[float], list[float]]:
    """Per-fold macro-F1 and UAR from scikit-learn (macro over classes with support)."""
    f1s, uars = [], []
    for fold in sorted(df["fold"].unique().to_list()):
        part = df.filter(pl.col("fold") == fold)
        y, p = part["label"].to_list(), part["pred"].to_list()
        present = [lab for lab in LABELS if lab in set(y)]
        f1s.append(f1_score(y, p, labels=present, average="macro", zero_division=0))
        uars.append(recall_score(y, p, labels=present, average="macro", zero_division=0))
    return f1s, uars


def test_summary_numbers_equal_sklearn(reported):
    _, predictions, out = reported
    summary = (out / "summary.md").read_text()
    rows = _overall_rows(summary)
    cell_ids = predictions["cell_id"].unique().to_list()
    assert set(rows) == set(cell_ids)
    for cid in cell_ids:
        f1s, uars = _sk_fold_metrics(predictions.filter(pl.col("cell_id") == cid))
        for col, vals in (("macro-F1", f1s), ("UAR", uars)):
            mean, std = np.mean(vals), np.std(vals, ddof=1)
            assert rows[cid][col] == f"{mean:.3f} ± {std:.3f}", (cid, col)
        lo, hi = (float(x) for x in rows[cid]["macro-F1 95% CI"].strip("[]").split(","))
        assert lo <= np.mean(f1s) + 1e-3 and np.mean(f1s) - 1e-3 <= hi


def test_metrics_parquet_written_when_missing(reported):
    from emobench.results.metrics_table import compute_metrics

    run, predictions, _ = reported
    assert run.metrics_path.is_file()
    stored = run.read_metrics()
    expected = compute_metrics(
        predictions, run.read_manifest(), MetricsConfig(n_resamples=200, seed=0)
    )
    assert stored.height == expected.height
    assert stored.select("rule").unique().item() == "relative"


def test_order_table_against_independent_tests(reported):
    from scipy import stats

    _, predictions, out = reported
    summary = (out / "summary.md").read_text()
    section = summary.split("## Frame order", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| baseline:tiny | uniform:8")]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split(" | ")]
    a = predictions.filter(pl.col("cell_id") == "baseline:tiny/uniform:8/original")
    b = predictions.filter(pl.col("cell_id") == "baseline:tiny/uniform:8/shuffle")
    joined = a.join(b.select("fold", "clip_id", pl.col("pred").alias("pb")), on=["fold", "clip_id"])
    # Δ (fold mean) = difference of the fold-mean macro-F1 (scikit-learn)
    diff = np.mean(_sk_fold_metrics(b)[0]) - np.mean(_sk_fold_metrics(a)[0])
    assert cells[5] == f"{diff:+.3f}"
    # pooled Δ on matched clips
    y = joined["label"].to_list()
    present = [lab for lab in LABELS if lab in set(y)]

    def macro_f1(pred: list[str]) -> float:
        return f1_score(y, pred, labels=present, average="macro", zero_division=0)

    pooled = macro_f1(joined["pb"].to_list()) - macro_f1(joined["pred"].to_list())
    assert cells[6].startswith(f"{pooled:+.3f} [")
    # McNemar from the discordant pairs, by hand
    ok_a = joined["pred"] == joined["label"]
    ok_b = joined["pb"] == joined["label"]
    nb, nc = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    if nb + nc < 25:
        p = min(1.0, 2 * stats.binom.cdf(min(nb, nc), nb + nc, 0.5))
    else:
        p = stats.chi2.sf((abs(nb - nc) - 1) ** 2 / (nb + nc), 1)
    assert cells[8] == ("<0.001" if p < 0.001 else f"{p:.3f}")
    assert cells[9] == str(2 * CLIPS_PER_FOLD)


def test_long_tail_prior_and_settings_sections(reported):
    run, _, out = reported
    summary = (out / "summary.md").read_text()
    assert "Grouping rule `relative`" in summary
    for col in ("head recall", "tail recall", "head−tail gap", "collapse rate", "neutral sink"):
        assert col in summary
    assert "WAR−UAR" in summary
    # skipped clips and reproducibility facts
    assert "| 2 | unreadable (2) |" in summary
    assert "`f00d`" in summary and '"preset": "test"' in summary
    assert "Spearman ρ" in summary
    # per-class table ordered head -> tail by training count
    section = summary.split("## Per-class F1", 1)[1]
    order = [ln.split(" | ")[0].strip("| ") for ln in section.splitlines() if ln.startswith("| ")]
    order = [x for x in order if x in LABELS]
    assert order == sorted(LABELS, key=lambda lab: -TRAIN[lab])


def test_confusions_equal_sklearn(reported):
    run, predictions, _ = reported
    infos = an.dataset_infos(run.read_manifest(), predictions, rule="relative")
    conf = an.cell_confusions(predictions, infos)
    order = list(infos["synth"].labels)
    for cid in ("hf:tiny-vlm/uniform:4/original", "baseline:tiny/uniform:2/shuffle"):
        part = predictions.filter(pl.col("cell_id") == cid)
        ref = sk_confusion(part["label"], part["pred"], labels=[*order, "invalid"])[:-1]
        np.testing.assert_array_equal(conf[cid].pooled, ref)
        assert conf[cid].folds == (1, 2)


def test_fold_mean_ci_is_the_metrics_modules_and_brackets_the_value():
    from emobench.metrics import fold_mean_ci, overall

    rng = np.random.default_rng(3)
    labels = LABELS[:5]
    y = rng.choice(labels, size=200).tolist()
    p = rng.choice([*labels, "invalid"], size=200).tolist()
    cm = np.zeros((5, 6), dtype=np.int64)
    for t, q in zip(y, p, strict=True):
        cm[labels.index(t), labels.index(q) if q in labels else 5] += 1
    want = overall(y, p, labels)
    assert an.fold_mean_ci is fold_mean_ci  # the report reuses the metrics table's bootstrap
    ci = an.fold_mean_ci(np.stack([cm, cm]), n_resamples=300, seed=0)
    assert ci["macro_f1"][0] < want["macro_f1"] < ci["macro_f1"][1]
    assert ci == an.fold_mean_ci(np.stack([cm, cm]), n_resamples=300, seed=0)


def test_tiny_run_without_train_counts_does_not_crash(tmp_path):
    predictions = _predictions(np.random.default_rng(1)).filter(
        (pl.col("model") == "hf:tiny-vlm") & (pl.col("order") == "original")
    )
    run = _write_run(tmp_path / "tiny", predictions, train=False)
    out = report_run(run.path, ReportOptions(out=tmp_path / "rep", formats="md", n_resamples=50))
    assert out == tmp_path / "rep"
    assert (out / "summary.md").is_file() and not (out / "report.html").exists()
    summary = (out / "summary.md").read_text()
    assert "no head/medium/tail groups" in summary
    assert "single density" in summary
    assert "no cells that differ only in frame order" in summary
    assert "prior `train_freq` is unavailable" in summary
    assert [n for n in _figure_names(out) if n.startswith("confusion_")]


def test_rule_change_recomputes_without_touching_file(reported, tmp_path):
    run, _, _ = reported
    before = run.metrics_path.stat().st_mtime_ns
    options = ReportOptions(out=tmp_path / "abs", rule="absolute", n_resamples=50, max_confusion=0)
    out = report_run(run.path, options)
    summary = (out / "summary.md").read_text()
    assert "Grouping rule `absolute`" in summary and "many recall" in summary
    assert "left unchanged" in summary
    assert run.metrics_path.stat().st_mtime_ns == before


def test_option_parsing_errors():
    from emobench.errors import EmobenchError

    assert parse_formats("html, md") == ("html", "md")
    with pytest.raises(EmobenchError, match="pdf"):
        parse_formats("md,pdf")
    assert parse_reference(["density=8", "order=original"]) == {
        "density": "8",
        "order": "original",
    }
    with pytest.raises(EmobenchError, match="KEY=VALUE"):
        parse_reference(["density"])
    with pytest.raises(EmobenchError, match="colour"):
        parse_reference(["colour=red"])
    assert an.slug("openclip:ViT-B/32", "fps:5", 8.0) == "openclip-vit-b-32_fps-5_8"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report)

    @app.command()
    def other() -> None:  # a second command so `report` is addressed by name
        """Unused."""

    return app


def test_cli_missing_run_folder_is_one_error_line(tmp_path):
    result = CliRunner().invoke(_cli(), ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "no such run folder" in lines[0]


def test_cli_missing_manifest_is_one_error_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _predictions(np.random.default_rng(0)).head(5).write_parquet(run_dir / "predictions.parquet")
    result = CliRunner().invoke(_cli(), ["report", str(run_dir)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "manifest.json" in lines[0]


def test_cli_bad_option_and_success(reported, tmp_path):
    run, _, _ = reported
    bad = CliRunner().invoke(_cli(), ["report", str(run.path), "--prior", "nope"])
    assert bad.exit_code == 1 and "unknown prior 'nope'" in bad.output
    ok = CliRunner().invoke(
        _cli(),
        ["report", str(run.path), "--out", str(tmp_path / "o"), "--format", "html"]
        + ["--resamples", "50", "--max-confusion", "1", "--reference", "density=2"]
        + ["--workers", "0"],
    )
    assert ok.exit_code == 0, ok.output
    assert "report written to" in ok.output and (tmp_path / "o" / "report.html").is_file()
    assert not (tmp_path / "o" / "summary.md").exists()
    html = (tmp_path / "o" / "report.html").read_text()
    assert "<code>hf:tiny-vlm</code> has no cell with density=2" in html
    confusion = [n for n in _figure_names(tmp_path / "o") if n.startswith("confusion_")]
    assert len(confusion) == 1 and "uniform-2_original" in confusion[0]


def test_report_imports_neither_torch_nor_heavy_libs_for_help():
    code = (
        "import sys; import emobench.report.cli; "
        "assert not {'polars', 'matplotlib'} & set(sys.modules); "
        "import emobench.report.build; "
        "bad = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stale_metrics_are_recomputed_not_overwritten(tmp_path):
    from emobench.results.metrics_table import compute_metrics

    predictions = _predictions(np.random.default_rng(2)).filter(pl.col("model") == "hf:tiny-vlm")
    run = _write_run(tmp_path / "stale", predictions)
    one_cell = predictions.filter(pl.col("order") == "original")
    run.write_metrics(compute_metrics(one_cell, run.read_manifest(), MetricsConfig(n_resamples=20)))
    before = run.metrics_path.read_bytes()
    out = report_run(run.path, ReportOptions(formats=["md"], n_resamples=20, max_confusion=0))
    summary = (out / "summary.md").read_text()
    assert "stale?" in summary
    assert set(_overall_rows(summary)) == set(predictions["cell_id"].unique().to_list())
    assert run.metrics_path.read_bytes() == before


@pytest.mark.parametrize("workers", [0, 1])
def test_figure_jobs_run_and_propagate_errors(tmp_path, workers):
    import shutil

    from emobench.report.jobs import FigureJobs

    src = tmp_path / "src.txt"
    src.write_text("x")
    jobs = FigureJobs(workers)
    assert jobs.parallel == (workers > 0)
    with pytest.raises(FileNotFoundError):
        jobs.submit(shutil.copyfile, str(src), str(tmp_path / "a.txt"))
        jobs.submit(shutil.copyfile, str(tmp_path / "missing"), str(tmp_path / "b.txt"))
        jobs.wait()
    jobs.close()
    assert (tmp_path / "a.txt").read_text() == "x"
    assert not jobs.parallel


def _cells(rows: list[tuple[str, str, str, str, str, str]]) -> pl.DataFrame:
    """A hand-built cells table: (cell_id, dataset, sampler, order, rebalancing, prior)."""
    cols = ("cell_id", "dataset", "sampler", "order", "rebalancing", "prior_correction")
    df = pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    return df.with_columns(
        pl.lit("m").alias("model"),
        pl.col("sampler").str.split(":").list.last().cast(pl.Float64).alias("density"),
        pl.lit("frames").alias("density_unit"),
        pl.lit("none").alias("enrichment"),
        pl.lit(0).alias("seed"),
    )


def test_switch_pairs_hand_built():
    from emobench.results import SETTING_COLUMNS

    cells = _cells(
        [
            ("a", "ds", "u:8", "original", "instance-balanced", "none"),
            ("b", "ds", "u:8", "original", "instance-balanced", "logit-adjust"),
            ("c", "ds", "u:8", "original", "class-balanced", "none"),
            ("d", "ds", "u:8", "original", "class-balanced", "logit-adjust"),
            # no prior-off cell at u:4, and e is itself the re-balancing reference
            ("e", "ds", "u:4", "original", "instance-balanced", "batch-calibration"),
            # no instance-balanced cell with shuffled order
            ("f", "ds", "u:8", "shuffle", "square-root", "none"),
            # same settings as b but another dataset: no counterpart there
            ("g", "other", "u:8", "original", "instance-balanced", "logit-adjust"),
        ]
    )
    assert an.switch_pairs(cells, SETTING_COLUMNS, "prior_correction") == [("a", "b"), ("c", "d")]
    assert an.switch_pairs(cells, SETTING_COLUMNS, "rebalancing") == [("a", "c"), ("b", "d")]
    assert an.switch_pairs(cells, SETTING_COLUMNS, "enrichment") == []
    assert an.switch_pairs(cells.drop("rebalancing"), SETTING_COLUMNS, "rebalancing") == []
    # older runs wrote "none" for plain training: still the re-balancing reference
    assert an.is_reference("rebalancing", "none") and an.is_reference("rebalancing", None)
    assert an.is_reference("rebalancing", "Instance-Balanced")
    assert not an.is_reference("rebalancing", "class-balanced")
    assert not an.is_off("instance-balanced")


TAIL = ("surprise", "fear", "disgust")  # relative rule: < 0.2 x 300 training clips


def _switch_rows(summary: str) -> dict[str, dict[str, str]]:
    """Parse the switch tables of summary.md: switch column text -> {column: cell text}."""
    section = summary.split("## Long-tail switches", 1)[1].split("\n## ", 1)[0]
    rows, header = {}, None
    for ln in section.splitlines():
        if not ln.startswith("|") or set(ln) <= set("|-: "):
            continue
        cells = [c.strip() for c in ln.strip().strip("|").split(" | ")]
        if cells[0] == "model":
            header = cells
            continue
        assert header is not None
        row = dict(zip(header, cells, strict=True))
        rows[cells[2]] = row
    return rows


def _fold_mean_recalls(df: pl.DataFrame) -> tuple[float, float]:
    """Fold means of UAR and of the mean tail-class recall, by scikit-learn."""
    uars, tails = [], []
    for fold in sorted(df["fold"].unique().to_list()):
        part = df.filter(pl.col("fold") == fold)
        y, p = part["label"].to_list(), part["pred"].to_list()
        present = [lab for lab in LABELS if lab in set(y)]
        uars.append(recall_score(y, p, labels=present, average="macro", zero_division=0))
        tail = [lab for lab in TAIL if lab in set(y)]
        tails.append(recall_score(y, p, labels=tail, average="macro", zero_division=0))
    return float(np.mean(uars)), float(np.mean(tails))


def test_switch_section_deltas_equal_sklearn(tmp_path):
    rng = np.random.default_rng(11)
    base = _predictions(rng).filter(
        (pl.col("model") == "hf:tiny-vlm") & (pl.col("order") == "original")
    )
    base = base.with_columns(pl.lit("instance-balanced").alias("rebalancing"))
    tail_rows = base["label"].is_in(TAIL).to_numpy()

    def variant(suffix: str, fix: float, **settings: str) -> pl.DataFrame:
        # switch some tail clips to their true label
        pred = np.where(tail_rows & (rng.random(base.height) < fix), base["label"], base["pred"])
        return base.with_columns(
            (pl.col("cell_id") + suffix).alias("cell_id"),
            pl.Series("pred", pred),
            *[pl.lit(v).alias(k) for k, v in settings.items()],
        )

    prior = variant("/la", 0.6, prior_correction="logit-adjust")
    rebal = variant("/cb", 0.3, rebalancing="class-balanced")
    predictions = pl.concat([base, prior, rebal])
    run = _write_run(tmp_path / "switch", predictions)
    out = report_run(run.path, ReportOptions(formats="md", n_resamples=20, max_confusion=0))
    summary = (out / "summary.md").read_text()
    assert "## Long-tail switches: effect of prior correction and re-balancing" in summary
    rows = _switch_rows(summary)
    assert set(rows) == {"none → logit-adjust", "instance-balanced → class-balanced"}
    uar0, tail0 = _fold_mean_recalls(base)
    for key, df in (("none → logit-adjust", prior), ("instance-balanced → class-balanced", rebal)):
        uar1, tail1 = _fold_mean_recalls(df)
        row = rows[key]
        assert row["model"] == "hf:tiny-vlm"
        assert row["UAR"] == f"{uar0:.3f} → {uar1:.3f} ({uar1 - uar0:+.3f})"
        assert row["tail recall"] == f"{tail0:.3f} → {tail1:.3f} ({tail1 - tail0:+.3f})"
        assert uar1 > uar0 and tail1 > tail0
    assert "No prior-correction / re-balancing pairs" not in summary


def test_switch_section_says_when_no_switch_varies(reported):
    _, _, out = reported
    summary = (out / "summary.md").read_text()
    section = summary.split("## Long-tail switches", 1)[1].split("\n## ", 1)[0]
    assert "no cells that differ only in prior correction or re-balancing" in section
    assert "No prior-correction / re-balancing pairs" in summary


def test_reference_cell_has_every_switch_at_its_reference_value():
    # cell ids sort class-balanced first: the choice must not fall back to the id
    cells = _cells(
        [
            ("a-cb", "ds", "u:8", "original", "class-balanced", "none"),
            ("b-ib-ep", "ds", "u:8", "original", "instance-balanced", "estimated-prior"),
            ("c-ib", "ds", "u:8", "original", "instance-balanced", "none"),
        ]
    )
    assert an.reference_cells(cells)[("ds", "m")]["cell_id"] == "c-ib"


def test_web_word_freq_prior_sums_wordfreq_of_the_prompt_words():
    wordfreq = pytest.importorskip("wordfreq")
    from emobench.report.priors import get_prior

    prior = get_prior("web_word_freq_synonyms").fn(
        {}, "any", ["happiness", "disgust", "no-such-class"]
    )
    happy = sum(
        wordfreq.word_frequency(w, "en") for w in ("happy", "smiling", "cheerful", "joyful")
    )
    assert prior["happiness"] == pytest.approx(happy)
    assert prior["disgust"] == pytest.approx(
        wordfreq.word_frequency("disgusted", "en") + wordfreq.word_frequency("revolted", "en")
    )
    assert "no-such-class" not in prior and prior["happiness"] > 10 * prior["disgust"]


def test_markdown_lead_figures_sit_side_by_side():
    """summary.md shows the lead figures two to a row: a table per row whose header holds
    the findings' titles, then the images, then their captions (pipes escaped)."""
    from emobench.report.document import Document, Figure, FigureGrid, render_markdown

    figs = tuple(Figure(f"figures/f{i}.png", f"figures/f{i}.svg", f"cap {i} | x") for i in range(3))
    doc = Document("t")
    doc.add(FigureGrid(figs, ("1. Head bias", "2. Order", "3. Density")))
    lines = render_markdown(doc).splitlines()
    first = lines.index("| **1. Head bias** | **2. Order** |")
    assert lines[first + 1] == "|---|---|"
    assert lines[first + 2] == (
        "| ![cap 0 \\| x](figures/f0.png) | ![cap 1 \\| x](figures/f1.png) |"
    )
    assert lines[first + 3].startswith("| *cap 0 \\| x* ([PNG](figures/f0.png), [SVG](")
    second = lines.index("| **3. Density** |")
    assert lines[second + 1] == "|---|" and "figures/f2.png" in lines[second + 2]
