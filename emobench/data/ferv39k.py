"""``ferv39k``: FERV39k, 7 classes over 22 scenes, one official train/test split.

Layout under ``root`` (see ``docs/datasets.md``)::

    4_setups/All_scenes/train_All.csv   space-separated, no header:
    4_setups/All_scenes/test_All.csv    "<Scene>/<Emotion>/<id> <EmotionName>"
    2_ClipsforFaceCrop/<Scene>/<Emotion>/<id>/*.jpg

The clip id is ``<Scene>/<Emotion>/<id>`` (the 4-digit ids repeat across folders); the
scene is kept in the clip index's ``scene`` column. There is no validation split, and the
loader says so in a ``note`` problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.loading import Problems, Record, assemble, read_lines, require_file
from emobench.data.registry import register_dataset
from emobench.labels import DATASET_ORDERS

if TYPE_CHECKING:
    import polars as pl

FRAMES = "2_ClipsforFaceCrop"
SPLITS = {"train": "4_setups/All_scenes/train_All.csv", "test": "4_setups/All_scenes/test_All.csv"}
NO_VAL_NOTE = (
    "FERV39k has no validation split: model selection on its test split is test-set tuning"
)


@register_dataset("ferv39k", "FERV39k scene clips, 7 classes, one train/test split (local copy)")
def load_ferv39k(root: Path) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The FERV39k clip index (fold 1; frame folders) and the problems found.

    ``n_frames`` is the number of images in a clip's folder (a directory listing); the
    frames carry no rate and ``fps`` is recorded as 25. Label names (Happy, Sad, Neutral,
    Angry, Surprise, Disgust, Fear) become canonical names.
    """

    classes = DATASET_ORDERS["ferv39k"]
    root = Path(root).resolve()
    problems = Problems()
    problems.note(NO_VAL_NOTE)
    records: list[Record] = []
    for split, rel in SPLITS.items():
        path = require_file(root / rel, "ferv39k")
        for line, text in read_lines(path):
            where = f"{rel}:{line}"
            parts = text.split()
            clip = parts[0].strip("/")
            if len(parts) != 2 or clip.count("/") != 2:
                problems.add(
                    clip,
                    "unknown-label",
                    f"{where}: expected '<Scene>/<Emotion>/<id> <EmotionName>': {text!r}",
                )
                continue
            label = problems.class_label(parts[1], classes, clip, where, "FERV39k")
            scene = clip.split("/")[0]
            records.append(
                Record(
                    clip,
                    label,
                    split,
                    1,
                    root / FRAMES / clip,
                    "frames",
                    None,
                    where,
                    {"scene": scene},
                )
            )
    index = assemble(records, classes, problems, "ferv39k")
    return index, problems.as_list()
