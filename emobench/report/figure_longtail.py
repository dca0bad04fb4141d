"""Long-tail figure: recall per class group (head / medium / tail) for each model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emobench.report.figure_layout import (
    DOUBLE_COLUMN_IN,
    GROUP_COLOURS,
    GROUP_HATCHES,
    LINE_IN,
    SINGLE_COLUMN_IN,
    add_axes,
    n_lines,
    new_figure,
    style,
    wrap,
    wrap_name,
)
from emobench.report.values import Stat

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
