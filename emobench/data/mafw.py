"""``mafw``: MAFW (Multi-modal Affective database in the Wild), 11 classes, 5 folds.

Layout under ``root`` (see ``docs/datasets.md``)::

    split/single/no_caption/set_{1..5}/{train,test}.txt   "<clip>.mp4 <label-name>", no header
    data/clips/<clip>.mp4                                  media = "clips" (default)
    data/frames/<clip-id>/*.jpg                            media = "frames"
    data/faces/<clip-id>/*.jpg                             media = "faces" (user-extracted)

Fold N is ``set_N``; the clip id is the file name without ``.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.registry import register_dataset

if TYPE_CHECKING:
    import polars as pl

MEDIA = {
    "clips": ("data/clips", "video"),
    "frames": ("data/frames", "frames"),
    "faces": ("data/faces", "frames"),
}
SPLIT_PATTERN = "split/single/no_caption/set_{fold}/{split}.txt"


@register_dataset("mafw", "MAFW clips, 11 single-label classes, 5 folds (local copy)")
def load_mafw(root: Path, media: str = "clips") -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The MAFW clip index (one row per clip and fold) and the problems found.

    ``media``: ``clips`` (the mp4s: frame count and fps from the container header),
    ``frames`` or ``faces`` (frame folders: ``n_frames`` is the number of images, ``fps``
    is recorded as 25 as the folders carry none). Label names are read by name (aliases
    allowed) and must be one of the 11 classes of MAFW's official order.
    """
    from emobench.data.loading import (
        Problems,
        Record,
        assemble,
        check_choice,
        kfold_files,
        read_lines,
    )
    from emobench.labels import DATASET_ORDERS

    check_choice("mafw", "media", media, tuple(MEDIA))
    classes = DATASET_ORDERS["mafw"]
    root = Path(root).resolve()
    folder, kind = MEDIA[media]
    problems = Problems()
    records: list[Record] = []
    for fold, files in kfold_files("mafw", SPLIT_PATTERN, root).items():
        for split, path in files.items():
            for line, text in read_lines(path):
                where = f"{path.relative_to(root)}:{line}"
                parts = text.split()
                clip = parts[0].removesuffix(".mp4")
                if len(parts) != 2:
                    problems.add(
                        clip, "unknown-label", f"{where}: expected '<clip>.mp4 <label>': {text!r}"
                    )
                    continue
                label = problems.class_label(parts[1], classes, clip, where, "MAFW")
                media_path = root / folder / (clip + ".mp4" if kind == "video" else clip)
                records.append(Record(clip, label, split, fold, media_path, kind, None, where))
    index = assemble(records, classes, problems, "mafw")
    return index, problems.as_list()
