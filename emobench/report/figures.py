"""Report figures (matplotlib, no pyplot state): confusion matrices, long-tail recall bars,
metric-vs-density curves and per-class F1 vs prior scatters.

Every figure has a ``draw_*`` function that takes plain data (numpy arrays, lists,
:class:`~emobench.report.values.Stat`) and returns the :class:`~matplotlib.figure.Figure`,
and a ``*_figure`` function with the same arguments plus a folder and a file stem that
draws it and writes ``<stem>.png`` and ``<stem>.svg``, returning the two file names (what
:class:`~emobench.report.jobs.FigureJobs` runs). Sizes follow paper columns (3.5 in
single, 7 in double), fonts are >= 8 pt, and colours come from the Okabe-Ito
colour-blind-safe palette. Layouts are computed by hand in inches
(:mod:`emobench.report.figure_layout`), not by constrained/tight layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.report.figure_layout import (
    CHAR_IN,
    DOUBLE_COLUMN_IN,
    DPI,
    LINE_IN,
    RC,
    SINGLE_COLUMN_IN,
    add_axes,
    legend_layout,
    log_ticks,
    n_lines,
    new_figure,
    place_labels,
    save,
    style,
    thin_ticks,
    wrap,
    wrap_name,
)
from emobench.report.values import Stat

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DOUBLE_COLUMN_IN",
    "DPI",
    "GROUP_COLOURS",
    "LINESTYLES",
    "MARKERS",
    "OKABE_ITO",
    "RC",
    "SINGLE_COLUMN_IN",
    "GroupBars",
    "Line",
    "ScatterPanel",
    "confusion_figure",
    "confusion_grid_figure",
    "density_figure",
    "draw_confusion",
    "draw_confusion_grid",
    "draw_density",
    "draw_longtail",
    "draw_prior",
    "longtail_figure",
    "prior_figure",
    "row_normalise",
    "save",
    "wrap",
    "wrap_name",
]

#: Okabe & Ito (2008) colour-blind-safe palette, most distinct first (yellow last).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)
#: Colour of tail-class tick labels and points.
TAIL_COLOUR = "#D55E00"
#: Colours of head / medium / tail bars (with hatches, for greyscale print).
GROUP_COLOURS: tuple[str, ...] = ("#0072B2", "#E69F00", "#D55E00", "#CC79A7", "#009E73")
GROUP_HATCHES: tuple[str, ...] = ("", "//", "..", "xx", "\\\\")
LINESTYLES = {"original": "-", "shuffle": "--", "reverse": ":"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Marker appended to tail-class tick labels (colour alone is not enough in greyscale).
TAIL_MARK = " *"

# ---------------------------------------------------------------------------------------
# Confusion matrices


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Rows divided by their sums (a row with no clips stays 0)."""
    sums = counts.sum(axis=1, keepdims=True).astype(float)
    return np.divide(counts, sums, out=np.zeros(counts.shape, dtype=float), where=sums > 0)


def _tick_names(labels: Sequence[str], groups: Mapping[str, str], tail: str) -> list[str]:
    return [lab + (TAIL_MARK if groups.get(lab) == tail else "") for lab in labels]


def _label_extent(names: Sequence[str]) -> float:
    """Inches taken by the longest tick label."""
    return CHAR_IN * max((len(n) for n in names), default=1)


def _confusion_axes(
    ax: Axes,
    counts: np.ndarray,
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    *,
    show_invalid: bool,
    annotate: str | None,
    ylabels: bool = True,
) -> Any:
    """Draw one row-normalised matrix; ``annotate`` is "counts", "percent" or None."""
    cols = counts if show_invalid else counts[:, :-1]
    norm = row_normalise(cols)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    names = _tick_names(labels, groups, tail)
    xnames = names + (["invalid"] if show_invalid else [])
    ax.set_xticks(range(len(xnames)), xnames, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names if ylabels else [])
    ax.set_xlabel("predicted")
    if ylabels:
        ax.set_ylabel("true")
    ax.tick_params(length=2, pad=1.5)
    ax.spines[:].set_visible(False)
    if show_invalid:  # separate the invalid column from the classes
        ax.axvline(len(labels) - 0.5, color="0.3", lw=0.8)
    for tick_set in (ax.get_xticklabels(), ax.get_yticklabels()):
        for tick in tick_set:
            if tick.get_text().endswith(TAIL_MARK):
                tick.set_color(TAIL_COLOUR)
                tick.set_fontweight("bold")
    if annotate:
        for i, j in zip(*np.nonzero(cols), strict=True):
            text = str(int(cols[i, j])) if annotate == "counts" else f"{round(100 * norm[i, j])}"
            colour = "white" if norm[i, j] > 0.55 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    return image


