"""Shared helpers of the real-dataset loaders: media checks, the problems they report, and
the assembly of annotation records into a clip index.

A loader reads its split files into :class:`Record` s (one per clip, split and fold, as the
files list them) and hands them to :func:`assemble`, which never fails on a bad clip: it
excludes or corrects the clip and reports it in :class:`Problems`, each entry
``{"clip_id", "kind", "detail"}`` with ``kind`` one of :data:`KINDS`:

* ``missing-media``: the clip's folder / video is absent, empty or unreadable (excluded);
* ``frame-count``: the annotation's frame count disagrees with the media (the media's
  count is kept);
* ``unknown-label``: a label that is not one of the dataset's classes, or a line that
  cannot be read (excluded);
* ``duplicate``: a clip listed twice in one split file, or with different labels in
  different files (the first listing is kept);
* ``two-splits``: a clip in both the train and the test split of one fold (excluded from
  that fold: it cannot be scored fairly);
* ``note``: a remark about the whole dataset (``clip_id`` null).

Nothing here decodes images: a frame folder's length is a directory listing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.labels import UnknownLabelError, canonical

if TYPE_CHECKING:
    import polars as pl

KINDS = ("missing-media", "frame-count", "unknown-label", "duplicate", "two-splits", "note")

#: Frame rate recorded for frame folders, whose datasets give none (DFEW, MAFW, FERV39k and
#: list files ship extracted frames without a rate): the usual 25 fps of their sources.
FOLDER_FPS = 25.0

_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


class DatasetLoadError(EmobenchError):
    """A dataset folder lacks its split files, or a loader option is wrong."""


class Problems:
    """The problems a loader found, in the order found; the same (clip, kind, detail) is
    kept once (a clip missing in five folds is one problem)."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._seen: set[tuple[Any, str, str]] = set()

    def add(self, clip_id: str | None, kind: str, detail: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}; known: {', '.join(KINDS)}")
        key = (clip_id, kind, detail)
        if key not in self._seen:
            self._seen.add(key)
            self._items.append({"clip_id": clip_id, "kind": kind, "detail": detail})

    def note(self, detail: str) -> None:
        self.add(None, "note", detail)

    def class_label(
        self, name: str, classes: Sequence[str], clip_id: str, where: str, dataset: str
    ) -> str | None:
        """The canonical name of a label written by name (aliases allowed) when it is one of
        ``classes``; otherwise None, reported as an ``unknown-label`` problem."""

        try:
            label: str | None = canonical(name)
        except UnknownLabelError:
            label = None
        if label in classes:
            return label
        self.add(clip_id, "unknown-label", f"{where}: {name!r} is not a {dataset} class")
        return None

    def count(self, kind: str) -> int:
        return sum(p["kind"] == kind for p in self._items)

    def as_list(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self._items]

    def __len__(self) -> int:
        return len(self._items)


def count_images(path: str | os.PathLike[str]) -> int | None:
    """Number of image files (jpg/jpeg/png/bmp) in a folder by one ``os.scandir``; None when
    the folder is missing or unreadable."""
    try:
        with os.scandir(path) as it:
            return sum(
                1
                for e in it
                if os.path.splitext(e.name)[1].lower() in _IMAGE_EXTENSIONS and e.is_file()
            )
    except OSError:
        return None


def probe_video(path: str | os.PathLike[str], clip_id: str | None = None) -> tuple[int, float]:
    """``(n_frames, fps)`` of a video from its container header (PyAV); raises
    :class:`~emobench.video.frames.FrameReadError` when it cannot be read."""
    # lazy: pulls in numpy; kept off registry discovery (dataset modules import this one)
    from emobench.video.frames import open_source

    source: Any = open_source("video", backend="pyav")
    return source.probe(os.fspath(path), clip_id=clip_id)


def media_info(path: Path, media: str, clip_id: str) -> tuple[int, float] | str:
    """``(n_frames, fps)`` of a clip's media, or the reason it is unusable (a string)."""
    if media == "frames":
        if not path.is_dir():
            return f"{path} is not a folder" if path.exists() else f"frame folder {path} not found"
        n = count_images(path)
        if not n:
            return f"no images in frame folder {path}"
        return n, FOLDER_FPS
    if not path.is_file():
        return f"video {path} not found"
    # lazy: pulls in numpy; kept off registry discovery (dataset modules import this one)
    from emobench.video.frames import FrameReadError

    try:
        n, fps = probe_video(path, clip_id)
    except FrameReadError as exc:
        return str(exc)
    if n < 1 or not fps or fps <= 0:
        return f"video {path} has no frames or no frame rate"
    return n, float(fps)


