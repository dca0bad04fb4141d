"""Report figures (matplotlib, no pyplot state): confusion matrices, long-tail recall bars,
metric-vs-density curves and per-class F1 vs prior scatters.

Every function takes plain data (numpy arrays, lists, :class:`~emobench.report.values.Stat`)
and writes ``<stem>.png`` and ``<stem>.svg`` into a folder, returning the two file names.
Sizes follow paper columns (3.5 in single, 7 in double), fonts are >= 8 pt, and colours
come from the Okabe-Ito colour-blind-safe palette. Layouts are computed by hand in inches
(no constrained/tight layout): it is 2-3x faster and gives exact pixel sizes.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.report.values import Stat

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.0
DPI = 150
#: Marker appended to tail-class tick labels (colour alone is not enough in greyscale).
TAIL_MARK = " *"
#: Approximate width of one character and height of one text line at 8-9 pt, in inches.
CHAR_IN = 0.068
LINE_IN = 0.17

RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # keep text as text: small, searchable SVGs
    "svg.hashsalt": "emobench",  # deterministic SVG ids
    "path.simplify": True,
}


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _axes(fig: Figure, left: float, bottom: float, width: float, height: float) -> Axes:
    """Add axes placed in inches from the figure's lower-left corner."""
    fw, fh = fig.get_size_inches()
    return fig.add_axes((left / fw, bottom / fh, width / fw, height / fh))


def save(fig: Figure, out_dir: Path, stem: str) -> tuple[str, str]:
    """Write ``stem.png`` (DPI) and ``stem.svg``; return their names (relative to out_dir)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = f"{stem}.png", f"{stem}.svg"
    fig.savefig(out_dir / png, dpi=DPI, metadata={"Software": None})
    fig.savefig(out_dir / svg, metadata={"Date": None})
    return png, svg


def wrap(text: str, width_in: float, *, char_in: float = CHAR_IN * 1.1) -> str:
    """Wrap each line of ``text`` to fit ``width_in`` inches."""
    width = max(8, int(width_in / char_in))
    lines = []
    for para in text.split("\n"):
        lines += textwrap.wrap(para, width=width, break_long_words=True) or [""]
    return "\n".join(lines)


def wrap_name(name: str, width_in: float) -> str:
    """Break a model name (``family:id``) after ``:`` or ``/`` to fit ``width_in`` inches."""
    width = max(6, int(width_in / (0.9 * CHAR_IN)))  # 8 pt tick labels run narrower
    if len(name) <= width:
        return name
    parts = re.split(r"(?<=[:/])", name)
    lines, cur = [], ""
    for part in parts:
        if cur and len(cur) + len(part) > width:
            lines.append(cur)
            cur = part
        else:
            cur += part
    lines.append(cur)
    return "\n".join(textwrap.fill(line, width, break_long_words=True) for line in lines)


def _n_lines(text: str) -> int:
    return text.count("\n") + 1 if text else 0


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


def _draw_confusion(
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


def confusion_figure(
    counts: np.ndarray,
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
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
    top = 0.12 + LINE_IN * _n_lines(title)
    height = bottom + cell * nrows + top
    with _style():
        fig = _figure(width, height)
        ax = _axes(fig, left, bottom, cell * ncols, cell * nrows)
        image = _draw_confusion(
            ax, counts, labels, groups, tail, show_invalid=show_invalid, annotate="counts"
        )
        cax = _axes(fig, left + cell * ncols + 0.1, bottom, 0.11, cell * nrows)
        fig.colorbar(image, cax=cax, label="row share (recall)")
        fig.text(0.1 / width, 1 - 0.06 / height, title, ha="left", va="top", fontsize=9)
        return save(fig, out_dir, stem)


def confusion_grid_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: Sequence[str],
    groups: Mapping[str, str],
    tail: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
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
    title_h = LINE_IN * max(_n_lines(t) for t in panel_titles) + 0.08
    row_bottom = ext * math.sin(math.radians(60)) + 0.36
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * _n_lines(title)
    row_h = row_bottom + ph + title_h
    height = top + n_grid_rows * row_h
    with _style():
        fig = _figure(width, height)
        image = None
        for k, (_, counts) in enumerate(panels):
            r, c = divmod(k, per_row)
            x0 = left + c * (pw + gap)
            y0 = height - top - (r + 1) * row_h + row_bottom
            ax = _axes(fig, x0, y0, pw, ph)
            image = _draw_confusion(
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
            cax = _axes(fig, width - right + 0.1, height - top - row_h + row_bottom, 0.11, ph)
            fig.colorbar(image, cax=cax, label="row share (recall)")
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return save(fig, out_dir, stem)


# ---------------------------------------------------------------------------------------
# Head / medium / tail recall


@dataclass(frozen=True)
class GroupBars:
    """One model's group recalls (reference cell) and its head - tail gap."""

    model: str
    recalls: Mapping[str, Stat]
    gap: float | None


