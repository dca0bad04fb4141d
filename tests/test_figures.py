"""Layout tests for the report figures: every figure of a multi-model run is readable.

A quickstart-like run folder is built here (4 models, 7 model/setting variants, 5 frame
densities, original and shuffled order, 2 folds, 7 labels, skewed training counts, one
model with invalid answers) and reported with ``emobench.report.figures.save`` wrapped so
the test keeps every Figure it writes. Each figure is then drawn with Agg and checked from
matplotlib's own text extents: no two tick labels, axis labels, titles or legends overlap
(rotated tick labels are compared as rotated rectangles, not their axis-aligned boxes), and
every visible text and every axes lies inside the figure. The figure functions are also
drawn directly on edge cases the run does not reach (many models, a single model,
non-geometric densities, narrow and count-valued priors).
"""

from __future__ import annotations

import importlib.util
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from emobench.report import figures as fg
from emobench.report.build import ReportOptions, report_run
from emobench.report.figure_layout import (
    compact_number,
    compact_percent,
    legend_layout,
    style,
    thin_ticks,
)
from emobench.report.values import Stat
from emobench.results import RunFolder, build_manifest

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "fear", "disgust"]
TRAIN = {"neutral": 300, "happiness": 220, "sadness": 150, "anger": 90, "surprise": 50}
TRAIN |= {"fear": 25, "disgust": 10}
ZERO_SHOT = "openclip:emobench-tiny@synth-web"
#: (model, rebalancing, prior correction): 7 lines per order, as in the quickstart preset
VARIANTS = (
    ("baseline-gru", "instance-balanced", "none"),
    ("baseline-gru", "class-balanced", "none"),
    ("baseline-mean", "instance-balanced", "none"),
    (ZERO_SHOT, "none", "none"),
    (ZERO_SHOT, "none", "estimated-prior"),
    ("clip-probe", "instance-balanced", "none"),
    ("clip-probe", "class-balanced", "none"),
)
DENSITIES = (2, 4, 8, 16, 32)
ORDERS = ("original", "shuffle")
CLIPS_PER_FOLD = 40
PRIORS = (
    ("train_freq", "web_word_freq") if importlib.util.find_spec("wordfreq") else ("train_freq",)
)


def _predictions(rng: np.random.Generator) -> pl.DataFrame:
    share = np.array([TRAIN[lab] for lab in LABELS], dtype=float)
    share /= share.sum()
    test_share = 0.5 * share + 0.5 / len(LABELS)
    frames = []
    for fold in (1, 2):
        y = rng.choice(len(LABELS), size=CLIPS_PER_FOLD, p=test_share)
        clips = [f"f{fold}c{i:03d}" for i in range(CLIPS_PER_FOLD)]
        for m, (model, rebalancing, prior) in enumerate(VARIANTS):
            for density in DENSITIES:
                for order in ORDERS:
                    acc = 0.3 + 0.04 * m + 0.03 * np.log2(density)
                    acc -= 0.08 if (order == "shuffle" and m < 2) else 0.0
                    ok = rng.random(CLIPS_PER_FOLD) < acc
                    pred = np.where(ok, y, rng.choice(len(LABELS), size=CLIPS_PER_FOLD, p=share))
                    names = np.array(LABELS, dtype=object)[pred]
                    if model == ZERO_SHOT:
                        names[rng.random(CLIPS_PER_FOLD) < 0.1] = "invalid"
                    frames.append(
                        pl.DataFrame(
                            {
                                "cell_id": f"{model}/{rebalancing}/{prior}/uniform:{density}/"
                                f"{order}",
                                "dataset": "synth",
                                "model": model,
                                "sampler": f"uniform:{density}",
                                "density": float(density),
                                "density_unit": "frames",
                                "order": order,
                                "enrichment": "none",
                                "rebalancing": rebalancing,
                                "prior_correction": prior,
                                "seed": 0,
                                "fold": fold,
                                "clip_id": clips,
                                "label": np.array(LABELS)[y],
                                "pred": names.astype(str),
                            }
                        )
                    )
    return pl.concat(frames)


