"""Shared code of the micro-expression loaders (:mod:`~emobench.data.casme2`,
:mod:`~emobench.data.samm`): coding spreadsheets, frame folders, class sets and LOSO folds.

Both datasets ship a FACS coding spreadsheet (one row per clip: subject, file name, onset /
apex / offset frame *numbers*, estimated emotion) and one folder of images per clip whose
file names carry those frame numbers. A loader turns each row into a clip-index row:

* ``path`` = the clip's image folder, ``media = "frames"``, ``fps = 200``, ``micro = True``,
  ``n_frames`` = the number of images in the folder;
* ``onset`` / ``apex`` / ``offset`` = 0-based indices into the folder's images sorted by
  frame number (:func:`emobench.video.frames.frame_number`), the order
  :class:`~emobench.video.frames.FolderFrameSource` reads them in;
* one fold per subject (``protocol = "loso"``), folds numbered 1..S in sorted subject
  order; a fold's test split is its subject's clips, every other clip is in its train split.

Problems are returned next to the index as ``{"clip_id", "kind", "detail"}`` dicts:

=================  =========================================================  ==========
kind               what                                                       clip kept?
=================  =========================================================  ==========
``apex-fallback``  apex cell "/" or empty (or a number outside the window /    yes
                   not among the images): apex = (onset + offset) // 2
``window``         an onset / offset number not among the folder's images:    yes, or
                   clamped to the nearest image inside the window (excluded   excluded
                   when no image lies between them)
``missing-media``  the image folder is missing or holds no images             excluded
``unknown-label``  an emotion that is not one of the dataset's classes        excluded
``duplicate``      a clip listed twice in the spreadsheet (the first is kept)  first
=================  =========================================================  ==========

Clips whose emotion a class set leaves out (``fear`` in CASME II ``5-class``) are dropped
silently: that is the protocol, not a data problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from emobench.data.index import make_index
from emobench.errors import EmobenchError
from emobench.labels import UnknownLabelError, canonical
from emobench.video.frames import IMAGE_EXTENSIONS, frame_number

#: Frame rate of both high-speed datasets.
FPS = 200.0
#: Values of the ``protocol`` option.
PROTOCOLS = ("loso",)
#: Values of the ``classes`` option.
CLASS_SETS = ("all", "5-class", "3-class")
#: MEGC2019 composite classes.
MEGC2019_CLASSES = ("negative", "positive", "surprise")

Problem = dict[str, Any]


class MicroDatasetError(EmobenchError):
    """A micro-expression dataset cannot be read (missing spreadsheet, column or folder)."""


@dataclass(frozen=True)
class CodingRow:
    """One spreadsheet row, parsed: where the clip's images are and what it shows."""

    clip_id: str
    subject: str
    folder: Path
    onset: str | None
    apex: str | None
    offset: str | None
    emotion: str | None


def _key(name: object) -> str:
    return "".join(str(name).lower().split()) if name is not None else ""


def read_coding(path: Path, columns: Mapping[str, str]) -> list[dict[str, str | None]]:
    """The rows of a coding spreadsheet (first sheet) as text, keyed by ``columns``' keys.

    The header row is the first row holding both ``Subject`` and ``Filename`` (CASME II's
    is the first row, SAMM's about 14 rows down). ``columns`` maps a field name to its
    header, matched case- and space-insensitively (``OnsetFrame`` = ``Onset Frame``).
    Rows without a file name are skipped.
    """
    if not path.is_file():
        raise MicroDatasetError(f"coding spreadsheet {path} not found")
    try:
        raw = pl.read_excel(path, has_header=False, infer_schema_length=0)
    except Exception as exc:  # fastexcel/calamine raise their own types
        raise MicroDatasetError(f"cannot read the coding spreadsheet {path}: {exc}") from None
    raw = raw.select(pl.all().cast(pl.Utf8))
    header_at = None
    for i, row in enumerate(raw.iter_rows()):
        keys = {_key(c) for c in row}
        if "subject" in keys and "filename" in keys:
            header_at = i
            break
    if header_at is None:
        raise MicroDatasetError(f"{path}: no header row with 'Subject' and 'Filename' cells")
    header = [_key(c) for c in raw.row(header_at)]
    where: dict[str, int] = {}
    for field_name, title in columns.items():
        if _key(title) not in header:
            raise MicroDatasetError(f"{path}: no column {title!r} in the header row")
        where[field_name] = header.index(_key(title))
    out = []
    for row in raw.slice(header_at + 1).iter_rows():
        rec = {
            f: (None if row[j] is None else str(row[j]).strip() or None) for f, j in where.items()
        }
        if rec.get("filename"):
            out.append(rec)
    return out


def as_number(text: str | None) -> int | None:
    """A frame-number cell as an int (``"12"``, ``"12.0"``), None for "/", empty or text."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def folder_frames(folder: Path) -> list[int | None]:
    """Frame numbers of a folder's images, in the order the frame source reads them."""

    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        ]
    items = [(frame_number(n), n) for n in names]
    items.sort(key=lambda t: (t[0] is None, t[0] if t[0] is not None else 0, t[1]))
    return [num for num, _ in items]


def class_map(
    dataset_classes: Sequence[str],
    classes: str,
    five: Sequence[str],
    composite: Mapping[str, str],
) -> dict[str, str]:
    """Emotion → label for a class set (emotions absent from the map are dropped).

    ``composite`` is the dataset's own MEGC2019 3-class mapping: the composite set is
    defined per dataset (CASME II's negative class is disgust and repression only; its fear
    and sadness clips are not in the set), so each loader passes its own.
    """
    sets: dict[str, Mapping[str, str]] = {
        "all": {c: c for c in dataset_classes},
        "5-class": {c: c for c in five},
        "3-class": composite,
    }
    if classes not in sets:
        allowed = ", ".join(CLASS_SETS)
        raise MicroDatasetError(f"unknown classes option {classes!r}; allowed: {allowed}")
    return {e: lab for e, lab in sets[classes].items() if e in dataset_classes}