def draw_confusion(
    counts: np.ndarray,
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
) -> Figure:
    """One cell's confusion matrix: colour = row-normalised recall, text = clip counts.

    ``counts`` is ``(C, C + 1)`` with the invalid column last; that column is shown only
    when some answer was invalid. Rows and columns are ordered as ``labels`` (head -> tail).
    """
    show_invalid = bool(counts[:, -1].sum() > 0)
    ncols, nrows = len(labels) + int(show_invalid), len(labels)
    names = _tick_names(labels, groups, tail) + (["invalid"] if show_invalid else [])
    ext = _label_extent(names)
    left, right = ext + 0.32, 0.78
    bottom = ext * math.sin(math.radians(60)) + 0.36
    digits = len(str(int(counts.max(initial=0))))
    cell = max(0.26, CHAR_IN * digits + 0.06, (SINGLE_COLUMN_IN - left - right) / ncols)
    width = left + cell * ncols + right
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title)
    height = bottom + cell * nrows + top
    with style():
        fig = new_figure(width, height)
        ax = add_axes(fig, left, bottom, cell * ncols, cell * nrows)
        image = _confusion_axes(
            ax, counts, labels, groups, tail, show_invalid=show_invalid, annotate="counts"
        )
        cax = add_axes(fig, left + cell * ncols + 0.1, bottom, 0.11, cell * nrows)
        fig.colorbar(image, cax=cax, label="row share (recall)")
        fig.text(0.1 / width, 1 - 0.06 / height, title, ha="left", va="top", fontsize=9)
        return fig


def confusion_figure(
    counts: np.ndarray,
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_confusion` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_confusion(counts, labels, groups, tail, title), out_dir, stem)


def draw_confusion_grid(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
) -> Figure:
    """Models side by side (one panel each, shared colour scale, percent annotations)."""
    show_invalid = any(bool(c[:, -1].sum() > 0) for _, c in panels)
    ncols, nrows = len(labels) + int(show_invalid), len(labels)
    names = _tick_names(labels, groups, tail) + (["invalid"] if show_invalid else [])
    ext = _label_extent(names)
    per_row = min(3 if ncols <= 8 else 2, len(panels))
    n_grid_rows = -(-len(panels) // per_row)
    left, right, gap = ext + 0.32, 0.8, 0.18
    width = DOUBLE_COLUMN_IN if per_row > 1 else SINGLE_COLUMN_IN + 0.5
    cell = (width - left - right - gap * (per_row - 1)) / (per_row * ncols)
    if cell < 0.15:  # many classes: grow the figure rather than shrink below legibility
        cell = 0.15
        width = left + right + gap * (per_row - 1) + cell * per_row * ncols
    annotate = "percent" if cell >= 0.17 else None
    pw, ph = cell * ncols, cell * nrows
    panel_titles = [wrap_name(name, pw) for name, _ in panels]
    title_h = LINE_IN * max(n_lines(t) for t in panel_titles) + 0.08
    row_bottom = ext * math.sin(math.radians(60)) + 0.36
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title)
    row_h = row_bottom + ph + title_h
    height = top + n_grid_rows * row_h
    with style():
        fig = new_figure(width, height)
        image = None
        for k, (_, counts) in enumerate(panels):
            r, c = divmod(k, per_row)
            x0 = left + c * (pw + gap)
            y0 = height - top - (r + 1) * row_h + row_bottom
            ax = add_axes(fig, x0, y0, pw, ph)
            image = _confusion_axes(
                ax,
                counts,
                labels,
                groups,
                tail,
                show_invalid=show_invalid,
                annotate=annotate,
                ylabels=c == 0,
            )
            ax.set_title(panel_titles[k], fontsize=8, pad=3)
        if image is not None:
            cax = add_axes(fig, width - right + 0.1, height - top - row_h + row_bottom, 0.11, ph)
            fig.colorbar(image, cax=cax, label="row share (recall)")
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return fig


def confusion_grid_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_confusion_grid` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_confusion_grid(panels, labels, groups, tail, title), out_dir, stem)


# ---------------------------------------------------------------------------------------
# Head / medium / tail recall


@dataclass(frozen=True)
class GroupBars:
    """One model's group recalls (reference cell) and its head - tail gap."""

    model: str
    recalls: Mapping[str, Stat]
    gap: float | None