def longtail_figure(
    bars: Sequence[GroupBars],
    group_names: Sequence[str],
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Grouped bars of recall per class group for each model, gap annotated above."""
    n, g = len(bars), len(group_names)
    width = SINGLE_COLUMN_IN if n <= 3 else DOUBLE_COLUMN_IN
    left, right = 0.5, 0.1
    aw = width - left - right
    names = [wrap_name(b.model, aw / n - 0.05) for b in bars]
    bottom = 0.12 + LINE_IN * max(_n_lines(s) for s in names)
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * _n_lines(title) + LINE_IN + 0.08  # title + legend row
    height = bottom + 2.0 + top
    bar_w = 0.8 / g
    x = np.arange(n)
    with _style():
        fig = _figure(width, height)
        ax = _axes(fig, left, bottom, aw, 2.0)
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
            bbox_to_anchor=(left / width, 1 - (0.1 + LINE_IN * _n_lines(title)) / height),
            ncols=g,
            frameon=False,
            borderaxespad=0,
            handlelength=1.5,
            columnspacing=1.0,
        )
        fig.text(0.1 / width, 1 - 0.06 / height, title, ha="left", va="top", fontsize=9)
        return save(fig, out_dir, stem)


# ---------------------------------------------------------------------------------------
# Metric vs density


@dataclass(frozen=True)
class Line:
    """One curve: x positions, values and CI band per metric, and its look."""

    label: str
    x: Sequence[float]
    values: Mapping[str, Sequence[Stat | None]]
    colour: str
    linestyle: str = "-"
    marker: str = "o"


def density_figure(
    lines: Sequence[Line],
    metrics: Sequence[tuple[str, str]],
    xlabel: str,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """One panel per metric (e.g. macro-F1, UAR): value vs density with CI bands."""
    width = DOUBLE_COLUMN_IN
    ncol_legend = 3 if max((len(line.label) for line in lines), default=0) < 34 else 2
    legend_rows = -(-len(lines) // ncol_legend)
    title = wrap(title, width - 0.2)
    top = 0.14 + LINE_IN * _n_lines(title)
    legend_h = LINE_IN * legend_rows + 0.12
    bottom = 0.45 + legend_h
    left, right, gap = 0.55, 0.15, 0.6
    ah = 2.1
    aw = (width - left - right - gap * (len(metrics) - 1)) / len(metrics)
    height = bottom + ah + top
    xs_all = sorted({float(x) for line in lines for x in line.x})
    with _style():
        fig = _figure(width, height)
        handles = []
        for k, (key, name) in enumerate(metrics):
            ax = _axes(fig, left + k * (aw + gap), bottom, aw, ah)
            for line in lines:
                pts = [(x, s) for x, s in zip(line.x, line.values.get(key, []), strict=False) if s]
                if not pts:
                    continue
                xs = np.array([p[0] for p in pts])
                ys = np.array([p[1].value for p in pts])
                band = np.array([p[1].band() for p in pts])
                (h,) = ax.plot(
                    xs,
                    ys,
                    color=line.colour,
                    linestyle=line.linestyle,
                    marker=line.marker,
                    markersize=3.5,
                    lw=1.2,
                    label=line.label,
                )
                ax.fill_between(xs, band[:, 0], band[:, 1], color=line.colour, alpha=0.14, lw=0)
                if k == 0:
                    handles.append(h)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(name)
            ax.grid(alpha=0.3, lw=0.5)
            if len(xs_all) <= 12:
                ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.06 / height),
            ncols=min(ncol_legend, max(1, len(handles))),
            frameon=False,
            borderaxespad=0,
        )
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return save(fig, out_dir, stem)


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


def _place_labels(
    fig: Figure, ax: Axes, labels: Sequence[str], x: np.ndarray, y: np.ndarray
) -> None:
    """Annotate points with their class names, greedily avoiding overlaps.

    Labels are placed from the highest point down; each tries a few offsets around its
    point (right, left, above, below) and keeps the first whose measured box stays inside
    the axes and clear of the labels and points already placed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    ax_box = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([x, y]))
    r = 4.0  # marker half-size in pixels
    taken = [(px - r, py - r, px + r, py + r) for px, py in pts]
    offsets = [(4, -4), (-4, -4), (3, 3), (-3, 3), (0, 5), (0, -13), (4, -14), (-4, -14)]

    def free(b: Any) -> bool:
        if b.x0 < ax_box.x0 or b.x1 > ax_box.x1 + 4 or b.y0 < ax_box.y0 or b.y1 > ax_box.y1:
            return False
        return not any(b.x0 < t[2] and t[0] < b.x1 and b.y0 < t[3] and t[1] < b.y1 for t in taken)

    for i in np.argsort(-y):
        text = ax.annotate(
            labels[i],
            (x[i], y[i]),
            xytext=(0, 0),
            textcoords="offset points",
            fontsize=8,
            va="bottom",
        )
        best = None
        for dx, dy in offsets:
            text.set_position((dx, dy))
            text.set_ha("right" if dx < 0 else "center" if dx == 0 else "left")
            box = text.get_window_extent(renderer)
            if free(box):
                best = box
                break
        if best is None:  # nothing free: right of the point
            text.set_position(offsets[0])
            text.set_ha("left")
            best = text.get_window_extent(renderer)
        taken.append((best.x0, best.y0, best.x1, best.y1))


