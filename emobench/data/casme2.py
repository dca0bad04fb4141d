"""CASME II (micro-expressions, 200 fps, 26 subjects, ~255 clips): the ``casme2`` dataset.

Layout under ``root``::

    CASME2-coding-20140508.xlsx          coding sheet, header on the first row
    CASME2_RAW_selected/subXX/<Filename>/img<N>.jpg       images = "raw" (default)
    Cropped/subXX/<Filename>/reg_img<N>.jpg               images = "cropped"

Columns used: ``Subject`` (a number → ``sub%02d``), ``Filename`` (``EP02_01f``),
``OnsetFrame``, ``ApexFrame``, ``OffsetFrame`` (frame numbers N of the file names) and
``Estimated Emotion``. Clip ids are ``subXX_<Filename>``. Class sets (``classes``):

* ``all``: happiness, disgust, repression, surprise, fear, sadness, others;
* ``5-class``: happiness, disgust, repression, surprise, others (fear and sadness dropped,
  the usual CASME II setting);
* ``3-class``: MEGC2019 composite, positive (happiness), negative (disgust, repression,
  fear, sadness), surprise; others dropped.

Protocol ``loso``: one fold per subject. See :mod:`emobench.data.micro` for the frame
number → index conversion and the problems reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.registry import register_dataset
from emobench.labels import DATASET_ORDERS

if TYPE_CHECKING:  # polars is imported when a set is loaded, not when datasets are listed
    import polars as pl

SHEET = "CASME2-coding-20140508.xlsx"
IMAGE_DIRS = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}
CLASSES: tuple[str, ...] = DATASET_ORDERS["casme2"]
FIVE_CLASSES = ("happiness", "disgust", "repression", "surprise", "others")
COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "emotion": "Estimated Emotion",
}


def _subject(cell: str | None) -> str | None:
    if cell is None:
        return None
    try:
        return f"sub{int(float(cell)):02d}"
    except ValueError:
        return cell.strip() or None


@register_dataset("casme2", "CASME II micro-expressions (200 fps image folders, LOSO)")
def load_casme2(
    root: Path,
    images: str = "raw",
    classes: str = "all",
    protocol: str = "loso",
    annotations: str = SHEET,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """CASME II as a LOSO clip index, with the problems found (see the module doc).

    ``images``: ``raw`` or ``cropped``; ``classes``: ``all``, ``5-class`` or ``3-class``;
    ``protocol``: ``loso``; ``annotations``: the coding sheet (relative to ``root``).
    """
    from emobench.data.micro import CodingRow, MicroDatasetError, build_index, read_coding

    root = Path(root).resolve()
    if images not in IMAGE_DIRS:
        raise MicroDatasetError(
            f"casme2: unknown images option {images!r}; allowed: {', '.join(IMAGE_DIRS)}"
        )
    image_root = root / IMAGE_DIRS[images]
    if not image_root.is_dir():
        raise MicroDatasetError(f"casme2: image folder {image_root} not found")
    rows = []
    for rec in read_coding(root / annotations, COLUMNS):
        subject = _subject(rec["subject"]) or "unknown"
        name = str(rec["filename"])
        rows.append(
            CodingRow(
                clip_id=f"{subject}_{name}",
                subject=subject,
                folder=image_root / subject / name,
                onset=rec["onset"],
                apex=rec["apex"],
                offset=rec["offset"],
                emotion=rec["emotion"],
            )
        )
    return build_index(
        "casme2", rows, CLASSES, classes=classes, five=FIVE_CLASSES, protocol=protocol
    )
