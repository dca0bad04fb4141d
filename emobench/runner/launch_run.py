"""The engine's part in a multi-process launch (``torchrun``, ``accelerate launch``,
``emobench run --num-processes N``; :mod:`emobench.runner.distributed`): rank 0 audits the
folder and deals the pending units out, each rank writes its own parts, rank 0 waits for
the others, merges their reports and finalises (:class:`LaunchRun`, a base of
:class:`emobench.runner.execute.Engine`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emobench.config import ConfigError
from emobench.runner.cache import FeatureCache
from emobench.runner.distributed import DistributedError, Launch, Rank, merge_counts, shard
from emobench.runner.lock import RankLock, RunLock
from emobench.runner.parts import code_version
from emobench.runner.summary import (
    OutputFolderError,
    RunSummary,
    decoded_counts,
    reset_decoded_counts,
)


class LaunchRun:
    """One rank's run of a launch (the single-process run is :meth:`Engine.execute`)."""

    out: Path
    rank: Rank
    rank_timeout: float
    features: FeatureCache
    warnings: list[str]
    timings: dict[str, float]
    device_name: str
    _device: Any
    _parallel: dict[str, Any] | None

    def _execute_launch(self) -> RunSummary:
        """One rank of a multi-process launch (see :mod:`emobench.runner.distributed`)."""
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
                reset_decoded_counts()
                total = self._prepare_parts(self.recompute)
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
                reset_decoded_counts()
                for cells, fold in mine:
                    computed += self._run_group(cells, fold, on_written=launch.part_done)
                launch.finish(
                    {
                        "parts": computed,
                        "warnings": self.warnings,
                        "timings": self.timings,
                        "cache": self.features.stats.as_dict(),
                        "decoding": decoded_counts(),
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
        stats = self.features.stats
        decoding = decoded_counts()
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
