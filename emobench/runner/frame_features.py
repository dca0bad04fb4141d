"""The scorer of ``frame-features`` models: per-frame features, cached, then clip heads.

For a group it decodes and encodes, once per test clip, the union of the frames every
cell's sampler picks (the feature cache keeps them across runs and sweeps), then scores
each cell from the cached features: the cell's frames in its order → the model's head →
the cell's prior correction → a predictions part. Training features (for heads and
probes) come from the same cache through :meth:`FrameFeatureScorer.all_features`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.runner.cache import entry_problem
from emobench.runner.media import record_skips
from emobench.runner.plan import Cell
from emobench.runner.scorers import (
    GroupJob,
    Services,
    build_part,
    clip_seed,
    register_scorer,
    sampled_indices,
    to_dataset_order,
    window,
)
from emobench.video.sampling import n_unique, union_indices

Features = dict[str, tuple[np.ndarray, np.ndarray]]
#: a clip whose features are being computed: row, clip key, cached (indices, features) or
#: None, the missing frame indices
Pending = tuple[dict[str, Any], str, Any, np.ndarray]


class EncodeShapeError(EmobenchError):
    """A model's ``encode`` did not return one feature row per frame."""


#: Frames (at least) per encoder call in the features phase: decoded clips are encoded
#: together, so a GPU gets full batches whatever the frames per clip.
ENCODE_FRAMES = 256
#: Every encoder call is padded (with black frames, whose features are dropped) to a
#: multiple of this many frames. A CPU kernel may change with the batch's row count below
#: about 16 rows (measured: the baseline CNN and the tiny CLIP differ in the last bits for
#: calls of 1-15 / 1-3 frames, agree exactly from there on): padding makes every frame's
#: features independent of which other frames share its call, so a resumed run, a shared
#: or partly damaged cache and ``--num-processes 2`` give bit-identical features.
ENCODE_PAD = 32
#: Encoder calls queued beyond the one running (the next group waits, ready, on the
#: encoder thread while this one runs).
ENCODE_AHEAD = 1