def prior_figure(
    panels: Sequence[ScatterPanel],
    xlabel: str,
    log_x: bool,
    title: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Small multiples, one per model: per-class F1 against the class prior."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    per_row = min(3, len(panels))
    n_grid_rows = -(-len(panels) // per_row)
    width = SINGLE_COLUMN_IN if per_row == 1 else DOUBLE_COLUMN_IN
    left, right, gap = 0.5, 0.15, 0.3
    pw = (width - left - right - gap * (per_row - 1)) / per_row
    heads = [wrap(f"{p.model}\n{p.note}", pw, char_in=0.06) for p in panels]
    head_h = LINE_IN * max(_n_lines(h) for h in heads) + 0.08
    ph, row_bottom = 1.9, 0.42
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * _n_lines(title)
    row_h = row_bottom + ph + head_h
    height = top + n_grid_rows * row_h
    prior_all = np.concatenate([np.asarray(p.prior, dtype=float) for p in panels])
    use_log = log_x and bool(np.all(prior_all > 0))
    with _style():
        fig = _figure(width, height)
        for k, p in enumerate(panels):
            r, c = divmod(k, per_row)
            ax = _axes(
                fig, left + c * (pw + gap), height - top - (r + 1) * row_h + row_bottom, pw, ph
            )
            prior = np.asarray(p.prior, dtype=float)
            f1 = np.asarray(p.f1, dtype=float)
            tail = np.asarray(p.tail, dtype=bool)
            ax.scatter(prior[~tail], f1[~tail], s=16, color=OKABE_ITO[0], marker="o", zorder=3)
            ax.scatter(prior[tail], f1[tail], s=22, color=TAIL_COLOUR, marker="^", zorder=3)
            if use_log:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_minor_formatter(NullFormatter())
                if prior_all.max() <= 1.0:  # shares: show as percent
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:g}%"))
                else:
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
                ax.set_xlim(prior_all.min() / 1.4, prior_all.max() * 1.8)
            else:
                span = float(np.ptp(prior_all)) or 1.0
                ax.set_xlim(prior_all.min() - 0.08 * span, prior_all.max() + 0.08 * span)
            ax.set_ylim(-0.03, 1.05)
            _place_labels(fig, ax, list(p.labels), prior, f1)
            ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel("per-class F1")
            else:
                ax.tick_params(axis="y", labelleft=False)
            ax.grid(alpha=0.3, lw=0.5)
            ax.set_title(heads[k], fontsize=8, pad=3)
        fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=9)
        return save(fig, out_dir, stem)