def draw_longtail(
    bars: Sequence[GroupBars],
    group_names: Sequence[str],
    title: str,
) -> Figure:
    """Grouped bars of recall per class group for each model, gap annotated above."""
    n, g = len(bars), len(group_names)
    width = SINGLE_COLUMN_IN if n <= 3 else DOUBLE_COLUMN_IN
    left, right = 0.5, 0.1
    aw = width - left - right
    names = [wrap_name(b.model, aw / n - 0.05) for b in bars]
    bottom = 0.12 + LINE_IN * max(n_lines(s) for s in names)
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title) + LINE_IN + 0.08  # title + legend row
    height = bottom + 2.0 + top
    bar_w = 0.8 / g
    x = np.arange(n)
    with style():
        fig = new_figure(width, height)
        ax = add_axes(fig, left, bottom, aw, 2.0)
        handles = []
        for j, group in enumerate(group_names):
            vals = [b.recalls.get(group) for b in bars]
            heights = [v.value if v else 0.0 for v in vals]
            errs = [v.std if (v and v.std is not None) else 0.0 for v in vals]
            h = ax.bar(
                x + (j - (g - 1) / 2) * bar_w,
                heights,
                bar_w,
                yerr=errs,
                capsize=2,
                error_kw={"lw": 0.8},
                color=GROUP_COLOURS[j % len(GROUP_COLOURS)],
                label=group,
                hatch=GROUP_HATCHES[j % len(GROUP_HATCHES)],
                edgecolor="white",
                linewidth=0.5,
            )
            handles.append(h)
        for i, b in enumerate(bars):
            if b.gap is None or not b.recalls:
                continue
            top_v = max(v.value + (v.std or 0.0) for v in b.recalls.values())
            ax.text(i, min(top_v + 0.03, 1.02), f"gap {b.gap:+.2f}", ha="center", va="bottom")
        ax.set_xticks(x, names)
        ax.tick_params(axis="x", length=0)
        ax.set_xlim(-0.55, n - 0.45)
        ax.set_ylim(0, 1.1)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("recall (mean over folds)")
        ax.grid(axis="y", alpha=0.3, lw=0.5)
        ax.set_axisbelow(True)
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(left / width, 1 - (0.1 + LINE_IN * n_lines(title)) / height),
            ncols=g,
            frameon=False,
            borderaxespad=0,
            handlelength=1.5,
            columnspacing=1.0,
        )
        fig.text(0.1 / width, 1 - 0.06 / height, title, ha="left", va="top", fontsize=9)
        return fig


