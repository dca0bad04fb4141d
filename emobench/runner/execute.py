"""Run a planned benchmark: fit models, fill the feature cache, score every cell, write results.

Work is done group by group (cells that share a fitted model on one fold). Each finished
(cell, fold) is written at once as an atomic *part* file under ``<out>/parts/``, stamped
with the settings, data, media and code it was made from (:mod:`emobench.runner.parts`).
A rerun reuses exactly the parts whose stamp matches, so an interrupted run resumes where
it stopped and a finished run computes nothing; a part made from other inputs stops the
run with one line (or is recomputed with ``recompute=True``), and a damaged part is
removed and recomputed. One run at a time holds a folder (:mod:`emobench.runner.lock`).
At the end the parts are merged into ``predictions.parquet``, the metrics table and the
manifest are written, all atomically.

Several processes may share one run (``torchrun``, ``accelerate launch``, ``emobench run
--num-processes N``; :mod:`emobench.runner.distributed`): rank 0 audits the folder and
deals the pending (group, fold) units out; each rank writes its own parts; rank 0 waits
for the others, then merges and finalises exactly as a single process does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from emobench.config import ConfigError, RunConfig
from emobench.errors import EmobenchError
from emobench.io import write_json_atomic
from emobench.results import RunFolder, build_manifest, dataset_entry
from emobench.runner import prior_hook as hook
from emobench.runner.cache import FeatureCache, FrameCache
from emobench.runner.datasets import prepare_dataset
from emobench.runner.distributed import DEFAULT_RANK_TIMEOUT_S, DistributedError, Rank
from emobench.runner.media import (  # noqa: F401  (re-exported for callers and tests)
    MAX_FAILED_SHARE,
    DecodeFailureError,
    MediaReader,
)
from emobench.runner.parts import Audit, code_version, make_stamp, media_fingerprint, write_part
from emobench.runner.plan import Cell, expand, groups
from emobench.runner.scorers import GroupJob, Services, clip_seed, scorer_for  # noqa: F401
from emobench.runner.work import WorkProgress

PLAN_FILE = "plan.json"
PARTS_DIR = "parts"


class OutputFolderError(EmobenchError):
    """The results folder cannot be used (a file, not writable, disk full)."""


@dataclass
class RunSummary:
    out: Path
    cells: int
    parts_total: int
    parts_done_before: int
    parts_computed: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    #: this process's place in a launch (rank 0 of 1 for a single process)
    rank: Rank = field(default_factory=Rank)
    #: False on ranks > 0 (rank 0 merges and finalises the folder)
    finalized: bool = True


#: One unit of work: the pending cells of a group on one fold.
Unit = tuple[list[Cell], int]


# --------------------------------------------------------------------------- engine


class Engine:
    """Executes the cells of one run into ``out`` (see the module docstring)."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        *,
        device: str | None = None,
        progress: bool = True,
        console: Any = None,
        on_part: Callable[[Cell, int], None] | None = None,
        recompute: bool = False,
        rank: Rank | None = None,
        rank_timeout: float = DEFAULT_RANK_TIMEOUT_S,
    ) -> None:
        self.cfg = cfg
        #: this process's place in a multi-process launch (rank 0 of 1: a single process)
        self.rank = rank or Rank()
        #: seconds rank 0 waits for a silent rank before giving up on it
        self.rank_timeout = rank_timeout
        #: what the other ranks reported (rank 0 of a launch; for the manifest)
        self._parallel: dict[str, Any] | None = None
        #: recompute parts made from other settings, data or code instead of refusing
        self.recompute = recompute
        self.out = Path(out)
        self.run = RunFolder(self.out)
        self.device_name = device or cfg.device
        self._device: Any = None  # resolved once, on first use (imports torch)
        self.on_part = on_part
        cache_dir = cfg.cache.dir or (self.out.parent / ".emobench-cache")
        self.features = FeatureCache(cache_dir)
        self.frames = FrameCache(cache_dir, disk=cfg.cache.frames)
        self.cells = expand(cfg)
        self.skipped: list[dict[str, Any]] = []
        #: wall seconds per phase: fit (train/load), features (decode+encode), score, finalize
        self.timings: dict[str, float] = {"fit": 0.0, "features": 0.0, "score": 0.0}
        self._indices: dict[str, pl.DataFrame] = {}
        self._labels: dict[str, list[str]] = {}
        #: what each dataset's loader reported (missing media, frame counts, notes, ...)
        self._problems: dict[str, list[dict[str, Any]]] = {}
        #: one-line warnings found while loading (e.g. a synth folder from other settings)
        self.warnings: list[str] = []
        self.features.warn = self.warnings.append  # an invalid cache entry, once
        self._audit: Audit | None = None
        self._data_stamps: dict[tuple[str, int], tuple[str, str]] = {}
        #: decoding backend: auto (decord where checked against PyAV), pyav or decord
        self.backend: str = cfg.video.backend
        self.progress = WorkProgress(progress, console)
        self.media = MediaReader(
            self.frames, self.backend, self.progress, fingerprint=cfg.cache.fingerprint
        )
        self.services = Services(self.features, self.media, self.progress, self.timings)

    # ------------------------------------------------------------ bookkeeping
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
            from emobench.data.index import fingerprint

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
        from emobench.runner.parts import audit

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

    def load_datasets(self, generate: bool = True) -> None:
        for ds in self.cfg.datasets:
            prepared = prepare_dataset(ds, self.cfg.limit, generate)
            if prepared.warning:
                self.warnings.append(prepared.warning)
            index = prepared.index
            self._indices[ds.name] = index
            self._labels[ds.name] = dataset_entry(index)["labels"]
            self._problems[ds.name] = prepared.problems

    def folds(self, dataset: str) -> list[int]:
        return sorted(self._indices[dataset]["fold"].unique().to_list())

    def pending(self) -> list[tuple[Cell, int]]:
        return [
            (c, f) for c in self.cells for f in self.folds(c.dataset) if not self._is_done(c, f)
        ]

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

    # ------------------------------------------------------------ main loop
    def _check_out(self) -> None:
        """One clear line when ``out`` cannot be a results folder."""
        if self.out.exists() and not self.out.is_dir():
            raise OutputFolderError(f"--out {self.out} is a file, not a folder")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputFolderError(
                f"cannot create results folder {self.out}: {exc.strerror or exc}"
            ) from None
        if not os.access(self.out, os.W_OK | os.X_OK):
            raise OutputFolderError(f"results folder {self.out} is not writable")

    def execute(self) -> RunSummary:
        """Run every pending (cell, fold), holding the folder's lock; see the module doc."""
        from emobench.runner.lock import RunLock

        if self.rank.parallel:
            return self._execute_launch()
        self._check_out()
        try:
            with RunLock(self.out) as lock:
                msg = lock.stale_message()
                if msg:
                    self.warnings.append(msg)
                return self._execute()
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise OutputFolderError(
                f"cannot write results to {self.out}: {exc.strerror or exc}{where}; finished "
                "parts are kept and a rerun resumes"
            ) from None

    def _execute(self) -> RunSummary:
        t0 = time.perf_counter()
        _reset_decode_stats()
        self._settle_parts(self.recompute)
        self._write_plan()
        total = sum(len(self.folds(c.dataset)) for c in self.cells)
        todo = self.pending()
        if todo:
            self.check_models()
        done_before = total - len(todo)
        computed = 0
        with self.progress.run(total, done_before):
            for cells, fold in self.units():
                computed += self._run_group(cells, fold)
        self._collect_skips()
        t = time.perf_counter()
        self.finalize()
        self.timings["finalize"] = time.perf_counter() - t
        return RunSummary(
            out=self.out,
            cells=len(self.cells),
            parts_total=total,
            parts_done_before=done_before,
            parts_computed=computed,
            skipped=self.skipped,
            cache=self.features.stats.as_dict(),
            seconds=time.perf_counter() - t0,
            timings=dict(self.timings),
        )

    def units(self) -> list[Unit]:
        """The pending work in the engine's stable order: per group and fold, its cells
        without a reusable part (groups with nothing pending are left out)."""
        out: list[Unit] = []
        for _key, cells in groups(self.cells).items():
            for fold in self.folds(cells[0].dataset):
                pending = [c for c in cells if not self._is_done(c, fold)]
                if pending:
                    out.append((pending, fold))
        return out

    # ------------------------------------------------------------ several processes
    def _execute_launch(self) -> RunSummary:
        """One rank of a multi-process launch (see :mod:`emobench.runner.distributed`)."""
        from emobench.runner.distributed import Launch

        launch = Launch(self.rank, self.out, timeout=self.rank_timeout)
        try:
            with launch:
                if self.rank.is_main:
                    return self._execute_main(launch)
                return self._execute_worker(launch)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise OutputFolderError(
                f"cannot write results to {self.out}: {exc.strerror or exc}{where}; finished "
                "parts are kept and a rerun resumes"
            ) from None

    def _execute_main(self, launch: Any) -> RunSummary:
        """Rank 0: lock and audit the folder, deal the units out, do its share, wait for
        the other ranks, then merge and finalise as a single process does."""
        from emobench.runner.distributed import shard
        from emobench.runner.lock import RunLock

        t0 = time.perf_counter()
        lock = RunLock(self.out, launch=launch.id)
        try:  # every failure before the work starts is sent to the other ranks too
            self._check_out()
            lock.__enter__()
        except BaseException as exc:
            launch.publish(error=exc)
            raise
        try:
            try:
                msg = lock.stale_message()
                if msg:
                    self.warnings.append(msg)
                if not self._indices:
                    self.load_datasets(generate=True)
                _reset_decode_stats()
                self._settle_parts(self.recompute)
                self._write_plan()
                total = sum(len(self.folds(c.dataset)) for c in self.cells)
                units = self.units()
                if units:
                    self.check_models()
                shares = shard([len(cells) for cells, _ in units], self.rank.world)
                plan = [
                    [([c.cell_id for c in units[i][0]], units[i][1]) for i in share]
                    for share in shares
                ]
            except BaseException as exc:
                launch.publish(error=exc)
                raise
            launch.publish(plan={"code": code_version(), "shares": plan})
            mine = [units[i] for i in shares[0]]
            todo = sum(len(c) for c, _ in units)
            computed = 0
            with self.progress.run(sum(len(c) for c, _ in mine), 0):
                for cells, fold in mine:
                    computed += self._run_group(cells, fold)
            reports = launch.wait_for_ranks(on_wait=self._say_waiting)
            self._merge_reports(reports, launch.id, computed)
            self._collect_skips()
            t = time.perf_counter()
            self.finalize()
            self.timings["finalize"] = time.perf_counter() - t
            launch.cleanup()
        finally:
            lock.__exit__(None, None, None)
        return RunSummary(
            out=self.out,
            cells=len(self.cells),
            parts_total=total,
            parts_done_before=total - todo,
            parts_computed=computed + sum(int(r.get("parts", 0)) for r in reports.values()),
            skipped=self.skipped,
            cache=self.features.stats.as_dict(),
            seconds=time.perf_counter() - t0,
            timings=dict(self.timings),
            rank=self.rank,
        )

    def _execute_worker(self, launch: Any) -> RunSummary:
        """Rank > 0: take this rank's share from rank 0, write its parts, report."""
        from emobench.runner.lock import RankLock

        t0 = time.perf_counter()
        plan = launch.receive()
        computed = 0
        try:  # from here on a failure is reported to rank 0, which stops waiting
            launch.heartbeat()
            if plan["code"] != code_version():  # its parts would be stale at once
                ours, theirs = code_version(), plan["code"]
                raise DistributedError(
                    f"rank {self.rank.rank} runs other emobench code than rank 0 "
                    f"({ours.get('emobench')} source {ours.get('source')} vs "
                    f"{theirs.get('emobench')} source {theirs.get('source')}): every rank "
                    "needs the same emobench install"
                )
            shares = plan["shares"]
            if not self._indices:
                self.load_datasets(generate=False)  # rank 0 generated what was absent
            by_id = {c.cell_id: c for c in self.cells}
            missing = [cid for ids, _ in shares[self.rank.rank] for cid in ids if cid not in by_id]
            if missing:
                raise ConfigError(
                    f"rank 0 planned cell {missing[0]} that rank {self.rank.rank} does not "
                    "have: start every rank with the same configuration"
                )
            mine = [([by_id[cid] for cid in ids], fold) for ids, fold in shares[self.rank.rank]]
            with RankLock(self.out, launch.id, self.rank.rank):
                _reset_decode_stats()
                for cells, fold in mine:
                    computed += self._run_group(cells, fold, on_written=launch.part_done)
                launch.finish(
                    {
                        "parts": computed,
                        "warnings": self.warnings,
                        "timings": self.timings,
                        "cache": self.features.stats.as_dict(),
                        "decoding": _decode_stats(),
                        "device": str(self._device or self.device_name),
                    }
                )
        except BaseException as exc:
            launch.finish(error=" ".join(str(exc).split()) or type(exc).__name__)
            raise
        return RunSummary(
            out=self.out,
            cells=len(self.cells),
            parts_total=sum(len(self.folds(c.dataset)) for c in self.cells),
            parts_done_before=0,
            parts_computed=computed,
            cache=self.features.stats.as_dict(),
            seconds=time.perf_counter() - t0,
            timings=dict(self.timings),
            rank=self.rank,
            finalized=False,
        )

    def _say_waiting(self, ranks: list[int]) -> None:
        """Rank 0: one line while it waits for the other ranks (when progress is shown)."""
        console = self.progress.console
        if ranks and self.progress.show and console is not None:
            names = ", ".join(str(r) for r in ranks)
            console.print(f"waiting for rank(s) {names} to finish their parts", soft_wrap=True)

    def _merge_reports(self, reports: dict[int, dict[str, Any]], launch: str, mine: int) -> None:
        """Rank 0: fold the other ranks' warnings, timings and counts into this run's."""
        from emobench.runner.distributed import merge_counts

        stats = self.features.stats
        decoding = _decode_stats()
        ranks = [{"rank": 0, "parts": mine, "device": str(self._device or self.device_name)}]
        for r, rep in sorted(reports.items()):
            for w in rep.get("warnings", []):
                if w not in self.warnings:
                    self.warnings.append(w)
            self.timings = merge_counts(self.timings, rep.get("timings", {}))
            cache = rep.get("cache", {})
            stats.hit_frames += int(cache.get("hit_frames", 0))
            stats.miss_frames += int(cache.get("miss_frames", 0))
            stats.encoder_calls += int(cache.get("encoder_calls", 0))
            stats.invalid_files += int(cache.get("invalid_files", 0))
            decoding = merge_counts(decoding, rep.get("decoding", {}))
            ranks.append({"rank": r, "parts": rep.get("parts"), "device": rep.get("device")})
        self._parallel = {
            "world_size": self.rank.world,
            "launch": launch,
            "ranks": ranks,
            "decoding": decoding,
        }

    def _run_group(
        self, cells: list[Cell], fold: int, on_written: Callable[[], None] | None = None
    ) -> int:
        """Fit the group's model on the fold, then write one part per cell from its scorer."""
        first = cells[0]
        labels = self._labels[first.dataset]
        index = self._indices[first.dataset].filter(pl.col("fold") == fold)
        train = index.filter(pl.col("split") == "train")
        held = hook.held_out_for(first, train, labels, fold)
        if held is not None:
            train, held = held
        skips: dict[str, str] = {}
        t = time.perf_counter()
        model, scorer = self._fit(first, fold, labels, train, skips)
        self.timings["fit"] += time.perf_counter() - t
        job = GroupJob(
            cells=cells,
            fold=fold,
            labels=labels,
            test=index.filter(pl.col("split") == "test").sort("clip_id"),
            model=model,
            prior=self._train_prior(train, labels, fold),
            skips=skips,
        )
        if held is not None:
            job.calibration = hook.score_held_out(scorer, job, held)
        parts = scorer.score_group(job)
        while True:
            t = time.perf_counter()
            try:
                cell, part, info = next(parts)
            except StopIteration:
                break
            info = hook.with_prior_note(info, job, cell, fold, self.warnings)
            # the skip list first: a part file's existence marks the (cell, fold) done
            write_json_atomic(self._skip_path(cell, fold), bad_list(skips, cell, fold))
            write_part(self.part_path(cell, fold), part, self.stamp(cell, fold), info)
            if self._audit is not None:
                self._audit.ok.add((cell.cell_id, fold))
            self.timings["score"] += time.perf_counter() - t
            self.progress.part_done()
            if on_written is not None:
                on_written()
            if self.on_part is not None:
                self.on_part(cell, fold)
        return len(cells)

    # ------------------------------------------------------------ model fitting
    def check_models(self) -> None:
        """Build every configured model once, without loading weights, so that a bad option
        or a missing weights file stops the run before any work (one error line)."""
        from emobench.models.registry import create_model

        for mcfg in self.cfg.models:
            create_model(mcfg.adapter, mcfg.options)

    def _fit(
        self, cell: Cell, fold: int, labels: list[str], train: pl.DataFrame, skips: dict[str, str]
    ) -> tuple[Any, Any]:
        """The group's model, fitted (or loaded) on the fold's training clips, and its scorer."""
        from emobench.models.base import FitContext
        from emobench.models.registry import create_model
        from emobench.provenance import file_token
        from emobench.runner.inputs import checkpoint_dir, training_inputs

        mcfg = self.cfg.models[cell.model_index]
        model = create_model(cell.adapter, mcfg.options)
        scorer = scorer_for(model, self.services)
        mode = self.cfg.cache.fingerprint
        inputs = training_inputs(
            zip(train["clip_id"], train["path"], strict=True),
            self.media.identity,
            self.media.code,
            mode,
        )
        base = self.out / "checkpoints" / cell.dataset / f"fold{fold}" / f"seed{cell.seed}"
        paths = dict(self._indices[cell.dataset].select(["clip_id", "path"]).iter_rows())
        ctx = FitContext(
            dataset=cell.dataset,
            fold=fold,
            seed=cell.seed,
            rebalancing=cell.rebalancing,
            labels=labels,
            train_index=train,
            checkpoint_dir=checkpoint_dir(base, inputs),
            device=self.device,
            train_options={**self.cfg.train, **mcfg.options.get("train", {})},
            load_frames=lambda m, rows: self.media.whole_clips(
                rows, m.frame_size, skips, "training"
            ),
            load_features=lambda m, rows: scorer.all_features(m, rows, skips),
            progress=self.progress.update,
            warn=self.warnings.append,
            cache_dir=self.features.root,
            inputs=inputs,
            media_token=lambda cid: self.media.artefact_key(
                file_token(str(paths.get(cid, "")), mode) if cid in paths else "unknown"
            ),
            clip_path=lambda cid: str(paths.get(cid, "")),
        )
        model.fit(ctx)
        return model, scorer

    @property
    def device(self) -> Any:
        """The run's torch device, resolved once from the config's device spec (a rank of
        a launch on a GPU machine takes ``cuda:LOCAL_RANK``)."""
        if self._device is None:
            from emobench.models.device import resolve_device
            from emobench.runner.distributed import rank_device

            self._device = resolve_device(rank_device(self.device_name, self.rank))
        return self._device

    def _train_prior(self, train: pl.DataFrame, labels: list[str], fold: int) -> np.ndarray:
        from emobench.data.index import class_counts

        m = class_counts(train, split="train", fold=fold)
        v = np.array([m.get(lb, 0) for lb in labels], dtype=np.float64) + 1e-9
        return v / v.sum()

    # ------------------------------------------------------------ skips, merge, manifest
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
        from emobench.runner.parts import read_info

        out: dict[str, dict[str, Any]] = {}
        for c in self.cells:
            for f in self.folds(c.dataset):
                p = self.part_path(c, f)
                info = read_info(p) if p.is_file() else {}
                if info:
                    out.setdefault(c.cell_id, {})[str(f)] = info
        return out

    def finalize(self) -> None:
        """Merge parts → predictions.parquet, then manifest and metrics (all atomic)."""
        from emobench.metrics import compute_metrics
        from emobench.results import validate_predictions

        parts = [
            pl.read_parquet(self.part_path(c, f))
            for c in self.cells
            for f in self.folds(c.dataset)
            if self.part_path(c, f).is_file()
        ]
        preds = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        datasets = {
            name: {**dataset_entry(ix, self._labels[name]), **_problem_entry(self._problems[name])}
            for name, ix in self._indices.items()
        }
        manifest = build_manifest(
            run_name=self.cfg.name,
            config=self.cfg.model_dump(mode="json"),
            datasets=datasets,
            cells=[c.as_dict() for c in self.cells],
            skipped=self.skipped,
            seeds=list(self.cfg.sweep.seeds),
        )
        manifest["cache"] = {"dir": str(self.features.root), **self.features.stats.as_dict()}
        manifest["timings_s"] = {k: round(v, 3) for k, v in self.timings.items()}
        decoding = self._parallel["decoding"] if self._parallel else _decode_stats()
        manifest["decoding"] = {"backend": self.backend, "this_run": decoding}
        manifest["warnings"] = list(self.warnings)
        if self._parallel:
            manifest["parallel"] = {k: v for k, v in self._parallel.items() if k != "decoding"}
        manifest["cell_info"] = self._cell_info()
        preds = validate_predictions(preds)
        self.run.write_predictions(preds)
        self.run.write_metrics(compute_metrics(preds, manifest, self.cfg.metrics))
        self.run.write_manifest(manifest)


def _problem_entry(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's record of a loader's problems: the list and a count per kind."""
    if not problems:
        return {}
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[str(p.get("kind"))] = kinds.get(str(p.get("kind")), 0) + 1
    return {"problems": problems, "problem_counts": kinds}


def _decode_stats() -> dict[str, Any]:
    """What the frame sources decoded in this process, by backend, with fallbacks."""
    from emobench.video.frames import decode_stats

    return decode_stats().as_dict()


def _reset_decode_stats() -> None:
    from emobench.video.frames import reset_decode_stats

    reset_decode_stats()


def bad_list(bad: dict[str, str], cell: Cell, fold: int) -> list[dict[str, Any]]:
    return [
        {"cell_id": cell.cell_id, "fold": fold, "clip_id": cid, "reason": reason}
        for cid, reason in sorted(bad.items())
    ]