def _write_run(root: Path, predictions: pl.DataFrame) -> RunFolder:
    datasets = {
        "synth": {
            "fingerprint": "f00d",
            "labels": LABELS,
            "train_counts": {"1": TRAIN, "2": TRAIN},
            "n_clips": 2 * CLIPS_PER_FOLD,
        }
    }
    cells = predictions.select("cell_id", "model").unique().sort("cell_id").to_dicts()
    manifest = build_manifest(
        run_name="figures",
        config={"preset": "test"},
        datasets=datasets,
        cells=cells,
        skipped=[],
        seeds={"run": 0},
        packages=("numpy",),
    )
    run = RunFolder(root)
    run.write_manifest(manifest)
    run.write_predictions(predictions)
    return run


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Every figure of the reported run, by file stem, and the report folder."""
    run = _write_run(tmp_path_factory.mktemp("run") / "r", _predictions(np.random.default_rng(5)))
    kept: dict[str, Any] = {}
    save = fg.save

    def keep(fig: Any, out_dir: Path, stem: str) -> tuple[str, str]:
        kept[stem] = fig
        return save(fig, out_dir, stem)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fg, "save", keep)
        options = ReportOptions(formats="md", n_resamples=30, prior=PRIORS, workers=0)
        out = report_run(run.path, options)
    return kept, out


# ---------------------------------------------------------------------------------------
# Geometry from matplotlib's own extents


def _render(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with style():
        canvas.draw()
    return canvas.get_renderer()


def _corners(text: Any, renderer: Any) -> np.ndarray:
    """The four corners (pixels) of a text's rotated rectangle."""
    box = text.get_window_extent(renderer)
    angle = text.get_rotation()
    if math.isclose(angle % 90, 0, abs_tol=1e-6) or math.isclose(angle % 90, 90, abs_tol=1e-6):
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    text.set_rotation(0)
    flat = text.get_window_extent(renderer)
    text.set_rotation(angle)
    # a rotated rectangle's axis-aligned box has the rectangle's centre
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    hw, hh = flat.width / 2, flat.height / 2
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    local = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    return local @ rot.T + [cx, cy]


def _box_corners(box: Any) -> np.ndarray:
    return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])


