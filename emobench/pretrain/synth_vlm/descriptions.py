"""What the tiny VLM is taught to say about a face, from its action units: the motion
between frames (MSCE's gap descriptions, :func:`describe_motion`) and the state of one face
(:func:`describe_state`). Neither names an emotion."""

from __future__ import annotations

import numpy as np

from emobench.data.synth.aus import AU_INDEX

#: Facial motions a description can name: (phrase when it appears, phrase when it goes
#: away, action units whose strongest value drives it). Ordered top to bottom of the face.
MOTIONS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("the brows rise", "the brows lower", (1, 2)),
    ("the brows draw together", "the brows relax", (4,)),
    ("the eyes widen", "the eyes settle", (5,)),
    ("the eyes narrow", "the eyes open again", (6, 7)),
    ("the nose wrinkles", "the nose smooths", (9, 10)),
    ("the mouth corners rise", "the mouth corners drop back", (12,)),
    ("one mouth corner tightens", "the mouth corner relaxes", (14,)),
    ("the mouth corners turn down", "the mouth corners lift back", (15,)),
    ("the chin pushes up", "the chin relaxes", (17,)),
    ("the lips stretch sideways", "the lips relax", (20,)),
    ("the lips press together", "the lips loosen", (23,)),
    ("the mouth opens", "the mouth closes", (25, 26)),
)
#: How a face that holds each motion's action units looks (the ``state`` kind's answers).
STATES: tuple[str, ...] = (
    "the brows are raised",
    "the brows are drawn together",
    "the eyes are wide",
    "the eyes are narrowed",
    "the nose is wrinkled",
    "the mouth corners are raised",
    "one mouth corner is tightened",
    "the mouth corners are turned down",
    "the chin is pushed up",
    "the lips are stretched",
    "the lips are pressed together",
    "the mouth is open",
)
#: The ``state`` answer for a face with no marked action unit.
RELAXED = "the face is relaxed."
#: An action unit at least this intense is described as held.
STATE_THRESHOLD = 0.3
#: A change smaller than this (AU intensity, 0–1) is not described.
MOTION_THRESHOLD = 0.12
#: The answer when no action unit moves by :data:`MOTION_THRESHOLD`.
NO_CHANGE = "no visible change."
#: At most this many motions per description (the largest ones).
MAX_MOTIONS = 3


def describe_motion(aus: np.ndarray) -> str:
    """A short description of how the face moves across frames, from their AU intensities.

    ``aus`` is ``(T, 17)`` (columns as :data:`emobench.data.synth.aus.AUS`), one row per
    shown frame in order. For each motion of :data:`MOTIONS` the driving intensity (the
    largest of its AUs per frame) is followed: a rise of more than
    :data:`MOTION_THRESHOLD` from first to last frame "appears" ("the mouth corners
    rise"), a fall "goes away" ("the brows relax"), and a peak inside that exceeds both
    ends by the threshold is brief ("the mouth corners rise briefly"); blinks are left out
    (they carry no emotion). The :data:`MAX_MOTIONS` largest changes are named, in face
    order, joined by ``"; "``.
    """
    a = np.asarray(aus, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        return NO_CHANGE
    found: list[tuple[float, int, str]] = []
    for i, (up, down, units) in enumerate(MOTIONS):
        x = a[:, [AU_INDEX[u] for u in units]].max(axis=1)
        start, end, peak = x[0], x[-1], x.max()
        brief = peak - max(start, end)
        if brief > MOTION_THRESHOLD:
            found.append((brief, i, f"{up} briefly"))
        elif end - start > MOTION_THRESHOLD:
            found.append((end - start, i, up))
        elif start - end > MOTION_THRESHOLD:
            found.append((start - end, i, down))
    if not found:
        return NO_CHANGE
    top = sorted(found, key=lambda f: -f[0])[:MAX_MOTIONS]
    return "; ".join(text for _, _, text in sorted(top, key=lambda f: f[1])) + "."


def describe_state(aus: np.ndarray) -> str:
    """What one face shows, from its AU vector ``(17,)``: the :data:`STATES` phrase of
    every motion whose driving intensity is at least :data:`STATE_THRESHOLD` (the
    :data:`MAX_MOTIONS` strongest, in face order), or :data:`RELAXED`. No emotion words:
    this teaches what to look at, not which class it is."""
    a = np.asarray(aus, dtype=np.float64).reshape(-1)
    found = []
    for i, (_, _, units) in enumerate(MOTIONS):
        v = max(a[AU_INDEX[u]] for u in units)
        if v >= STATE_THRESHOLD:
            found.append((v, i))
    if not found:
        return RELAXED
    top = sorted(found, key=lambda f: -f[0])[:MAX_MOTIONS]
    return "; ".join(STATES[i] for _, i in sorted(top, key=lambda f: f[1])) + "."


__all__ = [
    "MAX_MOTIONS",
    "MOTIONS",
    "MOTION_THRESHOLD",
    "NO_CHANGE",
    "RELAXED",
    "STATES",
    "STATE_THRESHOLD",
    "describe_motion",
    "describe_state",
]
