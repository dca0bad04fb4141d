"""Report figures (matplotlib, no pyplot state): confusion matrices, long-tail recall bars,
metric-vs-density curves and per-class F1 vs prior scatters.

Every figure has a ``draw_*`` function that takes plain data (numpy arrays, lists,
:class:`~emobench.report.values.Stat`) and returns the :class:`~matplotlib.figure.Figure`
(one module per figure family: :mod:`~emobench.report.figure_confusion`,
:mod:`~emobench.report.figure_longtail`, :mod:`~emobench.report.figure_density`,
:mod:`~emobench.report.figure_prior`), and here a ``*_figure`` function with the same
arguments plus a folder and a file stem that draws it and writes ``<stem>.png`` and
``<stem>.svg`` through :func:`save`, returning the two file names (what
:class:`~emobench.report.jobs.FigureJobs` runs). Sizes follow paper columns (3.5 in
single, 7 in double), fonts are >= 8 pt, and colours come from the Okabe-Ito
colour-blind-safe palette. Layouts are computed by hand in inches
(:mod:`emobench.report.figure_layout`), not by constrained/tight layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emobench.report.figure_confusion import draw_confusion, draw_confusion_grid, row_normalise
from emobench.report.figure_density import LINE_COLOURS, Line, draw_density
from emobench.report.figure_layout import (
    DOUBLE_COLUMN_IN,
    DPI,
    GROUP_COLOURS,
    GROUP_HATCHES,
    LINESTYLES,
    MARKERS,
    OKABE_ITO,
    RC,
    SINGLE_COLUMN_IN,
    TAIL_COLOUR,
    TAIL_MARK,
    save,
    style,
    wrap,
    wrap_name,
)
from emobench.report.figure_longtail import GroupBars, draw_longtail
from emobench.report.figure_prior import ScatterPanel, draw_prior

__all__ = [
    "DOUBLE_COLUMN_IN",
    "DPI",
    "GROUP_COLOURS",
    "GROUP_HATCHES",
    "LINESTYLES",
    "LINE_COLOURS",
    "MARKERS",
    "OKABE_ITO",
    "RC",
    "SINGLE_COLUMN_IN",
    "TAIL_COLOUR",
    "TAIL_MARK",
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
