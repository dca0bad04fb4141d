"""CASME II (micro-expressions, 200 fps, 26 subjects, ~255 clips): the ``casme2`` dataset.

Layout under ``root``::

    CASME2-coding-20140508.xlsx          coding sheet, header on the first row
    CASME2_RAW_selected/subXX/<Filename>/img<N>.jpg       images = "raw"
      (or the full CASME2-RAW/ or CASME2_RAW/, same inner layout)
    Cropped/subXX/<Filename>/reg_img<N>.jpg               images = "cropped"

``images = "auto"`` (the default) reads the first of these folders that exists and notes
the choice (naming the option) when both raw and cropped images exist.

Columns used: ``Subject`` (a number → ``sub%02d``), ``Filename`` (``EP02_01f``),
``OnsetFrame``, ``ApexFrame``, ``OffsetFrame`` (frame numbers N of the file names) and
``Estimated Emotion``. Clip ids are ``subXX_<Filename>``. Class sets (``classes``):

* ``all``: happiness, disgust, repression, surprise, fear, sadness, others;
* ``5-class``: happiness, disgust, repression, surprise, others (fear and sadness dropped,
  the usual CASME II setting);
* ``3-class``: MEGC2019 composite as defined for CASME II: positive (happiness),
  negative (disgust, repression), surprise; others dropped, and fear and sadness too (they
  are not in the composite set): 145 clips, 88 / 32 / 25.

Protocol ``loso``: one fold per subject. See :mod:`emobench.data.micro` for the frame
number → index conversion and the problems reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.folders import choose_folder, with_choice_note
from emobench.data.registry import register_dataset
from emobench.labels import DATASET_ORDERS

if TYPE_CHECKING:  # polars is imported when a set is loaded, not when datasets are listed
    import polars as pl

SHEET = "CASME2-coding-20140508.xlsx"
#: images option -> candidate folders (the first existing wins); the order is auto's preference
IMAGE_DIRS = {
    "raw": ("CASME2_RAW_selected", "CASME2-RAW", "CASME2_RAW"),
    "cropped": ("Cropped",),
}
CLASSES: tuple[str, ...] = DATASET_ORDERS["casme2"]
FIVE_CLASSES = ("happiness", "disgust", "repression", "surprise", "others")
#: CASME II's MEGC2019 composite (145 clips: negative 88, positive 32, surprise 25); its
#: fear and sadness clips are not in the composite set.
COMPOSITE = {
    "happiness": "positive",
    "surprise": "surprise",
    "disgust": "negative",
    "repression": "negative",
}
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
    images: str = "auto",
    classes: str = "all",
    protocol: str = "loso",
    annotations: str = SHEET,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """CASME II as a LOSO clip index, with the problems found (see the module doc).

    ``images``: ``auto``, ``raw`` or ``cropped``; ``classes``: ``all``, ``5-class`` or ``3-class``;
    ``protocol``: ``loso``; ``annotations``: the coding sheet (relative to ``root``).
    """
    # lazy: pulls in numpy, polars; kept off registry discovery
    from emobench.data.micro import CodingRow, MicroDatasetError, build_index, read_coding

    root = Path(root).resolve()
    choice = choose_folder("casme2", root, "images", images, IMAGE_DIRS, error=MicroDatasetError)
    image_root = choice.folder
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
    index, problems = build_index(
        "casme2",
        rows,
        CLASSES,
        classes=classes,
        five=FIVE_CLASSES,
        composite=COMPOSITE,
        protocol=protocol,
    )
    return index, with_choice_note(problems, choice.note)
