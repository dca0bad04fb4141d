"""Layout helpers for the report figures: sizes in inches, colours, text wrapping, tick
choice, legend columns and collision-free point labels.

Figures are laid out by hand in inches (no constrained/tight layout: it is 2-3x faster and
gives exact pixel sizes), so the helpers here estimate how much room text takes from its
character count (:data:`CHAR_IN`, :data:`LINE_IN`) and, where an estimate is not enough
(point labels), measure it with an Agg renderer.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.0
DPI = 150
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
    "text.parse_math": False,  # labels come from model names and files: never mathtext
    "svg.fonttype": "none",  # keep text as text: small, searchable SVGs
    "svg.hashsalt": "emobench",  # deterministic SVG ids
    "path.simplify": True,
}

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


@contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib settings (fonts >= 8 pt, no top/right spines)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def add_axes(
    fig: Figure, left: float, bottom: float, width: float, height: float, **kwargs: Any
) -> Axes:
    """Add axes placed in inches from the figure's lower-left corner."""
    fw, fh = fig.get_size_inches()
    return fig.add_axes((left / fw, bottom / fh, width / fw, height / fh), **kwargs)


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
    parts = re.split(r"(?<=[:/@])", name)
    lines, cur = [], ""
    for part in parts:
        if cur and len(cur) + len(part) > width:
            lines.append(cur)
            cur = part
        else:
            cur += part
    lines.append(cur)
    return "\n".join(textwrap.fill(line, width, break_long_words=True) for line in lines)


def n_lines(text: str) -> int:
    """Number of lines of ``text`` (0 for an empty string)."""
    return text.count("\n") + 1 if text else 0


def text_width(text: str) -> float:
    """Estimated width in inches of the longest line of ``text`` at 8 pt."""
    return CHAR_IN * max((len(line) for line in text.split("\n")), default=0)


# ---------------------------------------------------------------------------------------
# Legends


def legend_layout(
    groups: Sequence[Sequence[str]], width_in: float, *, max_cols: int = 6
) -> tuple[int, list[int]]:
    """Rows and columns per group of a legend whose groups start new columns.

    Returns the fewest rows (and each group's column count) for which the legend fits
    ``width_in``; every column is ``rows`` entries tall, so a caller pads each group with
    blank entries to ``rows`` x its columns (matplotlib splits entries into equal columns).
    Each entry takes its text plus a 2 em handle and 0.8 em padding, columns 2 em spacing
    (matplotlib's defaults at 8 pt). If nothing fits, each group gets one column.
    """
    groups = [list(g) for g in groups if g]
    if not groups:
        return 0, []
    handle_in = (2.0 + 0.8) * 8 / 72
    spacing_in = 2.0 * 8 / 72
    tallest = max(len(g) for g in groups)
    for rows in range(1, tallest + 1):
        cols = [-(-len(g) // rows) for g in groups]
        if sum(cols) > max_cols:
            continue
        widths = [
            handle_in + max(text_width(t) for t in g[c * rows : (c + 1) * rows])
            for g, n in zip(groups, cols, strict=True)
            for c in range(n)
        ]
        if sum(widths) + spacing_in * (len(widths) - 1) <= width_in:
            return rows, cols
    return tallest, [1] * len(groups)


# ---------------------------------------------------------------------------------------
# Ticks


def thin_ticks(
    values: Sequence[float],
    labels: Sequence[str],
    position: Callable[[float], float],
    *,
    pad_in: float = 0.08,
) -> list[int]:
    """Indices of the tick values to label so no two labels touch.

    ``position`` maps a value to inches along the axis; labels are kept greedily from the
    first, each needing half its own and half its neighbour's estimated width plus
    ``pad_in`` of room. The last value replaces its predecessor when that one is in the way
    (a sweep's end point is the one a reader looks for).
    """
    keep: list[int] = []
    half = [0.5 * text_width(lab) for lab in labels]

    def fits(i: int, j: int) -> bool:
        return abs(position(values[j]) - position(values[i])) >= half[i] + half[j] + pad_in

    for i in range(len(values)):
        if not keep or fits(keep[-1], i):
            keep.append(i)
    last = len(values) - 1
    if keep and keep[-1] != last:
        while len(keep) > 1 and not fits(keep[-1], last):
            keep.pop()
        if fits(keep[-1], last):
            keep.append(last)
    return keep


def compact_number(v: float) -> str:
    """A short tick label: ``0.5``, ``20``, ``3k``, ``1.5M``, ``1e-5``."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1e-3:
        return f"{v:.3g}"
    return f"{v:.0e}".replace("e-0", "e-")


def compact_percent(v: float) -> str:
    """A share as a short percent label: ``50%``, ``0.02%``, ``1e-4%``."""
    p = 100 * v
    if p == 0:
        return "0%"
    if abs(p) >= 1e-3:
        return f"{p:.3g}%"
    return f"{p:.0e}%".replace("e-0", "e-")


def log_ticks(ax: Axes, lo: float, hi: float, *, percent: bool) -> None:
    """Readable log-scale ticks on the x axis: few labelled majors, unlabelled minors.

    Ranges over about a decade and a half get decade ticks (at most four); shorter ranges
    add 2x and 5x ticks so at least two are labelled. Labels are compact
    (:func:`compact_percent` / :func:`compact_number`).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = (1.0,) if decades >= 1.5 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=4))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    ax.xaxis.set_minor_formatter(NullFormatter())
    fmt = compact_percent if percent else compact_number
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt(v)))