def _window(
    row: CodingRow, numbers: list[int | None], problems: list[Problem]
) -> tuple[int, int, int] | None:
    """(onset, apex, offset) indices of a clip, or None (excluded; problem recorded)."""
    onset_no, offset_no = as_number(row.onset), as_number(row.offset)
    nums = [n for n in numbers if n is not None]
    if onset_no is None or offset_no is None or not nums:
        problems.append(
            {
                "clip_id": row.clip_id,
                "kind": "window",
                "detail": f"onset/offset {row.onset!r}/{row.offset!r} are not frame numbers; "
                "clip excluded",
            }
        )
        return None
    pos = {n: i for i, n in enumerate(numbers) if n is not None}
    # nearest image at or after the onset, at or before the offset
    on = next((i for i, n in enumerate(numbers) if n is not None and n >= onset_no), None)
    off = next(
        (
            i
            for i in range(len(numbers) - 1, -1, -1)
            if numbers[i] is not None and numbers[i] <= offset_no
        ),  # type: ignore[operator]
        None,
    )
    if onset_no not in pos or offset_no not in pos:
        span = f"{nums[0]}..{nums[-1]}"
        if on is None or off is None or on > off:
            problems.append(
                {
                    "clip_id": row.clip_id,
                    "kind": "window",
                    "detail": f"onset..offset frames {onset_no}..{offset_no} hold no image "
                    f"(the folder has frames {span}); clip excluded",
                }
            )
            return None
        problems.append(
            {
                "clip_id": row.clip_id,
                "kind": "window",
                "detail": f"onset/offset frames {onset_no}/{offset_no} are not all among the "
                f"images (frames {span}); clamped to frames {numbers[on]}/{numbers[off]}",
            }
        )
    assert on is not None and off is not None
    apex_no = as_number(row.apex)
    apex = pos.get(apex_no) if apex_no is not None else None
    if apex is None or not on <= apex <= off:
        centre = (on + off) // 2
        why = (
            "empty"
            if row.apex is None
            else f"{row.apex!r}"
            + ("" if apex_no is None else " (not an image inside the onset..offset window)")
        )
        problems.append(
            {
                "clip_id": row.clip_id,
                "kind": "apex-fallback",
                "detail": f"apex {why}: using the window centre, frame {numbers[centre]}",
            }
        )
        apex = centre
    return on, apex, off


def build_index(
    dataset: str,
    rows: Iterable[CodingRow],
    dataset_classes: Sequence[str],
    *,
    classes: str = "all",
    five: Sequence[str],
    composite: Mapping[str, str],
    protocol: str = "loso",
    label_check: Callable[[str], str] = canonical,
) -> tuple[pl.DataFrame, list[Problem]]:
    """The validated LOSO clip index of parsed coding rows, and the problems found."""

    if protocol not in PROTOCOLS:
        raise MicroDatasetError(
            f"{dataset}: unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}"
        )
    mapping = class_map(dataset_classes, classes, five, composite)
    problems: list[Problem] = []
    clips: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        if row.clip_id in seen:
            problems.append(
                {"clip_id": row.clip_id, "kind": "duplicate", "detail": "listed twice; first kept"}
            )
            continue
        seen.add(row.clip_id)
        try:
            emotion = label_check(row.emotion or "")
        except UnknownLabelError:
            emotion = None
        if emotion not in dataset_classes:
            problems.append(
                {
                    "clip_id": row.clip_id,
                    "kind": "unknown-label",
                    "detail": f"emotion {row.emotion!r} is not one of {dataset}'s classes "
                    f"({', '.join(dataset_classes)}); clip excluded",
                }
            )
            continue
        if not row.folder.is_dir():
            problems.append(
                {
                    "clip_id": row.clip_id,
                    "kind": "missing-media",
                    "detail": f"image folder {row.folder} not found; clip excluded",
                }
            )
            continue
        numbers = folder_frames(row.folder)
        if not numbers:
            problems.append(
                {
                    "clip_id": row.clip_id,
                    "kind": "missing-media",
                    "detail": f"image folder {row.folder} holds no images; clip excluded",
                }
            )
            continue
        window = _window(row, numbers, problems)
        if window is None or emotion not in mapping:
            continue
        onset, apex, offset = window
        clips.append(
            {
                "clip_id": row.clip_id,
                "path": str(row.folder),
                "media": "frames",
                "label": mapping[emotion],
                "subject": row.subject,
                "n_frames": len(numbers),
                "fps": FPS,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "micro": True,
            }
        )
    subjects = sorted({c["subject"] for c in clips})
    out = [
        {**c, "fold": fold, "split": "test" if c["subject"] == subject else "train"}
        for fold, subject in enumerate(subjects, start=1)
        for c in clips
    ]
    labels = sorted(set(mapping.values()))
    if not out:
        first = f", first: {problems[0]['clip_id']}: {problems[0]['detail']}" if problems else ""
        raise MicroDatasetError(f"{dataset}: no usable clips ({len(problems)} problem(s){first})")
    return make_index(out, labels), problems


__all__ = [
    "CLASS_SETS",
    "FPS",
    "MEGC2019_CLASSES",
    "PROTOCOLS",
    "CodingRow",
    "MicroDatasetError",
    "build_index",
    "class_map",
    "folder_frames",
    "read_coding",
]