def _overlap(a: np.ndarray, b: np.ndarray, tol: float = 1.0) -> bool:
    """Whether two convex quadrilaterals overlap by more than ``tol`` pixels (SAT)."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            normal = np.array([-edge[1], edge[0]])
            norm = np.hypot(*normal)
            if norm == 0:
                continue
            normal /= norm
            pa, pb = a @ normal, b @ normal
            if pa.max() <= pb.min() + tol or pb.max() <= pa.min() + tol:
                return False
    return True


def _drawn_tick_labels(ax: Any) -> list[tuple[str, Any]]:
    """(axis name, label) of the tick labels matplotlib actually draws on ``ax``."""
    out = []
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        trans = axis.get_transform()
        lo, hi = sorted(trans.transform(np.asarray(axis.get_view_interval(), dtype=float)))
        eps = 1e-9 * max(1.0, abs(hi - lo))
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            loc = tick.get_loc()
            if loc is None:
                continue
            pos = float(trans.transform(np.array([float(loc)]))[0])
            if not lo - eps <= pos <= hi + eps:
                continue
            for label in (tick.label1, tick.label2):
                if label.get_visible() and label.get_text().strip():
                    out.append((name, label))
    return out


def _layout_problems(fig: Any) -> list[str]:
    """Overlapping labels/titles/legends and text or axes outside the figure."""
    renderer = _render(fig)
    fig_box = fig.bbox
    items: list[tuple[str, str, np.ndarray]] = []  # (kind, text, corners)
    loose: list[tuple[str, np.ndarray]] = []  # data annotations: only "inside the figure"
    for k, ax in enumerate(fig.axes):
        for name, label in _drawn_tick_labels(ax):
            items.append((f"axes{k}.{name}tick", label.get_text(), _corners(label, renderer)))
        for kind, text in (("xlabel", ax.xaxis.label), ("ylabel", ax.yaxis.label)):
            if text.get_visible() and text.get_text().strip():
                items.append((f"axes{k}.{kind}", text.get_text(), _corners(text, renderer)))
        if ax.title.get_visible() and ax.title.get_text().strip():
            items.append((f"axes{k}.title", ax.title.get_text(), _corners(ax.title, renderer)))
        for text in ax.texts:
            if text.get_visible() and text.get_text().strip():
                loose.append((text.get_text(), _corners(text, renderer)))
        loose.append((f"axes{k}", _box_corners(ax.get_window_extent(renderer))))
    for text in fig.texts:
        if text.get_visible() and text.get_text().strip():
            items.append(("figure text", text.get_text(), _corners(text, renderer)))
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        items.append(("legend", "", _box_corners(legend.get_window_extent(renderer))))
        for text in legend.get_texts():
            if text.get_visible() and text.get_text().strip():
                loose.append((text.get_text(), _corners(text, renderer)))
    problems = []
    for (ka, ta, ca), (kb, tb, cb) in combinations(items, 2):
        if _overlap(ca, cb):
            problems.append(f"{ka} {ta!r} overlaps {kb} {tb!r}")
    for kind, text, corners in items + [("", t, c) for t, c in loose]:
        x, y = corners[:, 0], corners[:, 1]
        if x.min() < -0.5 or y.min() < -0.5 or x.max() > fig_box.x1 + 0.5:
            problems.append(f"{kind} {text!r} leaves the figure: x {x.min():.0f}..{x.max():.0f}")
        elif y.max() > fig_box.y1 + 0.5:
            problems.append(f"{kind} {text!r} leaves the figure: y {y.min():.0f}..{y.max():.0f}")
    return problems


# ---------------------------------------------------------------------------------------
# The reported run


def test_every_written_figure_was_kept(figures):
    kept, out = figures
    written = {p.stem for p in (out / "figures").glob("*.png")}
    assert written == set(kept)
    assert {p.stem for p in (out / "figures").glob("*.svg")} == written
    prefixes = {"confusion-grid", "confusion", "longtail-recall", "density", "f1-vs-prior"}
    assert {stem.split("_", 1)[0] for stem in kept} == prefixes
    assert sum(stem.startswith("f1-vs-prior") for stem in kept) == len(PRIORS)


def test_no_text_overlaps_or_leaves_the_figure(figures):
    kept, _ = figures
    problems = [f"{stem}: {p}" for stem, fig in sorted(kept.items()) for p in _layout_problems(fig)]
    assert not problems, "\n".join(problems)


def test_density_figure_has_one_panel_per_model(figures):
    kept, _ = figures
    fig = kept["density_synth_frames"]
    models = list(dict.fromkeys(v[0] for v in VARIANTS))
    assert len(fig.axes) == 2 * len(models)  # macro-F1 and UAR rows
    titles = [ax.get_title().replace("\n", "") for ax in fig.axes if ax.get_title()]
    assert sorted(titles) == sorted(models)
    for ax in fig.axes:
        n_variants = max(sum(v[0] == m for v in VARIANTS) for m in models)
        drawn = ax.get_lines()  # each curve, then the ring on its peak (3 points or more)
        curves = [line for line in drawn if line.get_linestyle() != "None"]
        assert 0 < len(curves) <= len(ORDERS) * n_variants
        assert {line.get_linestyle() for line in curves} <= {"-", "--"}
        for curve in curves:
            ys = np.asarray(curve.get_ydata(), dtype=float)
            after = drawn[drawn.index(curve) + 1 :][:1]
            ring = after[0] if after and after[0].get_linestyle() == "None" else None
            if len(ys) < 3:
                assert ring is None  # one or two densities have no peak to mark
                continue
            assert ring is not None and ring.get_markerfacecolor() == "none"
            assert list(ring.get_ydata()) == [ys.max()]
            assert list(ring.get_xdata()) == [curve.get_xdata()[int(np.argmax(ys))]]
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts() if t.get_text()]
    assert "order=original" in labels and "order=shuffle" in labels
    assert "peak of the curve" in labels
    assert "rebalancing=class-balanced, prior_correction=none" in labels
    assert not any(m in label for label in labels for m in models)  # panels name the models


def test_prior_figures_have_few_compact_log_ticks(figures):
    kept, _ = figures
    for stem, fig in kept.items():
        if not stem.startswith("f1-vs-prior"):
            continue
        _render(fig)
        for ax in fig.axes:
            assert ax.get_xscale() == "log"
            ticks = [lab for name, lab in _drawn_tick_labels(ax) if name == "x"]
            assert 2 <= len(ticks) <= 4, (stem, [t.get_text() for t in ticks])
            assert all(len(t.get_text()) <= 7 for t in ticks), [t.get_text() for t in ticks]
            assert not [t for t in ax.xaxis.get_minor_ticks() if t.label1.get_text()]


# ---------------------------------------------------------------------------------------
# Edge cases drawn directly


def _stat(v: float) -> Stat:
    return Stat(v, 0.05, (v - 0.08, v + 0.08))


def _lines(models: list[str], xs: list[float], orders: tuple[str, ...]) -> list[fg.Line]:
    out = []
    for m, model in enumerate(models):
        for order in orders:
            vals = [_stat(0.3 + 0.05 * m + 0.01 * i) for i in range(len(xs))]
            label = f"{model} ({order})" if len(orders) > 1 else model
            out.append(
                fg.Line(
                    label=label,
                    x=xs,
                    values={"macro_f1": vals, "uar": vals},
                    colour=fg.OKABE_ITO[m % 7],
                    linestyle=fg.LINESTYLES.get(order, "-."),
                    marker="o",
                    panel=model,
                    order=order if len(orders) > 1 else None,
                )
            )
    return out


@pytest.mark.parametrize(
    ("models", "xs", "orders"),
    [
        ([f"model-{i}:some/longer-name-{i}" for i in range(6)], [2, 4, 8, 16, 32, 64], ORDERS),
        (["only"], [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30], ("original",)),
        (["a", "b"], [1, 2, 3, 4, 5], ("original", "shuffle", "reverse")),
    ],
)
def test_density_edge_cases_are_readable(models, xs, orders):
    lines = _lines(models, [float(x) for x in xs], orders)
    metrics = [("macro_f1", "macro-F1"), ("uar", "UAR")]
    fig = fg.draw_density(lines, metrics, "frames per second of video", "a title " * 12)
    assert not _layout_problems(fig)
    assert len(fig.axes) == 2 * len(models)


@pytest.mark.parametrize(
    ("prior", "log_x"),
    [
        ([0.12, 0.14, 0.15, 0.16, 0.18, 0.2, 0.05], True),  # under a decade
        ([3, 10, 40, 200, 900, 5000, 30000], True),  # counts, not shares
        ([1e-7, 1e-6, 3e-6, 1e-5, 1e-4, 2e-4, 1e-3], True),  # tiny shares
        ([0.05, 0.1, 0.12, 0.15, 0.18, 0.2, 0.2], False),
    ],
)
def test_prior_edge_cases_are_readable(prior, log_x):
    rng = np.random.default_rng(0)
    panels = [
        fg.ScatterPanel(
            model=f"openclip:model-{k}@weights",
            labels=LABELS,
            prior=prior,
            f1=list(rng.random(len(LABELS))),
            tail=[p < 0.1 * max(prior) for p in prior],
            note="Spearman ρ=-0.82, Pearson r=-0.55",
        )
        for k in range(4)
    ]
    fig = fg.draw_prior(panels, "a long axis label naming where the prior comes from", log_x, "t")
    assert not _layout_problems(fig)
    for ax in fig.axes:
        assert 2 <= len([1 for name, _ in _drawn_tick_labels(ax) if name == "x"]) <= 6


def test_line_parts_are_explicit():
    line = _lines(["openclip:m@w"], [1.0], ("original",))[0]
    assert line.parts() == ("openclip:m@w", "", "")
    # the label is not parsed: a model name with " (" stays one panel
    assert fg.Line("m (unclosed", [1.0], {}, "#000").parts() == ("m (unclosed", "", "")
    line = fg.Line("gru (v1) (shuffle)", [1.0], {}, "#000", panel="gru (v1)", order="shuffle")
    assert line.parts() == ("gru (v1)", "", "shuffle")
    explicit = fg.Line("anything", [1.0], {}, "#000", panel="p", variant="v", order="o")
    assert explicit.parts() == ("p", "v", "o")


def test_density_panels_keep_model_names_with_parentheses():
    lines = [
        fg.Line(
            label=f"{model} ({order})",
            x=[2.0, 4.0],
            values={"macro_f1": [_stat(0.4), _stat(0.5)]},
            colour="#000",
            linestyle=fg.LINESTYLES[order],
            panel=model,
            variant="",
            order=order,
        )
        for model in ("tiny (v1)", "tiny (v2)")
        for order in ORDERS
    ]
    fig = fg.draw_density(lines, [("macro_f1", "macro-F1")], "frames", "t")
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["tiny (v1)", "tiny (v2)"]


def test_layout_helpers():
    labels = ["2", "4", "8", "16", "32"]
    assert thin_ticks([2, 4, 8, 16, 32], labels, lambda v: math.log2(v) * 0.3) == [0, 1, 2, 3, 4]
    kept = thin_ticks(list(range(1, 31)), [str(i) for i in range(1, 31)], lambda v: v * 0.05)
    assert kept[0] == 0 and kept[-1] == 29 and len(kept) < 30
    rows, cols = legend_layout([["order=original", "order=shuffle"], ["a" * 50] * 4], 6.7)
    assert (rows, cols) == (4, [1, 1])
    assert legend_layout([["x"] * 6], 6.7) == (1, [6])
    assert compact_percent(1e-5) == "0.001%" and compact_percent(1e-7) == "1e-5%"
    assert compact_percent(0.5) == "50%" and compact_number(20000) == "20k"
    assert compact_number(1000) == "1k" and compact_number(0.25) == "0.25"


def test_density_rings_the_peak_of_curves_of_three_points_or_more():
    """A single setting (one density) or two has no peak to mark; a curve's ring sits on
    its highest value, wherever that is."""
    dense = _lines(["a"], [2.0, 4.0, 8.0, 16.0], ("original",))[0]
    bell = [_stat(v) for v in (0.2, 0.35, 0.3, 0.25)]  # peaks at 4 frames
    dense = fg.Line(**{**dense.__dict__, "values": {"macro_f1": bell, "uar": bell}})
    single = _lines(["b"], [4.0], ("original",))[0]
    fig = fg.draw_density([dense, single], [("uar", "UAR")], "frames", "t")
    a, b = fig.axes
    rings_a = [line for line in a.get_lines() if line.get_linestyle() == "None"]
    assert [(list(r.get_xdata()), list(r.get_ydata())) for r in rings_a] == [([4.0], [0.35])]
    assert not [line for line in b.get_lines() if line.get_linestyle() == "None"]