# ---------------------------------------------------------------------------------------
# Point labels


def place_labels(
    fig: Figure, ax: Axes, labels: Sequence[str], x: np.ndarray, y: np.ndarray
) -> None:
    """Annotate points with their names, greedily avoiding overlaps.

    Labels are placed from the highest point down; each tries a few offsets around its
    point (right, left, above, below) and keeps the first whose measured box stays inside
    the axes and clear of the labels and points already placed. When none is clear, the
    one inside the axes that overlaps least is used.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    ax_box = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([x, y]))
    r = 4.0  # marker half-size in pixels
    taken = [(px - r, py - r, px + r, py + r) for px, py in pts]
    offsets = [(4, -4), (-4, -4), (3, 3), (-3, 3), (0, 5), (0, -13), (4, -14), (-4, -14)]
    offsets += [(4, 6), (-4, 6), (4, -20), (-4, -20), (0, 12), (0, -20)]

    def inside(b: Any) -> bool:
        return b.x0 >= ax_box.x0 and b.x1 <= ax_box.x1 and b.y0 >= ax_box.y0 and b.y1 <= ax_box.y1

    def outside(b: Any) -> float:
        w = max(0.0, min(b.x1, ax_box.x1) - max(b.x0, ax_box.x0))
        h = max(0.0, min(b.y1, ax_box.y1) - max(b.y0, ax_box.y0))
        return b.width * b.height - w * h

    def overlap(b: Any) -> float:
        return sum(
            max(0.0, min(b.x1, t[2]) - max(b.x0, t[0]))
            * max(0.0, min(b.y1, t[3]) - max(b.y0, t[1]))
            for t in taken
        )

    for i in np.argsort(-y):
        text = ax.annotate(
            labels[i],
            (x[i], y[i]),
            xytext=(0, 0),
            textcoords="offset points",
            fontsize=8,
            va="bottom",
        )
        best: tuple[float, tuple[int, int], Any] | None = None
        for dx, dy in offsets:
            text.set_position((dx, dy))
            text.set_ha("right" if dx < 0 else "center" if dx == 0 else "left")
            box = text.get_window_extent(renderer)
            # outside the axes ranks after any overlap inside it
            cost = overlap(box) if inside(box) else 1e9 + outside(box)
            if best is None or cost < best[0]:
                best = (cost, (dx, dy), box)
            if cost == 0:
                break
        assert best is not None
        dx, dy = best[1]
        text.set_position((dx, dy))
        text.set_ha("right" if dx < 0 else "center" if dx == 0 else "left")
        if abs(dy) > 10:  # placed away from its point: a leader line says whose it is
            text.remove()
            text = ax.annotate(
                labels[i],
                (x[i], y[i]),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=8,
                va="bottom",
                ha=text.get_ha(),
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkB": 3},
            )
        box = best[2]
        taken.append((box.x0, box.y0, box.x1, box.y1))
