"""Turn a results folder into figures, ``summary.md`` and a self-contained ``report.html``.

``from emobench.report import report_run`` is the entry point. Attributes load lazily so
that importing :mod:`emobench.report.cli` (for ``emobench --help``) pulls in neither polars
nor matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emobench.report.build import report_run
    from emobench.report.cells import ReportError
    from emobench.report.priors import register_reference_prior

__all__ = [
    "DEFAULT_MAX_CONFUSION",
    "DEFAULT_PRIORS",
    "DEFAULT_REPORT_RESAMPLES",
    "FIGURES_DIR",
    "FINDINGS_FILE",
    "HTML_FILE",
    "SUMMARY_FILE",
    "ReportError",
    "register_reference_prior",
    "report_run",
]

#: Bootstrap resamples for report-time statistics (CI of fold means, paired order tests,
#: and metrics.parquet when the report has to compute it). 500 keeps a 100k-prediction
#: report within seconds; the Monte-Carlo error of a 95% percentile bound is then about
#: a tenth of the interval's half-width. Use ``--resamples 2000`` for a paper's numbers.
DEFAULT_REPORT_RESAMPLES = 500
#: At most this many per-cell confusion-matrix figures (see emobench.report.build).
DEFAULT_MAX_CONFUSION = 24
#: Class priors the per-class F1 is plotted against by default (one figure each): the
#: training-split frequency and the web frequency of each class's emotion words.
DEFAULT_PRIORS = ("train_freq", "web_word_freq")

#: Output names inside the report folder (``emobench report --out``, default RUN/report).
SUMMARY_FILE = "summary.md"
HTML_FILE = "report.html"
#: The study's findings as observed in the run, as data (emobench.report.findings).
FINDINGS_FILE = "findings.json"
#: Subfolder of the report folder holding the figures (PNG + SVG).
FIGURES_DIR = "figures"

_LAZY = {
    "report_run": "emobench.report.build",
    "ReportError": "emobench.report.cells",
    "register_reference_prior": "emobench.report.priors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emobench.report' has no attribute {name!r}")
