"""``dfew``: DFEW (Dynamic Facial Expression in the Wild), 7 classes, 5 folds.

Layout under ``root`` (see ``docs/datasets.md``)::

    EmoLabel_DataSplit/train(single-labeled)/set_{1..5}.csv   header video_name,label
    EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv    label: official id 1..7
    Clip/clip_224x224/<00001..16372>/*.jpg                    media = "frames" (default)
    Clip/clip_224x224_16f/<id>/*.jpg                          media = "frames16"
    Clip/original/<id>.mp4                                    media = "videos"

Fold N is ``set_N`` (its train and test files). ``video_name`` is an integer; its folder
and video names are zero-padded to 5 digits, which is also the clip id.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.loading import Problems, Record, assemble, check_choice, kfold_files
from emobench.data.registry import register_dataset
from emobench.labels import DATASET_ORDERS, UnknownLabelError, from_official_index

if TYPE_CHECKING:
    import polars as pl

MEDIA = {
    "frames": ("Clip/clip_224x224", "frames"),
    "frames16": ("Clip/clip_224x224_16f", "frames"),
    "videos": ("Clip/original", "video"),
}
SPLIT_PATTERN = "EmoLabel_DataSplit/{split}(single-labeled)/set_{fold}.csv"


@register_dataset("dfew", "DFEW movie clips, 7 classes, 5 folds (local copy)")
def load_dfew(root: Path, media: str = "frames") -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The DFEW clip index (one row per clip and fold) and the problems found.

    ``media``: ``frames`` (face-aligned 224×224 frame folders), ``frames16`` (the 16-frame
    folders) or ``videos`` (the original mp4s). ``n_frames`` is the number of images in a
    clip's folder (a directory listing, nothing decoded) or the video container's frame
    count. DFEW's frame folders carry no frame rate: ``fps`` is recorded as 25 for them
    (:data:`~emobench.data.loading.FOLDER_FPS`); videos give their container's rate.
    Labels are the official ids 1..7 mapped to names through the official order
    (``emobench.labels.DATASET_ORDERS["dfew"]``: 1 happiness, 2 sadness, 3 neutral, 4 anger,
    5 surprise, 6 disgust, 7 fear).
    """

    check_choice("dfew", "media", media, tuple(MEDIA))
    root = Path(root).resolve()
    folder, kind = MEDIA[media]
    problems = Problems()
    records: list[Record] = []
    for fold, files in kfold_files("dfew", SPLIT_PATTERN, root).items():
        for split, path in files.items():
            with open(path, encoding="utf-8-sig", newline="") as fh:
                for line, row in enumerate(csv.DictReader(fh), 2):
                    where = f"{path.relative_to(root)}:{line}"
                    name = (row.get("video_name") or "").strip()
                    if not name:
                        continue
                    clip = f"{int(name):05d}" if name.isdigit() else name
                    label: str | None
                    raw = (row.get("label") or "").strip()
                    try:
                        label = from_official_index("dfew", int(raw))
                    except (ValueError, UnknownLabelError):
                        label = None
                        problems.add(
                            clip, "unknown-label", f"{where}: label {raw!r} is not an id 1..7"
                        )
                    media_path = root / folder / (clip + ".mp4" if kind == "video" else clip)
                    records.append(Record(clip, label, split, fold, media_path, kind, None, where))
    index = assemble(records, DATASET_ORDERS["dfew"], problems, "dfew")
    return index, problems.as_list()
