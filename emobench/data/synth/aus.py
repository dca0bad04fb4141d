"""FACS action units used by the synth renderer, and EMFACS-style emotion prototypes.

An expression is a vector of 17 action-unit (AU) intensities in ``[0, 1]``, ordered as
:data:`AUS`. Each emotion (by canonical name, :mod:`emobench.labels`) has a *prototype*:
a weight per AU, following the EMFACS tradition (happiness 6+12, sadness 1+4+15, ...).
MAFW's extra classes (anxiety, helplessness, disappointment) are mild, overlapping
combinations. Some pairs are deliberately close so the task is not trivially separable:
fear/surprise share 1+2+5+26, disgust/anger share brow lowering and upper-lip raise,
contempt is a one-sided version of happiness's lip-corner pull, and the MAFW extras
overlap sadness.
"""

from __future__ import annotations

import numpy as np

#: The action units, in the column order of every AU vector and AU table.
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
N_AUS = len(AUS)

#: Position of each AU number in an AU vector.
AU_INDEX: dict[int, int] = {au: i for i, au in enumerate(AUS)}

#: FACS names of the action units.
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    20: "lip stretcher",
    23: "lip tightener",
    25: "lips part",
    26: "jaw drop",
    45: "blink",
}

#: Column names of the AU table (``au_frames.parquet``), e.g. ``AU01``.
AU_COLUMNS: tuple[str, ...] = tuple(f"AU{au:02d}" for au in AUS)

#: Emotion prototypes: canonical label → {AU number: weight in (0, 1]}.
#: AU14 is rendered one-sided and makes a co-occurring AU12 one-sided too, which gives
#: the EMFACS contempt pattern (unilateral 12+14).
PROTOTYPES: dict[str, dict[int, float]] = {
    "neutral": {},
    "happiness": {6: 0.8, 12: 1.0},
    "sadness": {1: 0.9, 4: 0.6, 15: 0.9, 17: 0.2},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.9, 26: 0.9},
    "fear": {1: 0.9, 2: 0.7, 4: 0.6, 5: 1.0, 7: 0.5, 20: 0.9, 26: 0.6},
    "anger": {4: 1.0, 5: 0.7, 7: 0.8, 10: 0.3, 23: 1.0},
    "disgust": {4: 0.35, 9: 1.0, 10: 0.9, 15: 0.5, 17: 0.3},
    "contempt": {12: 0.5, 14: 1.0},
    "anxiety": {1: 0.55, 4: 0.4, 5: 0.3, 20: 0.45, 23: 0.35},
    "helplessness": {1: 0.6, 2: 0.35, 15: 0.45, 17: 0.45, 25: 0.3},
    "disappointment": {1: 0.45, 4: 0.3, 15: 0.6, 17: 0.6, 23: 0.3},
}

#: Labels the synth benchmark can generate.
SYNTH_LABELS: tuple[str, ...] = tuple(PROTOTYPES)


def prototype_vector(label: str) -> np.ndarray:
    """The prototype of ``label`` as a float32 AU vector of length :data:`N_AUS`.

    Raises ``KeyError`` naming the allowed labels when ``label`` has no prototype.
    """
    if label not in PROTOTYPES:
        raise KeyError(f"no AU prototype for {label!r}; allowed: {', '.join(SYNTH_LABELS)}")
    vec = np.zeros(N_AUS, dtype=np.float32)
    for au, weight in PROTOTYPES[label].items():
        vec[AU_INDEX[au]] = weight
    return vec


def au_vector(**intensities: float) -> np.ndarray:
    """Build an AU vector from keyword intensities, e.g. ``au_vector(AU12=1.0, AU6=0.5)``."""
    vec = np.zeros(N_AUS, dtype=np.float32)
    for name, value in intensities.items():
        au = int(name.upper().removeprefix("AU"))
        if au not in AU_INDEX:
            raise KeyError(f"unknown action unit {name!r}; known: {', '.join(AU_COLUMNS)}")
        vec[AU_INDEX[au]] = value
    return vec
