"""``listfile``: clips named by annotation list files, the format many DFER codebases share.

One clip per line, space-separated: ``<frames-folder> <n_frames> <label-index>`` (the
folder may contain spaces: the last two fields are split off). The class order is given by
the user (``classes``), since list files carry only indices. Options:

* ``train`` / ``test``: list-file paths, relative to ``root`` or absolute (at least one);
* ``classes``: the class names in index order (a list, or one comma-separated string);
  canonical names or aliases (``Happy``, ``angry``, ...);
* ``index_base``: 0 (default) or 1, the index of the first class.

Folders are relative to ``root`` unless absolute; the clip id is the folder as the list
writes it. A line whose path is a video file (``.mp4``, ...) is read as a video. One fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.loading import (
    DatasetLoadError,
    Problems,
    Record,
    assemble,
    read_lines,
    require_file,
)
from emobench.data.registry import register_dataset
from emobench.labels import UnknownLabelError, canonical

if TYPE_CHECKING:
    import polars as pl

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@register_dataset("listfile", "clips from '<frames-folder> <n_frames> <label-index>' list files")
def load_listfile(
    root: Path,
    train: str | None = None,
    test: str | None = None,
    classes: list[str] | str | None = None,
    index_base: int = 0,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The clip index of the list files (fold 1) and the problems found.

    ``n_frames`` is the number of images in each folder (a directory listing); a list
    count that disagrees is a ``frame-count`` problem and the folder's count is used.
    Frame folders carry no rate: ``fps`` is recorded as 25.
    """

    if classes is None or not classes:
        raise DatasetLoadError("listfile loader: option classes (the class-name order) is required")
    names = classes.split(",") if isinstance(classes, str) else list(classes)
    try:
        order = [canonical(str(n)) for n in names]
    except UnknownLabelError as exc:
        raise DatasetLoadError(f"listfile loader: classes: {exc}") from None
    if len(set(order)) != len(order):
        raise DatasetLoadError(f"listfile loader: classes name a class twice: {order}")
    if index_base not in (0, 1) or isinstance(index_base, bool):
        raise DatasetLoadError(f"listfile loader: index_base must be 0 or 1, got {index_base!r}")
    lists = {s: p for s, p in (("train", train), ("test", test)) if p}
    if not lists:
        raise DatasetLoadError("listfile loader: give a train and/or a test list (options)")
    root = Path(root).resolve()
    problems = Problems()
    records: list[Record] = []
    for split, rel in lists.items():
        path = require_file(root / rel, "listfile", f"{split} list")
        for line, text in read_lines(path):
            where = f"{rel}:{line}"
            parts = text.rsplit(maxsplit=2)
            clip = parts[0].rstrip("/")
            if len(parts) != 3 or not parts[1].isdigit():
                problems.add(
                    clip,
                    "unknown-label",
                    f"{where}: expected '<frames-folder> <n_frames> <label-index>': {text!r}",
                )
                continue
            label: str | None = None
            try:
                i = int(parts[2]) - index_base
                if 0 <= i < len(order):
                    label = order[i]
            except ValueError:
                pass
            if label is None:
                top = len(order) - 1 + index_base
                problems.add(
                    clip,
                    "unknown-label",
                    f"{where}: label index {parts[2]!r} is not in {index_base}..{top}",
                )
            kind = "video" if clip.lower().endswith(VIDEO_EXTENSIONS) else "frames"
            records.append(Record(clip, label, split, 1, root / clip, kind, int(parts[1]), where))
    index = assemble(records, order, problems, "listfile")
    return index, problems.as_list()
