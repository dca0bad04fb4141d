"""The clip index: one validated polars table shared by every dataset loader.

One row per (clip, fold) assignment. Single-split datasets use ``fold = 1``; k-fold
datasets (DFEW, MAFW, synth in 5-fold mode) repeat a clip once per fold with that fold's
split. Columns (nullable where marked):

=========  =========  =========================================================
column     dtype      meaning
=========  =========  =========================================================
clip_id    Utf8       dataset-unique clip id
path       Utf8       absolute path to a video file or a folder of frame images
media      Utf8       ``video`` or ``frames``
label      Utf8       canonical emotion name (:mod:`emobench.labels`)
split      Utf8       ``train``, ``val`` or ``test``
fold       Int64      fold number, 1-based
subject    Utf8?      subject / identity id (LOSO protocols), null when unknown
n_frames   Int64      number of frames in the clip
fps        Float64    frames per second of the source
onset      Int64?     0-based onset frame of the annotated expression window
apex       Int64?     0-based apex frame
offset     Int64?     0-based offset frame (inclusive)
micro      Boolean?   whether the clip is a micro-expression clip
=========  =========  =========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from emobench.labels import EMOTIONS

CLIP_INDEX_SCHEMA: dict[str, pl.DataType] = {
    "clip_id": pl.Utf8,
    "path": pl.Utf8,
    "media": pl.Utf8,
    "label": pl.Utf8,
    "split": pl.Utf8,
    "fold": pl.Int64,
    "subject": pl.Utf8,
    "n_frames": pl.Int64,
    "fps": pl.Float64,
    "onset": pl.Int64,
    "apex": pl.Int64,
    "offset": pl.Int64,
    "micro": pl.Boolean,
}
REQUIRED = ("clip_id", "path", "media", "label", "split", "fold", "n_frames", "fps")
SPLITS = ("train", "val", "test")
MEDIA = ("video", "frames")


class ClipIndexError(ValueError):
    """The clip index violates its schema; the message names the column and rows."""


def make_index(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a validated clip index from dict rows (missing optional columns become null)."""
    rows = list(rows)
    data = {col: [r.get(col) for r in rows] for col in CLIP_INDEX_SCHEMA}
    return validate_index(pl.DataFrame(data, schema=CLIP_INDEX_SCHEMA))


def validate_index(df: pl.DataFrame) -> pl.DataFrame:
    """Check and normalise a clip index: columns, dtypes, label names, splits, ranges.

    Missing optional columns are added as nulls; the result has exactly the schema's
    columns in the schema's order. Raises :class:`ClipIndexError` with one clear line.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ClipIndexError(f"clip index lacks required column(s): {', '.join(missing)}")
    for col, dtype in CLIP_INDEX_SCHEMA.items():
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    try:
        df = df.select([pl.col(c).cast(t, strict=True) for c, t in CLIP_INDEX_SCHEMA.items()])
    except Exception as exc:  # polars raises several types for bad casts
        raise ClipIndexError(f"clip index has a column of the wrong type: {exc}") from exc
    for col in REQUIRED:
        n = df[col].null_count()
        if n:
            raise ClipIndexError(f"clip index column {col!r} has {n} null value(s)")
    _check_values(df, "label", EMOTIONS)
    _check_values(df, "split", SPLITS)
    _check_values(df, "media", MEDIA)
    bad = df.filter((pl.col("n_frames") < 1) | (pl.col("fps") <= 0) | (pl.col("fold") < 1))
    if bad.height:
        raise ClipIndexError(
            f"clip index has {bad.height} row(s) with n_frames < 1, fps <= 0 or fold < 1 "
            f"(first: {bad['clip_id'][0]})"
        )
    dup = df.group_by(["clip_id", "fold"]).len().filter(pl.col("len") > 1)
    if dup.height:
        raise ClipIndexError(
            f"clip index repeats clip {dup['clip_id'][0]!r} within fold {dup['fold'][0]}"
        )
    return df


def _check_values(df: pl.DataFrame, col: str, allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    bad = sorted(set(df[col].unique().to_list()) - allowed)
    if bad:
        raise ClipIndexError(
            f"clip index column {col!r} has unknown value(s) {bad}; allowed: {sorted(allowed)}"
        )


def class_counts(index: pl.DataFrame, *, split: str = "train", fold: int = 1) -> dict[str, int]:
    """Clips per label in one split of one fold, largest first (ties by name)."""
    sub = index.filter((pl.col("split") == split) & (pl.col("fold") == fold))
    counts = sub.group_by("label").len().sort(["len", "label"], descending=[True, False])
    return dict(zip(counts["label"].to_list(), counts["len"].to_list(), strict=True))


def fingerprint(index: pl.DataFrame) -> str:
    """A short content hash of the clip index (ids, labels, splits, lengths), path-independent."""
    import hashlib

    cols = ["clip_id", "label", "split", "fold", "n_frames", "fps", "onset", "apex", "offset"]
    canon = index.select(cols).sort(["fold", "clip_id"])
    h = hashlib.sha256(canon.write_csv().encode())
    return h.hexdigest()[:16]
