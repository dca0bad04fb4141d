"""Metric-vs-density figure: one column of panels per model, CI bands, orders as styles."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.report.figure_layout import (
    DOUBLE_COLUMN_IN,
    LINE_IN,
    MARKERS,
    OKABE_ITO,
    add_axes,
    legend_layout,
    n_lines,
    new_figure,
    style,
    thin_ticks,
    wrap,
    wrap_name,
)
from emobench.report.values import Stat

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
    line styles, other settings as colours and markers, each curve's peak ringed, one
    legend below."""
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
    groups[0].append(
        Line2D([], [], color="0.3", marker="o", markersize=7.5, markerfacecolor="none",
               linestyle="none", label="peak of the curve")
    )  # fmt: skip
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
    if len(xs) >= 3:  # a curve's peak (where the study's bell would turn); not for 1-2 points
        top = int(np.argmax(ys))
        ax.plot(xs[top], ys[top], marker="o", markersize=7.5, markerfacecolor="none",
                markeredgecolor=colour, markeredgewidth=1.1, linestyle="none")  # fmt: skip
