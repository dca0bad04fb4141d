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
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from emobench.config import ConfigError, DatasetConfig, RunConfig
from emobench.errors import EmobenchError
from emobench.labels import INVALID
from emobench.results import (
    RunFolder,
    build_manifest,
    dataset_entry,
    write_json_atomic,
)
from emobench.runner.cache import FeatureCache, FrameCache, clip_key
from emobench.runner.parts import Audit, make_stamp, media_fingerprint, write_part
from emobench.runner.plan import Cell, expand, groups

PLAN_FILE = "plan.json"
PARTS_DIR = "parts"
#: A split whose clips fail to decode beyond this share stops the run (one line naming the
#: decoder and the first failing clip) instead of training or scoring on what is left.
MAX_FAILED_SHARE = 0.2


class DecodeFailureError(EmobenchError):
    """Too many clips of one split could not be decoded."""


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


def clip_seed(seed: int, clip_id: str, salt: str = "") -> int:
    """A per-clip seed derived from the cell seed: identical across models and cells."""
    h = hashlib.sha1(f"{seed}|{clip_id}|{salt}".encode()).digest()
    return int.from_bytes(h[:4], "little")


# --------------------------------------------------------------------------- datasets


def prepare_dataset(ds: DatasetConfig, limit: int | None, generate: bool = True) -> pl.DataFrame:
    """Generate (synth, when asked and absent), load and subset a dataset's clip index."""
    from emobench.data.registry import load_index

    root = Path(ds.root)
    if generate and ds.generate is not None and not _has_annotations(root):
        if ds.name != "synth":
            raise ConfigError(
                f"datasets.{ds.name}.generate: only the synth dataset can be generated"
            )
        from emobench.data.synth.generate import SynthConfig, generate

        generate(SynthConfig(**ds.generate), root)
    index = load_index(ds.name, root, **ds.options)
    folds = sorted(index["fold"].unique().to_list())
    if ds.folds != "all":
        bad = [f for f in ds.folds if f not in folds]
        if bad:
            raise ConfigError(f"datasets.{ds.name}.folds: fold(s) {bad} not in the data ({folds})")
        index = index.filter(pl.col("fold").is_in(list(ds.folds)))
    if limit is not None:
        index = (
            index.sort(["fold", "split", "clip_id"])
            .group_by(["fold", "split"], maintain_order=True)
            .head(limit)
        )
    return index


def dataset_drift(ds: DatasetConfig) -> str | None:
    """A warning when a dataset the config would generate exists with other settings."""
    if ds.name != "synth" or ds.generate is None:
        return None
    from emobench.data.synth.generate import SynthConfig, manifest_drift

    return manifest_drift(SynthConfig(**ds.generate), Path(ds.root))