def padded_count(n: int) -> int:
    """``n`` frames rounded up to a multiple of :data:`ENCODE_PAD`."""
    return -(-n // ENCODE_PAD) * ENCODE_PAD


def pad_frames(frames: np.ndarray) -> np.ndarray:
    """Frames padded with black frames to :func:`padded_count` of their number."""
    extra = padded_count(len(frames)) - len(frames)
    if not extra:
        return frames
    return np.concatenate([frames, np.zeros((extra, *frames.shape[1:]), dtype=frames.dtype)])


@register_scorer("frame-features")
class FrameFeatureScorer:
    def __init__(self, services: Services) -> None:
        self.s = services

    # ------------------------------------------------------------ features
    def features(
        self, model: Any, rows: pl.DataFrame, needed: dict[str, np.ndarray], what: str
    ) -> tuple[Features, dict[str, str], float]:
        """Per-clip (sorted indices, features) covering ``needed``; computes only what's missing.

        Returns the features, the clips that failed to decode (id → reason), and the mean
        decode+encode seconds per computed frame (0 when all came from the cache).

        The missing frames are decoded ahead in the media reader's workers while the model
        encodes; decoded clips are encoded together, :data:`ENCODE_FRAMES` frames (or the
        model's ``batch_size``, if larger) per encoder call, on an encoder thread that
        always has the next call queued (:data:`ENCODE_AHEAD`), and their features are
        written to the cache by a background writer (all done before this returns).

        A cached entry of another width than the model's features (its ``feature_dim``
        when it has one, else what its ``encode`` returns in this call) or with NaN
        features is discarded and its clip computed again (:meth:`FeatureCache.load
        <emobench.runner.cache.FeatureCache.load>`).
        """
        media = self.s.media
        key = media.artefact_key(model.feature_key)
        stats = self.s.features.stats
        width = getattr(model, "feature_dim", None)
        out: Features = {}
        bad: dict[str, str] = {}
        todo: list[Pending] = []
        hits: dict[str, int] = {}
        self.s.progress.start(what, rows.height)
        for r in rows.iter_rows(named=True):
            ck = media.clip_key(r)
            want = needed[r["clip_id"]]
            got = self.s.features.load(key, ck, width)
            have_idx = got[0] if got is not None else np.empty(0, dtype=np.int64)
            missing = np.setdiff1d(want, have_idx)
            hits[r["clip_id"]] = int(want.size - missing.size)
            stats.hit_frames += hits[r["clip_id"]]
            if missing.size:
                todo.append((r, ck, got, missing))
            else:
                assert got is not None
                out[r["clip_id"]] = got
                self.s.progress.advance()
        if not todo:
            return out, bad, 0.0

        t = time.perf_counter()
        computed = 0
        step = max(ENCODE_FRAMES, int(getattr(model, "batch_size", 0) or 0))
        group: list[tuple[Pending, np.ndarray]] = []
        # the model runs in its own thread, one call at a time and in order, while this
        # thread gathers the next group: the encoder finds its next call waiting
        encoder = ThreadPoolExecutor(1, thread_name_prefix="emobench-encode")
        writer = ThreadPoolExecutor(1, thread_name_prefix="emobench-feature-store")
        encoding: deque[tuple[Future[Any], list[Pending]]] = deque()
        writes: list[Future[None]] = []
        #: clips whose cached features have another width than the encoder's: clip id ->
        #: (clip key, why); computed again, whole, once this pass is done
        redo: dict[str, tuple[str, str]] = {}
        widths: set[int] = set()

        def submit() -> None:
            frames = group[0][1] if len(group) == 1 else np.concatenate([f for _, f in group])
            call = encoder.submit(model.encode, pad_frames(frames))
            encoding.append((call, [p for p, _ in group]))
            stats.encoder_calls += 1
            group.clear()
            while len(encoding) > ENCODE_AHEAD:
                collect()

        def collect() -> None:
            nonlocal computed
            future, items = encoding.popleft()
            new = np.asarray(future.result(), dtype=np.float32)
            n = sum(int(p[3].size) for p in items)
            if new.ndim != 2 or new.shape[0] != padded_count(n):
                raise EncodeShapeError(
                    f"{type(model).__name__}.encode returned features of shape {new.shape} "
                    f"for {padded_count(n)} frames; expected ({padded_count(n)}, D)"
                )
            start = 0
            widths.add(new.shape[1])
            for r, ck, got, missing in items:
                part = new[start : start + missing.size]
                start += missing.size
                if got is not None and got[1].shape[1] != new.shape[1]:
                    redo[r["clip_id"]] = (ck, str(entry_problem(*got, new.shape[1])))
                    self.s.progress.advance()
                    continue
                if got is not None:
                    idx = np.concatenate([got[0], missing])
                    feats = np.concatenate([got[1].astype(np.float32), part])
                else:
                    idx, feats = missing, part
                writes.append(writer.submit(self.s.features.store, key, ck, idx, feats))
                order = np.argsort(idx)
                out[r["clip_id"]] = (idx[order], feats[order])
                stats.miss_frames += int(missing.size)
                computed += int(missing.size)
                self.s.progress.advance()

        wanted = ((r, missing) for r, _, _, missing in todo)
        try:
            with closing(self.s.media.decode_ahead(wanted, model.frame_size)) as decoded:
                for item, d in zip(todo, decoded, strict=True):
                    if not d.ok:
                        bad[item[0]["clip_id"]] = str(d.reason)
                        self.s.progress.advance()
                        continue
                    if group and group[0][1].shape[1:] != d.frames.shape[1:]:
                        submit()  # frames of another size (native-size decoding): own call
                    group.append((item, d.frames))
                    if sum(f.shape[0] for _, f in group) >= step:
                        submit()
            if group:
                submit()
            while encoding:
                collect()
        finally:
            encoder.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True)
        for w in writes:
            w.result()  # a failed cache write is an error, as when it was written inline
        per_frame = (time.perf_counter() - t) / computed if computed else 0.0
        if width is None and len(widths) == 1:  # whole cached clips of another width
            (dim,) = widths
            for r in rows.iter_rows(named=True):
                got = out.get(r["clip_id"])
                if got is not None and got[1].shape[1] != dim:
                    redo[r["clip_id"]] = (media.clip_key(r), str(entry_problem(*got, dim)))
                    del out[r["clip_id"]]
        if redo:
            for cid, (ck, why) in redo.items():
                stats.hit_frames -= hits[cid]
                self.s.features.discard(key, ck, why)
            again = rows.filter(pl.col("clip_id").is_in(list(redo)))
            more, more_bad, _ = self.features(model, again, needed, what)
            out.update(more)
            bad.update(more_bad)
        return out, bad, per_frame

    def all_features(
        self, model: Any, rows: pl.DataFrame, skips: dict[str, str]
    ) -> tuple[list[np.ndarray], list[int]]:
        """Features of every frame of each training clip (for heads and probes)."""
        needed = {r["clip_id"]: np.arange(r["n_frames"]) for r in rows.iter_rows(named=True)}
        feats, bad, _ = self.features(model, rows, needed, "training features")
        self.s.media.check_failures(bad, rows, "training")
        record_skips(skips, bad, "training")
        out, kept = [], []
        for i, r in enumerate(rows.iter_rows(named=True)):
            if r["clip_id"] in feats:
                idx, f = feats[r["clip_id"]]
                out.append(f[np.searchsorted(idx, needed[r["clip_id"]])])
                kept.append(i)
        return out, kept

    # ------------------------------------------------------------ scoring
    def score_group(self, job: GroupJob) -> Iterator[tuple[Cell, pl.DataFrame, dict[str, Any]]]:
        t = time.perf_counter()
        seed = job.cells[0].seed
        samplers = sorted({c.sampler for c in job.cells})
        needed = {
            r["clip_id"]: union_indices(
                r["n_frames"], r["fps"], samplers, clip_seed(seed, r["clip_id"]), window(r)
            )
            for r in job.test.iter_rows(named=True)
        }
        feats, bad, per_frame_s = self.features(job.model, job.test, needed, "test clips")
        self.s.media.check_failures(bad, job.test, "test")
        self.s.timings["features"] += time.perf_counter() - t
        record_skips(job.skips, bad, "test")
        rows = [r for r in job.test.iter_rows(named=True) if r["clip_id"] not in bad]
        for cell in job.cells:
            yield cell, self._score_cell(job, cell, rows, feats, per_frame_s), {}

    def _score_cell(
        self,
        job: GroupJob,
        cell: Cell,
        rows: list[dict[str, Any]],
        feats: Features,
        per_frame_s: float,
    ) -> pl.DataFrame:
        seqs, n_seen, n_uniq = [], [], []
        for r in rows:
            idx = sampled_indices(cell, r)
            have_idx, have = feats[r["clip_id"]]
            seqs.append(have[np.searchsorted(have_idx, idx)])
            n_seen.append(len(idx))
            n_uniq.append(n_unique(idx))
        t = time.perf_counter()
        raw = np.asarray(job.model.score(seqs), dtype=np.float64) if seqs else np.zeros((0, 0))
        head_s = (time.perf_counter() - t) / max(len(rows), 1)
        scores = to_dataset_order(raw, job.columns) if rows else np.zeros((0, len(job.labels)))
        scores = job.correct(cell, scores)
        return build_part(
            cell,
            job.fold,
            rows,
            job.labels,
            scores,
            n_frames=n_seen,
            n_unique=n_uniq,
            latency=[u * per_frame_s + head_s for u in n_uniq],
        )
