"""Content-keyed caches: per-frame features on disk, decoded frames in memory (and on disk).

Per-frame features are stored one file per (feature key, clip): the sorted frame indices
computed so far and their features. The feature key names the preprocessing, the encoder
weights (a model's :attr:`feature_key`), the frames' decoder and emobench's code version; the
clip key hashes the clip id, path and the file's size and modification time (or its content:
``[cache] fingerprint``), so an edited or regenerated video is never served stale.
A sweep asks for the union of frames that all its samplers need, so each frame is decoded
and encoded once; a rerun finds everything here and computes nothing. An entry that is
unreadable or not what the model computes (indices not sorted integers, features not one
finite row per index, or of another width than the model's ``feature_dim``) is a miss: it
is removed and recomputed, counted (``invalid_files``) and warned about once.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emobench.provenance import file_token
from emobench.results import atomic_write_bytes


def clip_key(row: Mapping[str, Any], fingerprint: str = "stat") -> str:
    """A stable key for a clip's media: its id, path and :func:`~emobench.provenance.file_token`
    (size and modification time, or the content with ``fingerprint="content"``)."""

    path = str(row["path"])
    text = f"{row['clip_id']}|{path}|{file_token(path, fingerprint)}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass
class CacheStats:
    """Frames served from the cache vs computed (encoder calls are counted per frame)."""

    hit_frames: int = 0
    miss_frames: int = 0
    encoder_calls: int = 0
    #: cache entries found unreadable or wrong (removed and recomputed)
    invalid_files: int = 0
    by_key: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "hit_frames": self.hit_frames,
            "miss_frames": self.miss_frames,
            "encoder_calls": self.encoder_calls,
            "invalid_files": self.invalid_files,
        }


def entry_problem(indices: np.ndarray, feats: np.ndarray, width: int | None) -> str | None:
    """Why a cached (indices, features) pair is not a clip's features, or None."""
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        return f"has frame indices of shape {indices.shape} and type {indices.dtype}"
    if feats.ndim != 2 or len(feats) != len(indices) or not np.issubdtype(feats.dtype, np.floating):
        return f"has features of shape {feats.shape} ({feats.dtype}) for {len(indices)} frames"
    if width is not None and feats.shape[1] != width:
        return f"has {feats.shape[1]} features a frame where the model gives {width}"
    if indices.size and (indices[0] < 0 or bool((np.diff(indices) <= 0).any())):
        return "has unsorted, repeated or negative frame indices"
    if not np.isfinite(feats).all():
        return "has NaN or infinite features"
    return None


class FeatureCache:
    """Per-frame features on disk under ``root/features/<feature key>/``.

    ``warn(line)`` (settable later as ``.warn``) hears of the first invalid entry."""

    def __init__(self, root: Path, warn: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.stats = CacheStats()
        self.warn = warn
        self._warned = False

    def _path(self, feature_key: str, ckey: str) -> Path:
        return self.root / "features" / feature_key / ckey[:2] / f"{ckey}.npz"

    def load(
        self, feature_key: str, ckey: str, width: int | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(sorted indices, features) cached for a clip, or None; an entry that is damaged
        or wrong (:func:`entry_problem`; ``width``: the model's features per frame, when
        known) is discarded (:meth:`discard`) and is a miss."""
        p = self._path(feature_key, ckey)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                got = z["indices"], z["features"]
        except Exception:  # noqa: BLE001 - any unreadable cache file is a miss, never an error
            self.discard(feature_key, ckey, "is unreadable")
            return None
        why = entry_problem(*got, width)
        if why is not None:
            self.discard(feature_key, ckey, why)
            return None
        return got

    def discard(self, feature_key: str, ckey: str, why: str) -> None:
        """Remove an invalid entry (it is recomputed), count it, and warn about the first."""
        p = self._path(feature_key, ckey)
        p.unlink(missing_ok=True)
        self.stats.invalid_files += 1
        if self.warn is not None and not self._warned:
            self._warned = True
            self.warn(
                f"feature cache: {p} {why}: recomputed (any further invalid entry is "
                "recomputed too, counted as invalid_files in the manifest's cache)"
            )

    def store(self, feature_key: str, ckey: str, indices: np.ndarray, feats: np.ndarray) -> None:
        """Write a clip's (indices, features), sorted by index, atomically. Safe from a
        background thread (the features phase writes from one) as it touches no shared state."""
        order = np.argsort(indices, kind="stable")
        buf = io.BytesIO()
        np.savez(buf, indices=np.asarray(indices)[order], features=np.asarray(feats)[order])
        atomic_write_bytes(self._path(feature_key, ckey), buf.getvalue())

    def has(self, feature_key: str, ckey: str, needed: np.ndarray) -> bool:
        got = self.load(feature_key, ckey)
        return got is not None and bool(np.isin(np.unique(needed), got[0]).all())


class FrameCache:
    """Decoded clips (all frames, at one size): an in-memory LRU, optionally backed by disk.

    Training reads whole clips repeatedly (encoder epochs, then feature extraction); keeping
    them here avoids decoding twice. ``disk=True`` also stores uint8 ``.npy`` files under
    ``root/frames/<size>/`` for long real videos where decoding dominates.

    Not thread-safe, and need not be: decode workers never touch it; the media reader looks
    clips up and stores them in the consumer's thread (:meth:`MediaReader.decode_ahead
    <emobench.runner.media.MediaReader.decode_ahead>`).
    """

    def __init__(self, root: Path | None, *, disk: bool = False, max_bytes: int = 4 << 30) -> None:
        self.root = Path(root) if root is not None else None
        self.disk = disk and root is not None
        self.max_bytes = max_bytes
        self._mem: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0

    def _path(self, ckey: str, size: int) -> Path:
        assert self.root is not None
        return self.root / "frames" / str(size) / ckey[:2] / f"{ckey}.npy"

    def get(self, ckey: str, size: int) -> np.ndarray | None:
        arr = self._mem.get((ckey, size))
        if arr is not None:
            self._mem.move_to_end((ckey, size))
            return arr
        if self.disk:
            p = self._path(ckey, size)
            if p.is_file():
                try:
                    arr = np.load(p)
                except Exception:
                    return None
                self._remember(ckey, size, arr)
                return arr
        return None

    def put(self, ckey: str, size: int, frames: np.ndarray) -> None:
        self._remember(ckey, size, frames)
        if self.disk:
            buf = io.BytesIO()
            np.save(buf, frames)
            atomic_write_bytes(self._path(ckey, size), buf.getvalue())

    def _remember(self, ckey: str, size: int, frames: np.ndarray) -> None:
        key = (ckey, size)
        if key in self._mem:
            return
        self._mem[key] = frames
        self._bytes += frames.nbytes
        while self._bytes > self.max_bytes and len(self._mem) > 1:
            _, old = self._mem.popitem(last=False)
            self._bytes -= old.nbytes

    def clear(self) -> None:
        self._mem.clear()
        self._bytes = 0
