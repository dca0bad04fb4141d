"""The options of one report: :class:`ReportOptions`, built once by the CLI or a script.

Only the standard library loads at import time (the CLI builds the options inside its
command body); checks that need the metrics or priors import them when they run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emobench.report import DEFAULT_MAX_CONFUSION, DEFAULT_PRIORS, DEFAULT_REPORT_RESAMPLES
from emobench.report.priors import get_prior

#: Most bootstrap resamples (``--resamples``, ``[metrics] n_resamples``): enough for a
#: p-value of 1e-5, and resamples × clips values still fit in memory.
MAX_RESAMPLES = 100_000

#: Report outputs besides the figures: ``md`` (summary.md) and ``html`` (report.html).
FORMATS: tuple[str, ...] = ("md", "html")


def _error(message: str) -> Exception:
    # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
    from emobench.report.cells import ReportError

    return ReportError(message)


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,html"`` or ``("md", "html")`` -> validated tuple; raises ``ReportError``."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(f.strip().lower() for f in items if f and f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise _error(
            f"unknown report format(s) {bad or list(items)}; choose from {', '.join(FORMATS)}"
        )
    return out


def parse_reference(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["density=8", "order=original"]`` -> ``{"density": "8", ...}`` (settings checked)."""
    # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
    from emobench.report.cells import setting_columns

    if items is None:
        return {}
    pairs = list(items.items()) if isinstance(items, Mapping) else []
    if not isinstance(items, Mapping):
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise _error(f"reference setting {item!r} is not KEY=VALUE")
            pairs.append((key.strip(), value.strip()))
    known = set(setting_columns()) - {"dataset", "model"}
    bad = sorted(k for k, _ in pairs if k not in known)
    if bad:
        raise _error(f"unknown reference setting(s) {bad}; use one of {', '.join(sorted(known))}")
    return {k: str(v) for k, v in pairs}


def check_reference_values(reference: Mapping[str, str], predictions: Any) -> None:
    """Refuse a reference setting whose value no cell of the run has (a ``ReportError``
    naming the values the run has): a typo would otherwise silently fall back to the
    default reference cell of every model."""
    # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
    from emobench.report.cells import matches

    for key, want in reference.items():
        if key not in predictions.columns:
            continue
        values = predictions.get_column(key).unique().to_list()
        if not any(matches({key: v}, {key: want}) for v in values):
            have = sorted({_shown(v) for v in values})
            raise _error(
                f"reference setting {key}={want} matches no cell of this run; "
                f"its {key} values: {', '.join(have) or 'none'}"
            )


def _shown(value: Any) -> str:
    """A setting value as a reference would name it (``8`` for 8.0, ``none`` for null)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class ReportOptions:
    """Everything :func:`~emobench.report.build.report_run` needs besides the run folder.

    ``out`` defaults to ``<run>/report``. ``formats``: ``"md,html"`` or a sequence of
    :data:`FORMATS` (figures are always written). ``rule``/``head``/``tail`` choose the
    head / medium / tail grouping (None: what metrics.parquet used, else ``relative`` with
    the rule's default thresholds). ``prior`` names one or more registered class priors
    (:mod:`emobench.report.priors`): one F1-vs-prior plot and correlation table each.
    ``reference`` (``["density=8"]`` or a mapping) narrows which cell represents each model
    in the model comparisons. ``max_confusion`` caps the per-cell confusion figures,
    ``n_resamples``/``seed`` drive the bootstraps, ``recompute`` recomputes the metrics
    even when metrics.parquet exists (the file is left unchanged). ``workers`` > 0 draws
    the figures in that many helper processes (``spawn``) while statistics are computed: a
    script doing so must guard its top level with ``if __name__ == "__main__":`` (the CLI
    does; 0, the default, draws here). ``screenshot`` opens ``report.html`` in headless
    Chromium when one is installed (:mod:`emobench.report.browser`), saves the first
    screen as ``report.png`` (linked from ``summary.md``) and warns about what a reader
    would meet (console errors, figures not shown, the findings table below the first
    screen, horizontal scroll).

    Construction normalises ``formats`` / ``prior`` to tuples and ``reference`` to a dict,
    and checks every value (unknown format, prior, rule or setting, counts below their
    minimum) with a ``ReportError`` naming it.
    """

    out: Path | str | None = None
    formats: str | Iterable[str] = FORMATS
    n_resamples: int = DEFAULT_REPORT_RESAMPLES
    rule: str | None = None
    head: float | None = None
    tail: float | None = None
    prior: str | Sequence[str] = DEFAULT_PRIORS
    reference: Iterable[str] | Mapping[str, str] | None = None
    max_confusion: int = DEFAULT_MAX_CONFUSION
    seed: int = 0
    recompute: bool = False
    workers: int = 0
    screenshot: bool = False

    def __post_init__(self) -> None:
        prior = self.prior
        priors = (prior,) if isinstance(prior, str) else tuple(dict.fromkeys(prior))
        if not priors:
            raise _error("at least one class prior is needed (e.g. train_freq)")
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "prior", priors)
        set_(self, "formats", parse_formats(self.formats))
        set_(self, "reference", parse_reference(self.reference))
        if self.out is not None:
            set_(self, "out", Path(self.out))
        for name in priors:
            get_prior(name)
        if self.rule is not None:
            # lazy: pulls in numpy, polars; kept off `emobench --help`
            from emobench.metrics import get_rule

            get_rule(self.rule)
        if not 1 <= self.n_resamples <= MAX_RESAMPLES:
            raise _error(
                f"n_resamples must be in 1..{MAX_RESAMPLES} (got {self.n_resamples}); "
                "a bootstrap holds resamples × clips values in memory"
            )
        if self.max_confusion < 0:
            raise _error(f"max_confusion must be >= 0 (got {self.max_confusion})")
        if self.seed < 0:  # numpy's generators take non-negative seeds only
            raise _error(f"seed must be >= 0 (got {self.seed})")