def longtail_figure(
    bars: Sequence[GroupBars],
    group_names: Sequence[str],
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_longtail` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_longtail(bars, group_names, title), out_dir, stem)


# ---------------------------------------------------------------------------------------
# Metric vs density

#: Line colours when settings other than the model are told apart (no yellow: too light).
LINE_COLOURS: tuple[str, ...] = OKABE_ITO[:7]


@dataclass(frozen=True)
class Line:
    """One curve: x positions, values and CI band per metric, and its look.

    The density figure draws one panel per ``panel`` (the model; the label when None),
    tells lines whose ``variant`` (the other settings, e.g. ``rebalancing=class-balanced``)
    differs apart by colour and marker, and lines whose ``order`` (frame order) differs by
    line style. ``colour`` and ``marker`` are used when no panel has two variants.
    """

    label: str
    x: Sequence[float]
    values: Mapping[str, Sequence[Stat | None]]
    colour: str
    linestyle: str = "-"
    marker: str = "o"
    panel: str | None = None
    variant: str | None = None
    order: str | None = None

    def parts(self) -> tuple[str, str, str]:
        """(panel, variant, order) of this line."""
        panel = self.label if self.panel is None else self.panel
        return panel, self.variant or "", self.order or ""


def _density_ticks(ax: Axes, xs: Sequence[float], width_in: float) -> None:
    """x axis of a density panel: log2 for geometric sweeps, every density labelled
    unless labels would touch (then every other one, keeping the last)."""
    from matplotlib.ticker import NullLocator

    if not xs:
        return
    lo, hi = min(xs), max(xs)
    log = lo > 0 and hi / lo >= 4
    if log:
        ax.set_xscale("log", base=2)
        lo_v, hi_v = lo / 1.3, hi * 1.3
        span = math.log(hi_v / lo_v)

        def position(v: float) -> float:
            return width_in * math.log(v / lo_v) / span

    else:
        pad = 0.06 * ((hi - lo) or max(abs(hi), 1.0))
        lo_v, hi_v = lo - pad, hi + pad

        def position(v: float) -> float:
            return width_in * (v - lo_v) / (hi_v - lo_v)

    ax.set_xlim(lo_v, hi_v)
    labels = [f"{x:g}" for x in xs]
    keep = thin_ticks(xs, labels, position)
    ax.set_xticks([xs[i] for i in keep], [labels[i] for i in keep])
    ax.xaxis.set_minor_locator(NullLocator())


def draw_density(
    lines: Sequence[Line],
    metrics: Sequence[tuple[str, str]],
    xlabel: str,
    title: str,
) -> Figure:
    """Value vs density with CI bands: one column of panels per model (up to four per
    row), one row per metric (e.g. macro-F1, UAR) sharing its y range; frame orders as
    line styles, other settings as colours and markers, one legend below."""
    from matplotlib.lines import Line2D

    parts = [line.parts() for line in lines]
    panels = list(dict.fromkeys(p for p, _, _ in parts)) or [""]
    variants = list(dict.fromkeys(v for _, v, _ in parts))
    orders = list(
        dict.fromkeys((o, line.linestyle) for line, (_, _, o) in zip(lines, parts, strict=True))
    )
    many = len(variants) > 1

    def look(line: Line, variant: str) -> tuple[str, str]:
        if not many:
            return line.colour, line.marker
        k = variants.index(variant)
        return LINE_COLOURS[k % len(LINE_COLOURS)], MARKERS[k % len(MARKERS)]

    width = DOUBLE_COLUMN_IN
    groups: list[list[Any]] = [[], []]  # line styles | colours: each starts a column
    if len(orders) > 1:
        for order, linestyle in orders:
            groups[0].append(
                Line2D([], [], color="0.3", linestyle=linestyle, lw=1.2, label=f"order={order}")
            )
    if many:
        for v in variants:
            colour, marker = look(lines[0], v)
            name = wrap(v or "default", width - 1.0)
            groups[1].append(
                Line2D([], [], color=colour, marker=marker, markersize=3.5, lw=1.2, label=name)
            )
    groups = [g for g in groups if g]
    rows, cols = legend_layout([[str(h.get_label()) for h in g] for g in groups], width - 0.3)
    handles: list[Any] = []
    for g, n in zip(groups, cols, strict=True):
        handles += g + [Line2D([], [], alpha=0.0, label="")] * (rows * n - len(g))
    texts = [str(h.get_label()) for h in handles]
    row_lines = [max(n_lines(t) for t in texts[r::rows]) for r in range(rows)]
    legend_h = LINE_IN * 1.05 * sum(row_lines) + 0.14 if handles else 0.0

    n_blocks = -(-len(panels) // 4)
    per_row = -(-len(panels) // n_blocks)
    nm = max(1, len(metrics))
    left, right, gap = 0.6, 0.15, 0.2
    pw = (width - left - right - gap * (per_row - 1)) / per_row
    heads = [wrap_name(p, pw) for p in panels]
    head_h = LINE_IN * max(n_lines(h) for h in heads) + 0.1
    ah = 1.35 if nm > 1 else 1.9
    vgap = 0.12
    xl = wrap(xlabel, pw)
    foot_h = 0.24 + LINE_IN * n_lines(xl) + 0.06
    block_h = head_h + nm * ah + (nm - 1) * vgap + foot_h
    block_gap = 0.1
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title)
    bottom = legend_h + 0.04
    height = top + n_blocks * block_h + (n_blocks - 1) * block_gap + bottom
    xs_all = sorted({float(x) for line in lines for x in line.x})
    with style():
        fig = new_figure(width, height)
        row_axes: dict[int, Axes] = {}
        for k, panel in enumerate(panels):
            b, c = divmod(k, per_row)
            block_top = height - top - b * (block_h + block_gap)
            for m, (key, name) in enumerate(metrics):
                y0 = block_top - head_h - (m + 1) * ah - m * vgap
                ax = add_axes(fig, left + c * (pw + gap), y0, pw, ah, sharey=row_axes.get(m))
                row_axes.setdefault(m, ax)
                for line, (p, variant, _) in zip(lines, parts, strict=True):
                    if p != panel:
                        continue
                    _draw_line(ax, line, key, *look(line, variant))
                _density_ticks(ax, xs_all, pw)
                ax.grid(alpha=0.3, lw=0.5)
                if c == 0:
                    ax.set_ylabel(name)
                else:
                    ax.tick_params(axis="y", labelleft=False)
                if m == nm - 1:
                    ax.set_xlabel(xl)
                else:
                    ax.tick_params(axis="x", labelbottom=False)
                if m == 0:
                    ax.set_title(heads[k], fontsize=8, pad=3)
        if handles:
            fig.legend(
                handles=handles,
                loc="lower center",
                bbox_to_anchor=(0.5, 0.06 / height),
                ncols=sum(cols),
                frameon=False,
                borderaxespad=0,
            )
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return fig


def _draw_line(ax: Axes, line: Line, key: str, colour: str, marker: str) -> None:
    pts = [(x, s) for x, s in zip(line.x, line.values.get(key, []), strict=False) if s]
    if not pts:
        return
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1].value for p in pts])
    band = np.array([p[1].band() for p in pts])
    ax.plot(
        xs,
        ys,
        color=colour,
        linestyle=line.linestyle,
        marker=marker,
        markersize=3.5,
        lw=1.2,
        label=line.label,
    )
    ax.fill_between(xs, band[:, 0], band[:, 1], color=colour, alpha=0.14, lw=0)


def density_figure(
    lines: Sequence[Line],
    metrics: Sequence[tuple[str, str]],
    xlabel: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_density` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_density(lines, metrics, xlabel, title), out_dir, stem)


