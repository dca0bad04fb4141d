"""Expand a run configuration into cells, grouped by the model state they need.

A *cell* is one combination of settings (dataset, model, rebalancing, sampler, order,
enrichment, prior correction, seed); it runs on every selected fold. A model's own
``sampler``, ``order``, ``enrichment``, ``rebalancing`` and ``prior_correction`` lists
replace the sweep's for that model. Cells that share a
trained model (dataset, model, rebalancing, seed) form a *group*: the model is fitted once
per fold and its per-frame features serve every sampler, order and prior correction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from itertools import product

from emobench.config import ConfigError, RunConfig
from emobench.longtail.prior import needs_calibration
from emobench.models.registry import inputs_digest
from emobench.video.sampling import parse_spec


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str  # display name
    adapter: str  # registry name
    model_index: int  # position in config.models (for options)
    rebalancing: str
    sampler: str
    order: str
    enrichment: str
    prior_correction: str
    seed: int
    #: the model family's ``inputs_digest`` hook (e.g. imported predictions): a digest of
    #: the files it reads besides the media, part of every part's stamp (an edited file
    #: makes its parts stale); None when the family declares no such files
    inputs: str | None = None

    @property
    def cell_id(self) -> str:
        parts = [
            self.dataset,
            self.model,
            self.rebalancing,
            self.sampler,
            self.order,
            self.enrichment,
            self.prior_correction,
            f"s{self.seed}",
        ]
        return "__".join(_slug(p) for p in parts)

    @property
    def group_key(self) -> tuple[str, int, str, int, bool]:
        """Cells that share a fitted model. A prior correction that needs held-out clips
        (``calibrated-em``) gets its own group: its model is fitted without them
        (:mod:`emobench.runner.prior_hook`)."""
        held_out = needs_calibration(self.prior_correction)
        return (self.dataset, self.model_index, self.rebalancing, self.seed, held_out)

    def settings(self) -> dict[str, object]:
        """The predictions-table setting columns of this cell."""
        spec = parse_spec(self.sampler)
        if spec.k is not None:
            density, unit = float(spec.k), "frames"
        elif spec.fps is not None:
            density, unit = float(spec.fps), "fps"
        else:
            density, unit = None, "all"
        return {
            "dataset": self.dataset,
            "model": self.model,
            "sampler": self.sampler,
            "density": density,
            "density_unit": unit,
            "order": self.order,
            "enrichment": self.enrichment,
            "rebalancing": self.rebalancing,
            "prior_correction": self.prior_correction,
            "seed": self.seed,
        }

    def as_dict(self) -> dict[str, object]:
        """The cell's fields and id (``inputs`` only when set: other cells are unchanged)."""
        out = {"cell_id": self.cell_id, **asdict(self)}
        if self.inputs is None:
            out.pop("inputs")
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def expand(cfg: RunConfig) -> list[Cell]:
    """All cells of the run, in a stable order (dataset, model, rebalancing, seed, ...)."""
    cells: list[Cell] = []
    sw = cfg.sweep
    for ds in cfg.datasets:
        for mi, m in enumerate(cfg.models):
            rebal = m.rebalancing or sw.rebalancing
            priors = m.prior_correction or sw.prior_correction
            enrichments = m.enrichment or sw.enrichment
            samplers = m.sampler or sw.sampler
            orders = m.order or sw.order
            inputs = inputs_digest(m.adapter, m.options)
            for rb, seed, sampler, order, enr, prior in product(
                rebal, sw.seeds, samplers, orders, enrichments, priors
            ):
                cells.append(
                    Cell(
                        ds.name,
                        m.display_name,
                        m.adapter,
                        mi,
                        rb,
                        sampler,
                        order,
                        enr,
                        prior,
                        seed,
                        inputs,
                    )
                )
    ids = [c.cell_id for c in cells]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(
            f"two models produce the same cell {sorted(dup)[0]!r}: give them distinct names"
        )
    return cells


def groups(cells: list[Cell]) -> dict[tuple[str, int, str, int], list[Cell]]:
    """Cells grouped by the fitted model state they share, in first-seen order."""
    out: dict[tuple[str, int, str, int], list[Cell]] = {}
    for c in cells:
        out.setdefault(c.group_key, []).append(c)
    return out