def _has_annotations(root: Path) -> bool:
    return (root / "annotations.csv").is_file()


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
    ) -> None:
        self.cfg = cfg
        #: recompute parts made from other settings, data or code instead of refusing
        self.recompute = recompute
        self.out = Path(out)
        self.run = RunFolder(self.out)
        self.device_name = device or cfg.device
        self.show_progress = progress
        self.console = console
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
        #: one-line warnings found while loading (e.g. a synth folder from other settings)
        self.warnings: list[str] = []
        self._progress: Any = None
        self._task_cells: Any = None
        self._task_work: Any = None
        self._audit: Audit | None = None
        self._data_stamps: dict[tuple[str, int], tuple[str, str]] = {}
        #: clips of the current group that failed to decode: id → reason
        self._group_skips: dict[str, str] = {}
        video = getattr(cfg, "video", None)
        #: decoding backend: auto (decord where checked against PyAV), pyav or decord
        self.backend: str = video.backend if video is not None else "auto"

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
        video = getattr(self.cfg, "video", None)
        return {
            "cell": settings,
            "model": {"adapter": m.adapter, "options": m.options},
            "dataset_options": ds.options,
            "train": self.cfg.train,
            "limit": self.cfg.limit,
            "video": video.model_dump(mode="json") if video is not None else None,
        }

    def stamp(self, cell: Cell, fold: int) -> dict[str, Any]:
        """What a part of (cell, fold) made now would be stamped with."""
        key = (cell.dataset, fold)
        if key not in self._data_stamps:
            from emobench.data.index import fingerprint

            rows = self._indices[cell.dataset].filter(pl.col("fold") == fold)
            data = f"{fingerprint(rows)}|{','.join(self._labels[cell.dataset])}"
            media = media_fingerprint(zip(rows["clip_id"], rows["path"], strict=True))
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
            index = prepare_dataset(ds, self.cfg.limit, generate)
            drift = dataset_drift(ds)
            if drift:
                self.warnings.append(drift)
            self._indices[ds.name] = index
            self._labels[ds.name] = dataset_entry(index)["labels"]

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
        with self._progress_ctx(total, done_before):
            for _key, cells in groups(self.cells).items():
                ds = cells[0].dataset
                for fold in self.folds(ds):
                    pending = [c for c in cells if not self._is_done(c, fold)]
                    if not pending:
                        continue
                    computed += self._run_group(pending, fold)
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

    def _run_group(self, cells: list[Cell], fold: int) -> int:
        first = cells[0]
        ds = first.dataset
        labels = self._labels[ds]
        index = self._indices[ds].filter(pl.col("fold") == fold)
        train = index.filter(pl.col("split") == "train")
        test = index.filter(pl.col("split") == "test").sort("clip_id")
        self._group_skips: dict[str, str] = {}
        t = time.perf_counter()
        model = self._fit(first, fold, labels, train)
        self.timings["fit"] += time.perf_counter() - t
        # model output order → dataset label order
        col = [model.labels.index(lb) if lb in model.labels else None for lb in labels]
        t = time.perf_counter()
        needed = self._needed_frames(cells, test)
        feats, bad, per_frame_s = self._features_for(model, test, needed, "test clips")
        self._check_failures(bad, test, "test")
        self.timings["features"] += time.perf_counter() - t
        self._group_skips.update(bad)
        ok_rows = [r for r in test.iter_rows(named=True) if r["clip_id"] not in bad]
        prior = self._train_prior(train, labels, fold)
        for cell in cells:
            t = time.perf_counter()
            part = self._score_cell(
                model, cell, fold, ok_rows, feats, labels, col, prior, per_frame_s
            )
            # the skip list first: a part file's existence marks the (cell, fold) done
            write_json_atomic(self._skip_path(cell, fold), bad_list(self._group_skips, cell, fold))
            write_part(self.part_path(cell, fold), part, self.stamp(cell, fold))
            if self._audit is not None:
                self._audit.ok.add((cell.cell_id, fold))
            self.timings["score"] += time.perf_counter() - t
            if self._progress is not None:
                self._progress.advance(self._task_cells)
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

    def _fit(self, cell: Cell, fold: int, labels: list[str], train: pl.DataFrame) -> Any:
        from emobench.models.base import FitContext
        from emobench.models.device import resolve_device
        from emobench.models.registry import create_model

        mcfg = self.cfg.models[cell.model_index]
        model = create_model(cell.adapter, mcfg.options)
        ckpt = self.out / "checkpoints" / cell.dataset / f"fold{fold}" / f"seed{cell.seed}"
        ctx = FitContext(
            dataset=cell.dataset,
            fold=fold,
            seed=cell.seed,
            rebalancing=cell.rebalancing,
            labels=labels,
            train_index=train,
            checkpoint_dir=ckpt,
            device=resolve_device(self.device_name),
            train_options={**self.cfg.train, **mcfg.options.get("train", {})},
            load_frames=self._frames_for,
            load_features=self._all_features,
            progress=self._work_progress,
            warn=self.warnings.append,
        )
        model.fit(ctx)
        return model

    def _train_prior(self, train: pl.DataFrame, labels: list[str], fold: int) -> np.ndarray:
        from emobench.data.index import class_counts

        m = class_counts(train, split="train", fold=fold)
        v = np.array([m.get(lb, 0) for lb in labels], dtype=np.float64) + 1e-9
        return v / v.sum()

    # ------------------------------------------------------------ frames and features
    def _needed_frames(self, cells: list[Cell], test: pl.DataFrame) -> dict[str, np.ndarray]:
        """Per test clip, the union of frames every cell's sampler picks (a group shares a seed)."""
        from emobench.video.sampling import union_indices

        seed = cells[0].seed
        samplers = sorted({c.sampler for c in cells})
        return {
            r["clip_id"]: union_indices(
                r["n_frames"], r["fps"], samplers, clip_seed(seed, r["clip_id"]), _window(r)
            )
            for r in test.iter_rows(named=True)
        }

    def _frames_for(self, model: Any, rows: pl.DataFrame) -> tuple[list[np.ndarray], list[int]]:
        """All frames of each clip at the model's frame size (memory/disk frame cache)."""
        from emobench.video.frames import FrameReadError, read_clip

        frames, kept = [], []
        bad: dict[str, str] = {}
        self._work_start("decoding training clips", rows.height)
        for i, r in enumerate(rows.iter_rows(named=True)):
            ck = self._frames_key(r)
            arr = self.frames.get(ck, model.frame_size)
            if arr is None:
                try:
                    arr = read_clip(
                        r, np.arange(r["n_frames"]), size=model.frame_size, backend=self.backend
                    )
                except FrameReadError as exc:
                    bad[r["clip_id"]] = exc.reason
                    self._group_skips[r["clip_id"]] = f"train: {exc.reason}"
                    self._work_advance()
                    continue
                self.frames.put(ck, model.frame_size, arr)
            frames.append(arr)
            kept.append(i)
            self._work_advance()
        self._check_failures(bad, rows, "training")
        return frames, kept

    def _frames_key(self, r: dict[str, Any]) -> str:
        """Frame-cache key of a clip: its media and the decoding backend."""
        return f"{clip_key(r)}-{self.backend}"

    def _check_failures(self, bad: dict[str, str], rows: pl.DataFrame, what: str) -> None:
        """Stop when more than :data:`MAX_FAILED_SHARE` of a split's clips failed to decode."""
        if not bad or len(bad) <= MAX_FAILED_SHARE * rows.height:
            return
        first = min(bad)
        where = f" of fold {rows['fold'][0]}" if "fold" in rows.columns else ""
        raise DecodeFailureError(
            f"{len(bad)} of {rows.height} {what} clips{where} could not be read (decoding backend "
            f"{self.backend!r}); first: clip {first!r}: {bad[first]}. Check the media files"
            + ("" if self.backend == "pyav" else ", or try --backend pyav")
        )

    def _all_features(self, model: Any, rows: pl.DataFrame) -> tuple[list[np.ndarray], list[int]]:
        needed = {r["clip_id"]: np.arange(r["n_frames"]) for r in rows.iter_rows(named=True)}
        feats, bad, _ = self._features_for(model, rows, needed, "training features")
        self._check_failures(bad, rows, "training")
        for cid, reason in bad.items():
            self._group_skips[cid] = f"train: {reason}"
        out, kept = [], []
        for i, r in enumerate(rows.iter_rows(named=True)):
            if r["clip_id"] in feats:
                idx, f = feats[r["clip_id"]]
                out.append(f[np.searchsorted(idx, needed[r["clip_id"]])])
                kept.append(i)
        return out, kept

    def _features_for(
        self, model: Any, rows: pl.DataFrame, needed: dict[str, np.ndarray], what: str
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str], float]:
        """Per-clip (sorted indices, features) covering ``needed``; computes only what's missing.

        Returns the features, the clips that failed to decode (id → reason), and the mean
        decode+encode seconds per computed frame (0 when all came from the cache).
        """
        from emobench.video.frames import FrameReadError, read_clip

        key = f"{model.feature_key}-{self.backend}"
        stats = self.features.stats
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        bad: dict[str, str] = {}
        spent, computed = 0.0, 0
        self._work_start(what, rows.height)
        for r in rows.iter_rows(named=True):
            cid = r["clip_id"]
            ck = clip_key(r)
            want = needed[cid]
            got = self.features.load(key, ck)
            have_idx = got[0] if got is not None else np.empty(0, dtype=np.int64)
            missing = np.setdiff1d(want, have_idx)
            stats.hit_frames += int(want.size - missing.size)
            if missing.size:
                t = time.perf_counter()
                try:
                    full = self.frames.get(self._frames_key(r), model.frame_size)
                    frames = (
                        full[missing]
                        if full is not None
                        else read_clip(r, missing, size=model.frame_size, backend=self.backend)
                    )
                except (FrameReadError, IndexError) as exc:
                    bad[cid] = getattr(exc, "reason", str(exc))
                    self._work_advance()
                    continue
                new = np.asarray(model.encode(frames), dtype=np.float32)
                stats.miss_frames += int(missing.size)
                stats.encoder_calls += 1
                if got is not None:
                    idx = np.concatenate([got[0], missing])
                    feats = np.concatenate([got[1].astype(np.float32), new])
                else:
                    idx, feats = missing, new
                self.features.store(key, ck, idx, feats)
                order = np.argsort(idx)
                got = (idx[order], feats[order])
                spent += time.perf_counter() - t
                computed += int(missing.size)
            assert got is not None
            out[cid] = got
            self._work_advance()
        return out, bad, (spent / computed if computed else 0.0)

    # ------------------------------------------------------------ scoring
    def _score_cell(
        self,
        model: Any,
        cell: Cell,
        fold: int,
        rows: list[dict[str, Any]],
        feats: dict[str, tuple[np.ndarray, np.ndarray]],
        labels: list[str],
        col: list[int | None],
        prior: np.ndarray,
        per_frame_s: float,
    ) -> pl.DataFrame:
        from emobench.longtail.prior import apply_prior
        from emobench.video.sampling import apply_order, n_unique, sample

        seqs, n_seen, n_uniq = [], [], []
        for r in rows:
            s = clip_seed(cell.seed, r["clip_id"])
            idx = sample(r["n_frames"], r["fps"], cell.sampler, s, _window(r))
            idx = apply_order(idx, cell.order, clip_seed(cell.seed, r["clip_id"], "order"))
            have_idx, have = feats[r["clip_id"]]
            seqs.append(have[np.searchsorted(have_idx, idx)])
            n_seen.append(len(idx))
            n_uniq.append(n_unique(idx))
        t = time.perf_counter()
        raw = np.asarray(model.score(seqs), dtype=np.float64) if seqs else np.zeros((0, 0))
        head_s = (time.perf_counter() - t) / max(len(rows), 1)
        scores = np.full((len(rows), len(labels)), -np.inf)
        for j, c in enumerate(col):
            if c is not None and raw.size:
                scores[:, j] = raw[:, c]
        scores = apply_prior(cell.prior_correction, scores, prior)
        pred = [
            labels[int(i)] if np.isfinite(s).any() else INVALID
            for i, s in zip(scores.argmax(axis=1) if len(rows) else [], scores, strict=True)
        ]
        data: dict[str, Any] = {
            "cell_id": [cell.cell_id] * len(rows),
            **{k: [v] * len(rows) for k, v in cell.settings().items()},
            "fold": [fold] * len(rows),
            "clip_id": [r["clip_id"] for r in rows],
            "label": [r["label"] for r in rows],
            "pred": pred,
            "raw_text": [None] * len(rows),
            "n_frames": n_seen,
            "n_unique_frames": n_uniq,
            "latency_s": [u * per_frame_s + head_s for u in n_uniq],
        }
        for j, lb in enumerate(labels):
            v = scores[:, j] if len(rows) else np.zeros(0)
            data[f"score:{lb}"] = [float(x) if np.isfinite(x) else None for x in v]
        from emobench.results import validate_predictions

        return validate_predictions(pl.DataFrame(data, strict=False))

    # ------------------------------------------------------------ skips, merge, manifest
    def _collect_skips(self) -> None:
        skipped = []
        for c in self.cells:
            for f in self.folds(c.dataset):
                p = self._skip_path(c, f)
                if p.is_file():
                    skipped.extend(json.loads(p.read_text()))
        self.skipped = skipped

    def finalize(self) -> None:
        """Merge parts → predictions.parquet, then manifest and metrics (all atomic)."""
        from emobench.metrics import compute_metrics

        parts = [
            pl.read_parquet(self.part_path(c, f))
            for c in self.cells
            for f in self.folds(c.dataset)
            if self.part_path(c, f).is_file()
        ]
        preds = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        datasets = {
            name: dataset_entry(ix, self._labels[name]) for name, ix in self._indices.items()
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
        manifest["decoding"] = {"backend": self.backend, "this_run": _decode_stats()}
        manifest["warnings"] = list(self.warnings)
        self.run.write_predictions(preds)
        m = self.cfg.metrics
        metrics = compute_metrics(
            self.run.read_predictions(),
            manifest,
            rule=m.rule,
            head=m.head,
            tail=m.tail,
            n_resamples=m.n_resamples,
            seed=m.seed,
        )
        self.run.write_metrics(metrics)
        self.run.write_manifest(manifest)

    # ------------------------------------------------------------ progress
    def _progress_ctx(self, total: int, done: int) -> Any:
        import contextlib

        if not self.show_progress:
            return contextlib.nullcontext()
        from emobench.progress import progress_bar

        engine = self

        class _Ctx:
            def __enter__(self) -> None:
                engine._progress = progress_bar(
                    field="rate", console=engine.console, transient=False
                )
                engine._progress.__enter__()
                engine._task_cells = engine._progress.add_task(
                    "cells × folds", total=total, completed=done, rate=""
                )
                engine._task_work = engine._progress.add_task("", total=1, visible=False, rate="")

            def __exit__(self, *exc: object) -> None:
                engine._progress.__exit__(*exc)
                engine._progress = None

        return _Ctx()

    def _work_start(self, what: str, total: int) -> None:
        self._work_t0 = time.perf_counter()
        if self._progress is not None:
            self._progress.reset(self._task_work, total=total, description=what, visible=True)

    def _work_advance(self) -> None:
        if self._progress is not None:
            task = self._progress.tasks[self._task_work]
            dt = time.perf_counter() - self._work_t0
            rate = f"{(task.completed + 1) / dt:.1f} clips/s" if dt > 0 else ""
            self._progress.update(self._task_work, advance=1, rate=rate)

    def _work_progress(self, what: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task_work,
                description=what,
                completed=done,
                total=total,
                visible=True,
                rate="",
            )


def _decode_stats() -> dict[str, Any]:
    """What the frame sources decoded in this process, by backend, with fallbacks."""
    from emobench.video import frames

    stats = getattr(frames, "decode_stats", None)
    return stats().as_dict() if stats is not None else {}


def _reset_decode_stats() -> None:
    from emobench.video import frames

    reset = getattr(frames, "reset_decode_stats", None)
    if reset is not None:
        reset()


def bad_list(bad: dict[str, str], cell: Cell, fold: int) -> list[dict[str, Any]]:
    return [
        {"cell_id": cell.cell_id, "fold": fold, "clip_id": cid, "reason": reason}
        for cid, reason in sorted(bad.items())
    ]


def _window(r: dict[str, Any]) -> tuple[int, int] | None:
    if r.get("onset") is None or r.get("offset") is None:
        return None
    return (int(r["onset"]), int(r["offset"]))
