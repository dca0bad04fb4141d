"""Data preparation for the report: cells, class orders, pooled confusions, reference cells,
density series, order comparisons and metric look-ups.

Everything here is plain polars / numpy (no matplotlib, no torch) so it can be tested and
timed on its own. Figures and tables only format what these functions return. The code
lives in three modules by concern; this one re-exports their names:

* :mod:`emobench.report.cells` -- settings, "off" values, the cell table, reference cells;
* :mod:`emobench.report.scores` -- class groups, confusions per (cell, fold), across-fold
  CIs and the metric look-up (group rules and the fold-mean bootstrap,
  :func:`fold_mean_ci`, come from :mod:`emobench.metrics`);
* :mod:`emobench.report.comparisons` -- density sweeps, frame-order and switch pairs.
"""

from __future__ import annotations

from emobench.metrics import fold_mean_ci
from emobench.report.cells import (
    DEFAULT_SETTING_COLUMNS,
    SWITCH_REFERENCE,
    ReportError,
    cell_table,
    confusion_cells,
    describe_cell,
    is_off,
    is_reference,
    matches,
    reference_cells,
    setting_columns,
    slug,
    varying_settings,
)
from emobench.report.comparisons import (
    OrderComparison,
    Series,
    density_series,
    order_comparison,
    order_pairs,
    switch_pairs,
)
from emobench.report.scores import (
    CellConfusion,
    DatasetInfo,
    MetricLookup,
    cell_confusions,
    dataset_infos,
    fill_fold_mean_cis,
    metric_lookup,
)
from emobench.report.values import Stat

__all__ = [
    "DEFAULT_SETTING_COLUMNS",
    "SWITCH_REFERENCE",
    "CellConfusion",
    "DatasetInfo",
    "MetricLookup",
    "OrderComparison",
    "ReportError",
    "Series",
    "Stat",
    "cell_confusions",
    "cell_table",
    "confusion_cells",
    "dataset_infos",
    "density_series",
    "describe_cell",
    "fill_fold_mean_cis",
    "fold_mean_ci",
    "is_off",
    "is_reference",
    "matches",
    "metric_lookup",
    "order_comparison",
    "order_pairs",
    "reference_cells",
    "setting_columns",
    "slug",
    "switch_pairs",
    "varying_settings",
]
