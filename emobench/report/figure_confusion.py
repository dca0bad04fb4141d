"""Confusion-matrix figures: one cell's matrix and the models side by side.

Rows are true classes ordered head -> tail, colour is the row-normalised recall; tail
classes are marked and coloured (see :mod:`emobench.report.figures`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.report.figure_layout import (
    CHAR_IN,
    DOUBLE_COLUMN_IN,
    LINE_IN,
    SINGLE_COLUMN_IN,
    TAIL_COLOUR,
    TAIL_MARK,
    add_axes,
    n_lines,
    new_figure,
    style,
    wrap,
    wrap_name,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
