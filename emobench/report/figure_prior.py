"""Per-class F1 vs class prior figure: small multiples, one scatter per model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emobench.report.figure_layout import (
    CHAR_IN,
    DOUBLE_COLUMN_IN,
    LINE_IN,
    OKABE_ITO,
    SINGLE_COLUMN_IN,
    TAIL_COLOUR,
    add_axes,
    log_ticks,
    n_lines,
    new_figure,
    place_labels,
    style,
    wrap,
    wrap_name,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
