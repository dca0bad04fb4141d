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

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from emobench.config import RunConfig
from emobench.data.index import class_counts
from emobench.io import write_json_atomic
from emobench.models.base import FitContext
from emobench.models.device import resolve_device
from emobench.models.registry import create_model
from emobench.provenance import file_token
from emobench.results import RunFolder, build_manifest, dataset_entry, validate_predictions
from emobench.results.metrics_table import compute_metrics
from emobench.runner import prior_hook as hook
from emobench.runner.book import PARTS_DIR, PLAN_FILE, PartBook  # noqa: F401  (re-exported)
from emobench.runner.cache import FeatureCache, FrameCache
from emobench.runner.datasets import prepare_dataset
from emobench.runner.distributed import DEFAULT_RANK_TIMEOUT_S, Rank, rank_device
from emobench.runner.inputs import checkpoint_dir, training_inputs
from emobench.runner.launch_run import LaunchRun
from emobench.runner.lock import RunLock
from emobench.runner.media import (  # noqa: F401  (re-exported for callers and tests)
    MAX_FAILED_SHARE,
    DecodeFailureError,
    MediaReader,
)
from emobench.runner.parts import Audit, write_part
from emobench.runner.plan import Cell, expand, groups
from emobench.runner.scorers import GroupJob, Services, clip_seed, scorer_for  # noqa: F401
from emobench.runner.summary import (  # noqa: F401  (re-exported for callers and tests)
    OutputFolderError,
    RunSummary,
    Unit,
    bad_list,
    decoded_counts,
    problem_entry,
    reset_decoded_counts,
)
from emobench.runner.work import WorkProgress

# --------------------------------------------------------------------------- engine


class Engine(PartBook, LaunchRun):
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

    def load_datasets(self, generate: bool = True) -> None:
        for ds in self.cfg.datasets:
            prepared = prepare_dataset(ds, self.cfg.limit, generate)
            if prepared.warning:
                self.warnings.append(prepared.warning)
            index = prepared.index
            self._indices[ds.name] = index
            self._labels[ds.name] = dataset_entry(index)["labels"]
            self._problems[ds.name] = prepared.problems

    # ------------------------------------------------------------ main loop
    @property
    def indices(self) -> dict[str, pl.DataFrame]:
        """The loaded clip index of each dataset (after :meth:`load_datasets`), by name."""
        return self._indices

    def pending(self) -> list[tuple[Cell, int]]:
        return [
            (c, f) for c in self.cells for f in self.folds(c.dataset) if not self._is_done(c, f)
        ]

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
        reset_decoded_counts()
        total = self._prepare_parts(self.recompute)
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
        for mcfg in self.cfg.models:
            create_model(mcfg.adapter, mcfg.options)

    def _fit(
        self, cell: Cell, fold: int, labels: list[str], train: pl.DataFrame, skips: dict[str, str]
    ) -> tuple[Any, Any]:
        """The group's model, fitted (or loaded) on the fold's training clips, and its scorer."""
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
            self._device = resolve_device(rank_device(self.device_name, self.rank))
        return self._device

    def _train_prior(self, train: pl.DataFrame, labels: list[str], fold: int) -> np.ndarray:
        m = class_counts(train, split="train", fold=fold)
        v = np.array([m.get(lb, 0) for lb in labels], dtype=np.float64) + 1e-9
        return v / v.sum()

    # ------------------------------------------------------------ skips, merge, manifest

    def finalize(self) -> None:
        """Merge parts → predictions.parquet, then manifest and metrics (all atomic)."""
        parts = [
            pl.read_parquet(self.part_path(c, f), glob=False)
            for c in self.cells
            for f in self.folds(c.dataset)
            if self.part_path(c, f).is_file()
        ]
        preds = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        datasets = {
            name: {**dataset_entry(ix, self._labels[name]), **problem_entry(self._problems[name])}
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
        decoding = self._parallel["decoding"] if self._parallel else decoded_counts()
        manifest["decoding"] = {"backend": self.backend, "this_run": decoding}
        manifest["warnings"] = list(self.warnings)
        if self._parallel:
            manifest["parallel"] = {k: v for k, v in self._parallel.items() if k != "decoding"}
        manifest["cell_info"] = self._cell_info()
        preds = validate_predictions(preds)
        self.run.write_predictions(preds)
        self.run.write_metrics(compute_metrics(preds, manifest, self.cfg.metrics))
        self.run.write_manifest(manifest)
