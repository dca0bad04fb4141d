"""``mafw``: MAFW (Multi-modal Affective database in the Wild), 11 classes, 5 folds.

Layout under ``root`` (see ``docs/datasets.md``)::

    split/single/no_caption/set_{1..5}/{train,test}.txt   "<clip>.mp4 <label-name>", no header
    data/clips/<clip>.mp4                                  media = "clips"
    data/frames/<clip-id>/*.jpg                            media = "frames"
    data/faces/<clip-id>/*.jpg                             media = "faces" (user-extracted)

``media = "auto"`` (the default) reads whichever of these folders exists, in that order,
and notes the choice (naming the option) when several do (:mod:`emobench.data.folders`).
Fold N is ``set_N``; the clip id is the file name without ``.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.folders import choose_folder, with_choice_note
from emobench.data.loading import (
    DatasetLoadError,
    Problems,
    Record,
    assemble,
    kfold_files,
    read_lines,
)
from emobench.data.registry import register_dataset
from emobench.labels import DATASET_ORDERS

if TYPE_CHECKING:
    import polars as pl

#: media option -> (folder under the root, media kind); the order is auto's preference
MEDIA = {
    "clips": ("data/clips", "video"),
    "frames": ("data/frames", "frames"),
    "faces": ("data/faces", "frames"),
}
SPLIT_PATTERN = "split/single/no_caption/set_{fold}/{split}.txt"


@register_dataset("mafw", "MAFW clips, 11 single-label classes, 5 folds (local copy)")
def load_mafw(root: Path, media: str = "auto") -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The MAFW clip index (one row per clip and fold) and the problems found.

    ``media``: ``auto`` (the first of clips, frames, faces whose folder exists; a
    ``note`` problem, shown as a run warning, names the option when several exist),
    ``clips`` (the mp4s: frame count and fps from the container header),
    ``frames`` or ``faces`` (frame folders: ``n_frames`` is the number of images, ``fps``
    is recorded as 25 as the folders carry none). Label names are read by name (aliases
    allowed) and must be one of the 11 classes of MAFW's official order.
    """

    classes = DATASET_ORDERS["mafw"]
    root = Path(root).resolve()
    split_files = kfold_files("mafw", SPLIT_PATTERN, root)
    choice = choose_folder(
        "mafw",
        root,
        "media",
        media,
        {name: (folder,) for name, (folder, _) in MEDIA.items()},
        error=DatasetLoadError,
    )
    folder, kind = MEDIA[choice.value]
    problems = Problems()
    records: list[Record] = []
    for fold, files in split_files.items():
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
    return index, with_choice_note(problems.as_list(), choice.note)
