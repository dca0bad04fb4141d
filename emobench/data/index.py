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
scene      Utf8?      recording scene (FERV39k's ``<Scene>`` folder), null elsewhere
=========  =========  =========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from emobench.errors import EmobenchError
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
    "scene": pl.Utf8,
}
REQUIRED = ("clip_id", "path", "media", "label", "split", "fold", "n_frames", "fps")
SPLITS = ("train", "val", "test")
MEDIA = ("video", "frames")


class ClipIndexError(EmobenchError, ValueError):
    """The clip index violates its schema; the message names the column and the first
    offending clip (a ``ValueError`` too, for older callers). ``detail`` is the message
    without its ``clip index:`` prefix, for loaders that name their file instead."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"clip index: {detail}")
        self.detail = detail


def make_index(
    rows: Iterable[Mapping[str, Any]], classes: Iterable[str] | None = None
) -> pl.DataFrame:
    """Build a validated clip index from dict rows (missing optional columns become null).

    ``classes``: the dataset's label set (default: every canonical emotion name).
    """
    rows = list(rows)
    data = {
        col: pl.Series(col, [r.get(col) for r in rows], strict=False) for col in CLIP_INDEX_SCHEMA
    }
    return validate_index(pl.DataFrame(data), classes)


def validate_index(df: pl.DataFrame, classes: Iterable[str] | None = None) -> pl.DataFrame:
    """Check and normalise a clip index: columns, dtypes, label names, splits, ranges.

    Missing optional columns are added as nulls; the result has exactly the schema's
    columns in the schema's order. ``classes`` is the dataset's label set (default: every
    canonical emotion name). Raises :class:`ClipIndexError` with one clear line naming the
    column and the first offending clip:

    * required values present; ``n_frames`` ≥ 1, ``fold`` ≥ 1, ``fps`` finite and > 0;
    * ``0 ≤ onset ≤ apex ≤ offset < n_frames`` for the window frames that are given;
    * each (clip, fold) once, and a clip's label, path, length and fps the same in every row.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ClipIndexError(f"missing required column(s): {', '.join(missing)}")
    for col, dtype in CLIP_INDEX_SCHEMA.items():
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    ids = df["clip_id"].cast(pl.Utf8, strict=False)
    df = pl.DataFrame([_cast(df[col], dtype, ids) for col, dtype in CLIP_INDEX_SCHEMA.items()])
    for col in REQUIRED:
        _first_bad(df, pl.col(col).is_null(), f"{col} is empty")
    _check_values(df, "label", EMOTIONS if classes is None else classes, "the dataset's classes")
    _check_values(df, "split", SPLITS, "the splits")
    _check_values(df, "media", MEDIA, "the media kinds")
    _first_bad(df, pl.col("n_frames") < 1, "n_frames is {n_frames}, must be >= 1")
    _first_bad(df, pl.col("fold") < 1, "fold is {fold}, must be >= 1")
    _first_bad(
        df,
        ~pl.col("fps").is_finite() | (pl.col("fps") <= 0),
        "fps is {fps}, must be a finite number > 0",
    )
    window = [
        pl.col("onset") < 0,
        pl.col("apex") < 0,
        pl.col("offset") < 0,
        pl.col("onset") > pl.col("apex"),
        pl.col("apex") > pl.col("offset"),
        pl.col("onset") > pl.col("offset"),
        pl.col("onset") >= pl.col("n_frames"),
        pl.col("apex") >= pl.col("n_frames"),
        pl.col("offset") >= pl.col("n_frames"),
    ]
    _first_bad(
        df,
        pl.any_horizontal([c.fill_null(False) for c in window]),
        "onset/apex/offset {onset}/{apex}/{offset} are not within the clip: "
        "0 <= onset <= apex <= offset < n_frames ({n_frames})",
    )
    dup = df.group_by(["clip_id", "fold"], maintain_order=True).len().filter(pl.col("len") > 1)
    if dup.height:
        raise ClipIndexError(f"clip {dup['clip_id'][0]!r}: listed twice in fold {dup['fold'][0]}")
    per_clip = ("label", "path", "n_frames", "fps")
    varying = (
        df.group_by("clip_id", maintain_order=True)
        .agg(pl.col(c).n_unique() for c in per_clip)
        .filter(pl.any_horizontal(pl.col(c) > 1 for c in per_clip))
    )
    if varying.height:
        row = varying.row(0, named=True)
        col = next(c for c in per_clip if row[c] > 1)
        raise ClipIndexError(f"clip {row['clip_id']!r}: different {col} values in different rows")
    return df


def _describe(dtype: pl.DataType) -> str:
    if dtype == pl.Int64:
        return "a (64-bit) whole number"
    if dtype == pl.Float64:
        return "a number"
    if dtype == pl.Boolean:
        return "true or false"
    return "text"


def _cast(col: pl.Series, dtype: pl.DataType, ids: pl.Series) -> pl.Series:
    """``col`` as ``dtype``; a value that does not convert (or a fractional value for an
    integer column) is an error naming the column and its clip."""
    if col.dtype == dtype:
        return col
    try:
        if dtype == pl.Boolean and col.dtype == pl.Utf8:  # CSV text: true / false
            words = {"true": True, "false": False}
            out = col.str.to_lowercase().replace_strict(words, default=None, return_dtype=dtype)
        else:
            out = col.cast(dtype, strict=False)
    except Exception:  # polars raises several types for impossible casts
        out = pl.Series(col.name, [None] * len(col), dtype=dtype)
    bad = out.is_null() & col.is_not_null()
    if col.dtype == pl.Boolean:  # true/false is not a number
        bad = col.is_not_null()
    elif dtype == pl.Int64 and col.dtype.is_float():
        bad = bad | (col != col.round()).fill_null(False)
    if bad.any():
        i = int(bad.arg_true()[0])
        value = repr(col[i]) if len(repr(col[i])) <= 40 else repr(col[i])[:37] + "..."
        raise ClipIndexError(f"clip {ids[i]!r}: {col.name} is {value}, not {_describe(dtype)}")
    return out


def _first_bad(df: pl.DataFrame, mask: pl.Expr, what: str) -> None:
    """Raise naming the first row where ``mask`` holds: ``clip <id> <what>``, with
    ``{column}`` placeholders in ``what`` filled from that row."""
    bad = df.filter(mask.fill_null(False))
    if bad.height:
        row = bad.row(0, named=True)
        more = f" (and {bad.height - 1} more row(s))" if bad.height > 1 else ""
        who = f"clip {row['clip_id']!r}" if row["clip_id"] is not None else "a row"
        raise ClipIndexError(f"{who}: {what.format(**row)}{more}")


def _check_values(df: pl.DataFrame, col: str, allowed: Iterable[str], kind: str) -> None:
    allowed = list(allowed)
    bad = df.filter(~pl.col(col).is_in(allowed))
    if bad.height:
        row = bad.row(0, named=True)
        raise ClipIndexError(
            f"clip {row['clip_id']!r}: {col} {row[col]!r} is not one of {kind}: "
            + ", ".join(allowed)
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
