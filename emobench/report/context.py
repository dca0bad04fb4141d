"""What every report section shares: :class:`ReportContext`, computed once per report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from emobench.report import FIGURES_DIR
from emobench.report import analysis as an
from emobench.report.document import Figure
from emobench.report.jobs import FigureJobs
from emobench.results import Manifest


@dataclass
class ReportContext:
    """Everything the sections need, computed once."""

    run_path: Path
    out_dir: Path
    fig_dir: Path
    manifest: Manifest
    predictions: pl.DataFrame
    settings: tuple[str, ...]
    cells: pl.DataFrame
    rows: dict[str, dict[str, Any]]
    varying: list[str]
    infos: dict[str, an.DatasetInfo]
    confusions: dict[str, an.CellConfusion]
    lookup: an.MetricLookup
    refs: dict[tuple[str, str], dict[str, Any]]
    rule: str
    n_resamples: int
    seed: int
    prior: tuple[str, ...]
    max_confusion: int
    model_colours: dict[str, str]
    jobs: FigureJobs
    notes: list[str] = field(default_factory=list)
    stems: set[str] = field(default_factory=set)
    #: the study's findings as computed by the findings section (``findings.json``)
    findings: list[Any] = field(default_factory=list)

    def submit(self, fn: Callable[..., tuple[str, str]], *args: Any) -> tuple[str, str]:
        """Queue a figure function (last two args: folder, stem); return its file names."""
        self.jobs.submit(fn, *args)
        stem = args[-1]
        return f"{stem}.png", f"{stem}.svg"

    def figure(self, written: tuple[str, str], caption: str) -> Figure:
        """A figure block for files written into the figures folder."""
        png, svg = written
        return Figure(f"{FIGURES_DIR}/{png}", f"{FIGURES_DIR}/{svg}", caption)

    def stem(self, *parts: Any, cell_id: str | None = None) -> str:
        """A stable, sanitised, unique figure file stem."""
        base = an.slug(*parts)
        stem = base
        if stem in self.stems:
            import hashlib

            digest = hashlib.sha1(str(cell_id or len(self.stems)).encode()).hexdigest()[:8]
            stem = f"{base}_{digest}"
        self.stems.add(stem)
        return stem

    def dataset_rows(self, dataset: str) -> list[dict[str, Any]]:
        """The cells of one dataset (table order)."""
        return [r for r in self.rows.values() if r["dataset"] == dataset]

    def dataset_refs(self, dataset: str) -> list[dict[str, Any]]:
        """The reference cell of each model on one dataset."""
        return [r for (ds, _), r in self.refs.items() if ds == dataset]

    def switches(self) -> list[str]:
        """The long-tail switches (and seed) that vary in this run, for cell descriptions."""
        return [
            k
            for k in ("enrichment", "rebalancing", "prior_correction", "seed")
            if k in self.varying
        ]