# ---------------------------------------------------------------------------------------
# Per-class F1 vs prior


@dataclass(frozen=True)
class ScatterPanel:
    """One model's per-class points and its correlation summary."""

    model: str
    labels: Sequence[str]
    prior: Sequence[float]
    f1: Sequence[float]
    tail: Sequence[bool]
    note: str


def _wrap_note(note: str, width_in: float) -> str:
    """Break a correlation note at its commas when it does not fit on one line."""
    if len(note) * CHAR_IN * 1.1 > width_in:
        note = note.replace(", ", "\n")
    return wrap(note, width_in)


def draw_prior(
    panels: Sequence[ScatterPanel],
    xlabel: str,
    log_x: bool,
    title: str,
) -> Figure:
    """Small multiples, one per model: per-class F1 against the class prior."""
    from matplotlib.ticker import FuncFormatter

    per_row = min(3, len(panels))
    n_grid_rows = -(-len(panels) // per_row)
    width = SINGLE_COLUMN_IN if per_row == 1 else DOUBLE_COLUMN_IN
    left, right, gap = 0.5, 0.15, 0.3
    pw = (width - left - right - gap * (per_row - 1)) / per_row
    heads = [f"{wrap_name(p.model, pw)}\n{_wrap_note(p.note, pw)}" for p in panels]
    head_h = LINE_IN * max(n_lines(h) for h in heads) + 0.1
    xl = wrap(xlabel, pw)
    ph, row_bottom = 1.9, 0.24 + LINE_IN * n_lines(xl) + 0.08
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title)
    row_h = row_bottom + ph + head_h
    height = top + n_grid_rows * row_h
    prior_all = np.concatenate([np.asarray(p.prior, dtype=float) for p in panels])
    use_log = log_x and bool(np.all(prior_all > 0))
    share = bool(prior_all.max() <= 1.0)
    with style():
        fig = new_figure(width, height)
        for k, p in enumerate(panels):
            r, c = divmod(k, per_row)
            ax = add_axes(
                fig, left + c * (pw + gap), height - top - (r + 1) * row_h + row_bottom, pw, ph
            )
            prior = np.asarray(p.prior, dtype=float)
            f1 = np.asarray(p.f1, dtype=float)
            tail = np.asarray(p.tail, dtype=bool)
            ax.scatter(prior[~tail], f1[~tail], s=16, color=OKABE_ITO[0], marker="o", zorder=3)
            ax.scatter(prior[tail], f1[tail], s=22, color=TAIL_COLOUR, marker="^", zorder=3)
            if use_log:
                ax.set_xscale("log")
                lo, hi = prior_all.min() / 1.4, prior_all.max() * 1.8
                ax.set_xlim(lo, hi)
                log_ticks(ax, lo, hi, percent=share)
            else:
                from matplotlib.ticker import MaxNLocator

                span = float(np.ptp(prior_all)) or 1.0
                ax.set_xlim(prior_all.min() - 0.08 * span, prior_all.max() + 0.08 * span)
                ax.xaxis.set_major_locator(MaxNLocator(nbins=max(2, int(pw / 0.5))))
                if share:
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.3g}%"))
            ax.set_ylim(-0.03, 1.05)
            place_labels(fig, ax, list(p.labels), prior, f1)
            ax.set_xlabel(xl)
            if c == 0:
                ax.set_ylabel("per-class F1")
            else:
                ax.tick_params(axis="y", labelleft=False)
            ax.grid(alpha=0.3, lw=0.5)
            ax.set_title(heads[k], fontsize=8, pad=3)
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return fig


def prior_figure(
    panels: Sequence[ScatterPanel],
    xlabel: str,
    log_x: bool,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_prior` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_prior(panels, xlabel, log_x, title), out_dir, stem)
