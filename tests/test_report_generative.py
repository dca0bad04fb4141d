"""Report sections for generative cells (invalid answers, unparsed raw answers) and the MSCE
enrichment table, on fake runs built with the conftest factories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import fake_predictions, fake_run
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from emobench.answers import parse_answer
from emobench.report import analysis as an
from emobench.report import generative as gen
from emobench.report.build import ReportOptions, report_run
from emobench.report.section_generative import answer_text

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust"]
TRAIN = {"neutral": 200, "happiness": 150, "sadness": 90, "anger": 60, "surprise": 30}
TRAIN |= {"fear": 15, "disgust": 8}
GEN = "hf:tiny-vlm"
CLIPS = 48
RESAMPLES = 300
#: Answers that do not parse, with their sampling weights (a few dominate).
JUNK = ["I cannot tell.", "", "The person is not happy.", "happy or sad", "Unclear.", "contempt"]
JUNK_P = np.array([0.35, 0.2, 0.15, 0.12, 0.1, 0.08])
PHRASES = {lab: f"The person looks {lab}." for lab in LABELS} | {
    "happiness": "Happy.",
    "sadness": "<think>eyes down</think> sad",
    "anger": "**Angry**",
}
#: Generative cells: (enrichment, frames K); the msce cells pair with none at the same K.
GEN_CELLS = [
    ("none", 8),
    ("msce", 8),
    ("msce-text", 8),
    ("msce-dense", 8),
    ("none", 4),
    ("msce", 4),
]


def _predictions(rng: np.random.Generator) -> pl.DataFrame:
    frames = []
    for fold in (1, 2):
        y = np.array(LABELS, dtype=object)[rng.integers(0, len(LABELS), CLIPS)]
        clips = [f"f{fold}c{i:03d}" for i in range(CLIPS)]
        micro = [i % 3 == 0 for i in range(CLIPS)]
        frames.append(
            fake_predictions(
                cell_id="baseline/uniform:8",
                model="baseline:tiny",
                fold=fold,
                clip_ids=clips,
                labels=list(y),
                preds=[lab if rng.random() < 0.5 else LABELS[0] for lab in y],
                micro=micro,
            )
        )
        for enrichment, k in GEN_CELLS:
            acc = 0.4 + (0.15 if enrichment != "none" else 0.0)
            texts = []
            for lab in y:
                r = rng.random()
                if r < 0.2:
                    texts.append(str(rng.choice(JUNK, p=JUNK_P)))
                elif r < 0.2 + acc:
                    texts.append(PHRASES[lab])
                else:
                    texts.append(PHRASES[LABELS[rng.integers(0, len(LABELS))]])
            frames.append(
                fake_predictions(
                    cell_id=f"{GEN}/uniform:{k}/{enrichment}",
                    model=GEN,
                    fold=fold,
                    clip_ids=clips,
                    labels=list(y),
                    preds=[parse_answer(t, LABELS) for t in texts],
                    sampler=f"uniform:{k}",
                    density=float(k),
                    enrichment=enrichment,
                    raw_text=texts,
                    micro=micro,
                )
            )
    return pl.concat(frames, how="diagonal_relaxed")


def _write(root: Path, predictions: pl.DataFrame):
    cells = predictions.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    return fake_run(
        root,
        predictions,
        labels=LABELS,
        train_counts={"1": TRAIN, "2": TRAIN},
        n_clips=2 * CLIPS,
        cells=cells,
    )


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory):
    run = _write(tmp_path_factory.mktemp("gen") / "run", _predictions(np.random.default_rng(3)))
    out = report_run(run.path, ReportOptions(n_resamples=RESAMPLES, seed=5, prior="train_freq"))
    return run.read_predictions(), out, (out / "summary.md").read_text()


def test_invalid_rates_equal_a_hand_count(reported):
    preds, _, summary = reported
    cells = gen.generative_cells(preds)
    assert sorted(cells) == sorted(f"{GEN}/uniform:{k}/{e}" for e, k in GEN_CELLS)
    rates = gen.invalid_rates(preds, cells)
    for cid in cells:
        rows = [r for r in preds.iter_rows(named=True) if r["cell_id"] == cid]
        n, k = len(rows), sum(r["pred"] == "invalid" for r in rows)
        got = rates.filter((pl.col("cell_id") == cid) & pl.col("label").is_null()).row(
            0, named=True
        )
        assert (got["n"], got["n_invalid"]) == (n, k)
        assert got["rate"] == pytest.approx(k / n)
        for lab in LABELS:
            sub = [r for r in rows if r["label"] == lab]
            if not sub:
                continue
            got = rates.filter((pl.col("cell_id") == cid) & (pl.col("label") == lab))
            want = sum(r["pred"] == "invalid" for r in sub)
            assert got.row(0, named=True)["n_invalid"] == want
            assert got.row(0, named=True)["n"] == len(sub)
    assert "## Generative models: invalid answers" in summary
    cid = f"{GEN}/uniform:8/msce"
    n = preds.filter(pl.col("cell_id") == cid).height
    k = preds.filter((pl.col("cell_id") == cid) & (pl.col("pred") == "invalid")).height
    section = summary.split("## Generative models: invalid answers")[1].split("\n## ")[0]
    start = f"| {GEN} | uniform:8, enrichment=msce |"
    line = next(ln for ln in section.splitlines() if ln.startswith(start))
    assert f"| {n} | {k} | {k / n:.3f} |" in line


def test_top_unparsed_equals_value_counts(reported):
    preds, _, summary = reported
    top = gen.top_unparsed(preds, gen.generative_cells(preds), n=4)
    assert list(top) == [GEN]  # the baseline never answered in text
    vc = (
        preds.filter((pl.col("model") == GEN) & (pl.col("pred") == "invalid"))
        .get_column("raw_text")
        .value_counts(sort=True)
    )
    counts = dict(zip(vc["raw_text"].to_list(), vc["count"].to_list(), strict=True))
    assert len(top[GEN]) == 4
    assert [c for _, c in top[GEN]] == sorted(counts.values(), reverse=True)[:4]
    for text, count in top[GEN]:
        assert counts[text] == count
    assert set(t for t, _ in top[GEN]) <= set(JUNK)  # every valid phrase parsed
    first = top[GEN][0]
    assert f"| {GEN} | 1 | {answer_text(first[0])} | {first[1]} |" in summary


def _oracle(preds: pl.DataFrame, base: str, new: str, micro_only: bool):
    a = preds.filter(pl.col("cell_id") == base).select("fold", "clip_id", "label", "pred", "micro")
    b = preds.filter(pl.col("cell_id") == new).select("fold", "clip_id", pl.col("pred").alias("b"))
    j = a.join(b, on=["fold", "clip_id"]).filter(pl.col("micro") | (not micro_only))
    y, pa, pb = j["label"].to_list(), j["pred"].to_list(), j["b"].to_list()
    uar = balanced_accuracy_score(y, pb) - balanced_accuracy_score(y, pa)
    war = accuracy_score(y, pb) - accuracy_score(y, pa)
    return j.height, uar, war


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_msce_delta_matches_sklearn_and_ci_brackets_it(reported):
    preds, _, summary = reported
    cells = an.cell_table(preds, an.setting_columns())
    pairs = an.switch_pairs(cells, an.setting_columns(), "enrichment")
    want_pairs = {
        (f"{GEN}/uniform:{k}/none", f"{GEN}/uniform:{k}/{e}") for e, k in GEN_CELLS if e != "none"
    }
    assert set(pairs) == want_pairs  # same K only
    for base, new in pairs:
        comps = gen.enrichment_comparison(preds, base, new, LABELS, n_resamples=RESAMPLES, seed=5)
        assert [c.scope for c in comps] == ["all", "micro"]
        for cmp in comps:
            n, d_uar, d_war = _oracle(preds, base, new, cmp.scope == "micro")
            assert cmp.n_matched == n
            uar, war = cmp.get("uar"), cmp.get("war")
            assert uar is not None and war is not None
            assert uar.diff == pytest.approx(d_uar, abs=1e-12)
            assert war.diff == pytest.approx(d_war, abs=1e-12)
            for d in cmp.diffs:
                assert d.ci_lo is not None and d.ci_hi is not None
                assert d.ci_lo <= d.diff <= d.ci_hi
    # the table: 4 pairs x (all, micro) rows, ΔUAR as computed with the report's seed
    assert "## MSCE enrichment: effect against no enrichment" in summary
    rows = [ln for ln in summary.splitlines() if "| none → msce" in ln]
    assert len(rows) == 8
    base, new = f"{GEN}/uniform:8/none", f"{GEN}/uniform:8/msce-dense"
    cmp = gen.enrichment_comparison(preds, base, new, LABELS, n_resamples=RESAMPLES, seed=5)[0]
    uar = cmp.get("uar")
    cell = f"{uar.diff:+.3f} [{uar.ci_lo:+.3f}, {uar.ci_hi:+.3f}]"
    assert any("none → msce-dense | all |" in r and cell in r for r in rows)


def test_generative_cells_get_confusions_and_longtail(reported):
    preds, out, summary = reported
    names = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert any(n.startswith("confusion_synth_hf-tiny-vlm_uniform-8") for n in names)
    assert "longtail-recall_synth" in names
    info = an.dataset_infos({"datasets": {}}, preds, rule="relative")
    conf = an.cell_confusions(preds, info)
    for cid in gen.generative_cells(preds):
        n_inv = preds.filter((pl.col("cell_id") == cid) & (pl.col("pred") == "invalid")).height
        assert conf[cid].pooled[:, -1].sum() == n_inv  # the invalid column
    assert f"| {GEN} |" in summary.split("## Long-tail")[1]


def test_no_generative_sections_without_text_or_enrichment(tmp_path):
    preds = _predictions(np.random.default_rng(4)).filter(pl.col("model") != GEN)
    run = _write(tmp_path / "run", preds.drop("raw_text"))
    out = report_run(run.path, ReportOptions(n_resamples=50, prior="train_freq", formats="md"))
    summary = (out / "summary.md").read_text()
    assert "Generative models" not in summary
    assert "## MSCE enrichment" not in summary  # the findings still name MSCE (not measurable)
    assert gen.generative_cells(run.read_predictions()) == []


def test_enrichment_without_a_none_twin_is_a_note(tmp_path):
    preds = _predictions(np.random.default_rng(5)).filter(
        pl.col("cell_id") == f"{GEN}/uniform:8/msce"
    )
    run = _write(tmp_path / "run", preds)
    out = report_run(run.path, ReportOptions(n_resamples=50, prior="train_freq", formats="md"))
    summary = (out / "summary.md").read_text()
    assert "No enrichment cell has a `none` cell" in summary
    assert "## Generative models: invalid answers" in summary