@dataclass
class Record:
    """One clip as a split file lists it."""

    clip_id: str
    label: str | None  # canonical name; None when unknown (reported by the loader)
    split: str
    fold: int
    path: Path
    media: str  # "frames" or "video"
    n_frames: int | None = None  # the annotation's count, when it gives one
    source: str = ""  # "<file>:<line>", for messages
    extra: dict[str, Any] = field(default_factory=dict)  # further index columns (scene, ...)


def assemble(
    records: Iterable[Record], classes: Sequence[str], problems: Problems, dataset: str
) -> pl.DataFrame:
    """The clip index of ``records`` (rows in listing order), after excluding or correcting
    bad clips and reporting each in ``problems`` (see the module docstring).

    Raises :class:`DatasetLoadError` when no usable clip remains (e.g. a wrong ``media``
    option or root), naming the first reason.
    """
    # lazy: pulls in polars; kept off registry discovery (dataset modules import this one)
    from emobench.data.index import make_index

    first: dict[str, Record] = {}  # clip -> its first listing (label, path)
    kept: dict[tuple[str, int, str], Record] = {}  # (clip, fold, split) -> record
    for r in records:
        seen = first.get(r.clip_id)
        if seen is None or seen.label is None:
            first[r.clip_id] = r
        elif r.label is not None and seen.label != r.label:
            problems.add(
                r.clip_id,
                "duplicate",
                f"labelled {seen.label} in {seen.source} and {r.label} in {r.source}; "
                "the first is kept",
            )
            continue
        key = (r.clip_id, r.fold, r.split)
        if key in kept:
            problems.add(
                r.clip_id,
                "duplicate",
                f"listed twice in {r.split} of fold {r.fold} ({kept[key].source}, {r.source})",
            )
            continue
        kept[key] = r
    splits: dict[tuple[str, int], list[str]] = {}
    for clip, fold, split in kept:
        splits.setdefault((clip, fold), []).append(split)
    info: dict[str, tuple[int, float] | str] = {}
    rows: list[dict[str, Any]] = []
    first_reason = None
    for (clip, fold, split), r in kept.items():
        if len(splits[(clip, fold)]) > 1:
            problems.add(
                clip,
                "two-splits",
                f"in both {' and '.join(splits[(clip, fold)])} of fold {fold}; "
                "excluded from that fold",
            )
            continue
        if r.label is None:
            continue  # the loader reported it
        if clip not in info:
            info[clip] = media_info(r.path, r.media, clip)
        got = info[clip]
        if isinstance(got, str):
            problems.add(clip, "missing-media", got)
            first_reason = first_reason or got
            continue
        n, fps = got
        if r.n_frames is not None and r.n_frames != n:
            problems.add(
                clip,
                "frame-count",
                f"{r.source} says {r.n_frames} frames, {r.path} has {n}; {n} is used",
            )
        rows.append(
            {
                "clip_id": clip,
                "path": str(r.path),
                "media": r.media,
                "label": r.label,
                "split": split,
                "fold": fold,
                "n_frames": n,
                "fps": fps,
                **r.extra,
            }
        )
    if not rows:
        why = f" (first: {first_reason})" if first_reason else ""
        raise DatasetLoadError(f"{dataset}: no usable clip in the split files{why}")
    return make_index(rows, classes)


def check_choice(dataset: str, option: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise DatasetLoadError(
            f"{dataset} loader: {option} must be one of {', '.join(allowed)}, got {value!r}"
        )
    return str(value)


def require_file(path: Path, dataset: str, what: str = "split file") -> Path:
    if not path.is_file():
        raise DatasetLoadError(f"{dataset}: {what} {path} not found")
    return path


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of a text file as ``(line number, stripped text)``."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def kfold_files(
    dataset: str, pattern: str, root: Path, folds: Iterable[int] = range(1, 6)
) -> dict[int, dict[str, Path]]:
    """``{fold: {"train": path, "test": path}}`` for the folds whose two split files exist
    (``pattern`` formats with ``split`` and ``fold``, relative to ``root``). A fold with one
    of its two files is an error; so is no fold at all."""
    out: dict[int, dict[str, Path]] = {}
    for fold in folds:
        paths = {s: root / pattern.format(split=s, fold=fold) for s in ("train", "test")}
        have = [s for s, p in paths.items() if p.is_file()]
        if len(have) == 1:
            other = "test" if have == ["train"] else "train"
            raise DatasetLoadError(f"{dataset}: fold {fold} split file {paths[other]} not found")
        if have:
            out[fold] = paths
    if not out:
        example = root / pattern.format(split="train", fold=1)
        raise DatasetLoadError(f"{dataset}: no split files under {root} (expected e.g. {example})")
    return out


__all__ = [
    "FOLDER_FPS",
    "KINDS",
    "DatasetLoadError",
    "Problems",
    "Record",
    "assemble",
    "count_images",
    "kfold_files",
    "media_info",
    "probe_video",
    "read_lines",
]
