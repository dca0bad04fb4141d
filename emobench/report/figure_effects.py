"""Effect figure: one Δ per row with its 95% CI (a forest plot), coloured by group.

Used for the findings whose evidence is a per-model Δ: Δ UAR under frame shuffling
(vision-only vs VLM, order-invariant models drawn hollow) and Δ UAR of MSCE against
``none`` and ``msce-dense`` on micro-expression clips. The rows come from
``findings.json``-level data (the statements' parts); nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emobench.report.figure_layout import (
    DOUBLE_COLUMN_IN,
    LINE_IN,
    OKABE_ITO,
    add_axes,
    n_lines,
    new_figure,
    save,
    style,
    text_width,
    wrap,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class EffectRow:
    """One row: its label, Δ with 95% CI (None bounds: no interval), its group (colour
    and legend) and whether it is drawn hollow (``hollow_note`` says why, in the legend)."""

    label: str
    value: float
    lo: float | None
    hi: float | None
    group: str
    hollow: bool = False


def draw_effects(
    rows: Sequence[EffectRow],
    xlabel: str,
    title: str,
    *,
    hollow_note: str = "",
) -> Figure:
    """Dots with 95% CI bars, one row per :class:`EffectRow` (top to bottom), a line at
    0, one colour per group (legend above), hollow markers for ``hollow`` rows."""
    from matplotlib.lines import Line2D

    groups = list(dict.fromkeys(r.group for r in rows))
    colours = {g: OKABE_ITO[i % len(OKABE_ITO)] for i, g in enumerate(groups)}
    width = DOUBLE_COLUMN_IN
    label_w = min(3.0, max([text_width(r.label) for r in rows] + [0.5]) + 0.15)
    left, right = label_w + 0.1, 0.2
    row_h = 0.26
    title = wrap(title, width - 0.2)
    top = 0.12 + LINE_IN * n_lines(title) + LINE_IN + 0.12
    bottom = 0.45
    ah = max(row_h * len(rows), 0.6)
    height = bottom + ah + top
    with style():
        fig = new_figure(width, height)
        ax = add_axes(fig, left, bottom, width - left - right, ah)
        n = len(rows)
        for i, r in enumerate(rows):
            y = n - 1 - i
            c = colours[r.group]
            if r.lo is not None and r.hi is not None:
                ax.plot([r.lo, r.hi], [y, y], color=c, lw=1.4, solid_capstyle="butt")
            ax.plot(
                [r.value],
                [y],
                marker="o",
                ms=5,
                color=c,
                markerfacecolor="white" if r.hollow else c,
                markeredgewidth=1.2,
                linestyle="none",
            )
        ax.axvline(0.0, color="#555555", lw=0.8, ls="--")
        ax.set_yticks(range(n), [r.label for r in reversed(rows)])
        ax.set_ylim(-0.6, n - 0.4)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
        ax.set_axisbelow(True)
        handles = [
            Line2D([], [], marker="o", color=colours[g], linestyle="-", label=g) for g in groups
        ]
        if hollow_note and any(r.hollow for r in rows):
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    color="#555555",
                    markerfacecolor="white",
                    linestyle="none",
                    label=hollow_note,
                )
            )
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.1 / width, 1 - (0.1 + LINE_IN * n_lines(title)) / height),
            ncols=len(handles),
            frameon=False,
            borderaxespad=0,
            handlelength=1.5,
            columnspacing=1.0,
        )
        fig.text(0.1 / width, 1 - 0.06 / height, title, ha="left", va="top", fontsize=9)
        return fig


def effects_figure(
    rows: Sequence[EffectRow],
    xlabel: str,
    title: str,
    hollow_note: str,
    out_dir: Path,
    stem: str,
) -> tuple[str, str]:
    """Draw :func:`draw_effects` and write it as ``stem.png`` / ``stem.svg``."""
    with style():
        return save(draw_effects(rows, xlabel, title, hollow_note=hollow_note), out_dir, stem)
