"""The engine's book of parts: where each (cell, fold) part and skip list lives, what it
is stamped with, which existing parts are reusable, stale or damaged, and the grid's state
(:class:`PartBook`, a base of :class:`emobench.runner.execute.Engine`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from emobench.config import ConfigError, RunConfig
from emobench.data.index import fingerprint
from emobench.io import write_json_atomic
from emobench.runner.media import MediaReader
from emobench.runner.parts import Audit, audit, make_stamp, media_fingerprint, read_info
from emobench.runner.plan import Cell

PLAN_FILE = "plan.json"
PARTS_DIR = "parts"


class PartBook:
    """Parts, stamps and the audit of one results folder (state lives on the engine)."""

    cfg: RunConfig
    out: Path
    cells: list[Cell]
    media: MediaReader
    warnings: list[str]
    skipped: list[dict[str, Any]]
    _audit: Audit | None
    _indices: dict[str, pl.DataFrame]
    _labels: dict[str, list[str]]
    _data_stamps: dict[tuple[str, int], tuple[str, str]]

    def folds(self, dataset: str) -> list[int]:
        return sorted(self._indices[dataset]["fold"].unique().to_list())

    def part_path(self, cell: Cell, fold: int) -> Path:
        return self.out / PARTS_DIR / f"{cell.cell_id}__f{fold}.parquet"

    def _skip_path(self, cell: Cell, fold: int) -> Path:
        return self.out / PARTS_DIR / f"{cell.cell_id}__f{fold}.skipped.json"

    def cell_recipe(self, cell: Cell) -> dict[str, Any]:
        """Every setting that can change a cell's predictions (part of each part's stamp)."""
        m = self.cfg.models[cell.model_index]
        ds = next(d for d in self.cfg.datasets if d.name == cell.dataset)
        settings = cell.as_dict()
        settings.pop("model_index")  # reordering the models list changes nothing
        return {
            "cell": settings,
            "model": {"adapter": m.adapter, "options": m.options},
            "dataset_options": ds.options,
            "train": self.cfg.train,
            "limit": self.cfg.limit,
            "video": {**self.cfg.video.model_dump(mode="json"), "frames": self.media.identity},
            "fingerprint": self.cfg.cache.fingerprint,
        }

    def stamp(self, cell: Cell, fold: int) -> dict[str, Any]:
        """What a part of (cell, fold) made now would be stamped with."""
        key = (cell.dataset, fold)
        if key not in self._data_stamps:
            rows = self._indices[cell.dataset].filter(pl.col("fold") == fold)
            data = f"{fingerprint(rows)}|{','.join(self._labels[cell.dataset])}"
            media = media_fingerprint(
                zip(rows["clip_id"], rows["path"], strict=True), self.cfg.cache.fingerprint
            )
            self._data_stamps[key] = (data, media)
        data, media = self._data_stamps[key]
        return make_stamp(self.cell_recipe(cell), data, media)

    def audit(self) -> Audit:
        """Existing parts of this configuration: reusable, stale or damaged."""
        keys = {(c.cell_id, f): (c, f) for c in self.cells for f in self.folds(c.dataset)}
        paths = {k: self.part_path(c, f) for k, (c, f) in keys.items()}
        present = {k for k, p in paths.items() if p.is_file()}
        stamps = {k: self.stamp(*keys[k]) for k in present}
        result = audit({k: paths[k] for k in present}, stamps)
        for key in sorted(result.ok):
            try:  # a part's skip list is written before it: both must read back
                skips = json.loads(self._skip_path(*keys[key]).read_text())
                if not isinstance(skips, list):
                    raise ValueError("not a list")
            except (OSError, ValueError) as exc:
                result.ok.discard(key)
                result.damaged[key] = f"its skip list is missing or damaged ({exc})"
        self._audit = result
        return result

    def _settle_parts(self, recompute: bool) -> None:
        """Remove damaged parts (with a warning) and stale ones (only with ``recompute``)."""
        audit = self.audit()
        by_key = {(c.cell_id, f): (c, f) for c in self.cells for f in self.folds(c.dataset)}
        for key, why in sorted(audit.damaged.items()):
            self.warnings.append(
                f"damaged result part {self.part_path(*by_key[key]).name} ({why}): "
                "removed, it is recomputed"
            )
        if audit.stale and not recompute:
            raise ConfigError(audit.stale_message(self.out))
        if audit.stale:
            self.warnings.append(
                f"recomputing {len(audit.stale)} part(s) made from other inputs: "
                f"{next(iter(sorted(audit.stale.items())))[1]}"
            )
        for key in [*audit.damaged, *audit.stale]:
            cell, fold = by_key[key]
            for p in (self.part_path(cell, fold), self._skip_path(cell, fold)):
                p.unlink(missing_ok=True)
        audit.damaged.clear()
        audit.stale.clear()

    def _prepare_parts(self, recompute: bool) -> int:
        """Settle the folder's parts (:meth:`_settle_parts`) and record the plan before a run
        starts work; returns how many (cell, fold) parts the run has in all."""
        self._settle_parts(recompute)
        self._write_plan()
        return sum(len(self.folds(c.dataset)) for c in self.cells)

    def _is_done(self, cell: Cell, fold: int) -> bool:
        if self._audit is None:
            self.audit()
        assert self._audit is not None
        return (cell.cell_id, fold) in self._audit.ok

    def _write_plan(self) -> None:
        """Record the configuration of the latest run (informational: parts carry stamps)."""
        p = self.out / PLAN_FILE
        if p.exists():
            try:
                json.loads(p.read_text())
            except (OSError, ValueError):
                self.warnings.append(f"damaged {PLAN_FILE} in {self.out}: rewritten")
        write_json_atomic(p, {"config": self.cfg.model_dump(mode="json")})

    # ------------------------------------------------------------ dry run
    def describe(self) -> pl.DataFrame:
        """The expanded grid: one row per (cell, fold) with its clip count and state.

        ``state`` is ``done`` (reusable), ``stale`` (made from other inputs), ``damaged``
        or ``todo``; ``done`` is True only for reusable parts.
        """
        audit = self.audit()
        rows = []
        for c in self.cells:
            for f in self.folds(c.dataset):
                idx = self._indices[c.dataset]
                n = idx.filter((pl.col("fold") == f) & (pl.col("split") == "test")).height
                key = (c.cell_id, f)
                state = (
                    "done"
                    if key in audit.ok
                    else "stale"
                    if key in audit.stale
                    else "damaged"
                    if key in audit.damaged
                    else "todo"
                )
                rows.append(
                    {
                        **c.settings(),
                        "cell_id": c.cell_id,
                        "fold": f,
                        "test_clips": n,
                        "done": state == "done",
                        "state": state,
                    }
                )
        return pl.DataFrame(rows)

    def _collect_skips(self) -> None:
        skipped = []
        for c in self.cells:
            for f in self.folds(c.dataset):
                p = self._skip_path(c, f)
                if p.is_file():
                    skipped.extend(json.loads(p.read_text()))
        self.skipped = skipped

    def _cell_info(self) -> dict[str, dict[str, Any]]:
        """What each clip model reported per cell and fold (frames, pixels, visual tokens,
        prompt, model calls, ...), read from the parts: ``{cell_id: {fold: info}}``."""
        out: dict[str, dict[str, Any]] = {}
        for c in self.cells:
            for f in self.folds(c.dataset):
                p = self.part_path(c, f)
                info = read_info(p) if p.is_file() else {}
                if info:
                    out.setdefault(c.cell_id, {})[str(f)] = info
        return out
