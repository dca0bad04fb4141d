"""SAMM (micro-expressions, 200 fps, 32 subjects, 159 clips): the ``samm`` dataset.

Layout under ``root``::

    SAMM_Micro_FACS_Codes_v2.xlsx        coding sheet, header row about 14 rows down
    SAMM/<subject>/<Filename>/<subject>_<frame>.jpg       greyscale images

Columns used: ``Subject`` (``6`` or ``006`` → ``006``, the folder name), ``Filename``
(``006_1_2``, also the clip id), ``Onset Frame``, ``Apex Frame``, ``Offset Frame`` (frame
numbers of the file names) and ``Estimated Emotion``. Class sets (``classes``):

* ``all``: anger, contempt, disgust, fear, happiness, sadness, surprise, others
  (SAMM's "Other");
* ``5-class``: anger, contempt, happiness, surprise, others (the usual SAMM setting: the
  classes with at least ~10 clips; disgust, fear and sadness dropped);
* ``3-class``: MEGC2019 composite as defined for SAMM: positive (happiness), negative
  (anger, contempt, disgust, fear, sadness), surprise; others dropped (133 clips:
  92 / 26 / 15).

Protocol ``loso``: one fold per subject. See :mod:`emobench.data.micro` for the frame
number → index conversion and the problems reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.registry import register_dataset

if TYPE_CHECKING:  # polars is imported when a set is loaded, not when datasets are listed
    import polars as pl

SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
IMAGE_DIR = "SAMM"
CLASSES = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "others")
FIVE_CLASSES = ("anger", "contempt", "happiness", "surprise", "others")
#: SAMM's MEGC2019 composite (133 clips: negative 92, positive 26, surprise 15).
COMPOSITE = {
    "happiness": "positive",
    "surprise": "surprise",
    **dict.fromkeys(("anger", "contempt", "disgust", "fear", "sadness"), "negative"),
}
COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "emotion": "Estimated Emotion",
}


def _subject(cell: str | None, filename: str) -> str:
    text = (cell or "").strip()
    try:
        return f"{int(float(text)):03d}"
    except ValueError:
        return text or filename.split("_")[0]


@register_dataset("samm", "SAMM micro-expressions (200 fps greyscale image folders, LOSO)")
def load_samm(
    root: Path,
    classes: str = "all",
    protocol: str = "loso",
    annotations: str = SHEET,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """SAMM as a LOSO clip index, with the problems found (see the module doc).

    ``classes``: ``all``, ``5-class`` or ``3-class``; ``protocol``: ``loso``;
    ``annotations``: the coding sheet (relative to ``root``).
    """
    # lazy: pulls in numpy, polars; kept off registry discovery
    from emobench.data.micro import CodingRow, MicroDatasetError, build_index, read_coding

    root = Path(root).resolve()
    image_root = root / IMAGE_DIR
    if not image_root.is_dir():
        raise MicroDatasetError(f"samm: image folder {image_root} not found")
    rows = []
    for rec in read_coding(root / annotations, COLUMNS):
        name = str(rec["filename"])
        subject = _subject(rec["subject"], name)
        rows.append(
            CodingRow(
                clip_id=name,
                subject=subject,
                folder=image_root / subject / name,
                onset=rec["onset"],
                apex=rec["apex"],
                offset=rec["offset"],
                emotion=rec["emotion"],
            )
        )
    return build_index(
        "samm",
        rows,
        CLASSES,
        classes=classes,
        five=FIVE_CLASSES,
        composite=COMPOSITE,
        protocol=protocol,
    )
