"""Long-tail class profiles for the synth benchmark, and exact per-class clip counts.

A profile names a class distribution:

- ``dfew``: DFEW's 7 classes in DFEW's proportions (neutral 2669 ... disgust 145).
- ``mafw``: MAFW's 11 classes in MAFW's proportions (sadness 1470 ... disappointment 182).
- ``exp:<ratio>`` or ``exp:<ratio>:<c1>,<c2>,...``: exponential decay from the first class
  to the last with a max/min ratio of ``<ratio>``; by default over DFEW's 7 classes ranked
  as in DFEW (most frequent first).
- ``uniform`` or ``uniform:<c1>,<c2>,...``: equal shares, by default over DFEW's classes.

:func:`class_counts` turns a profile and a total into integer counts (largest-remainder
rounding, every class at least 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from emobench.data.synth.aus import SYNTH_LABELS
from emobench.errors import EmobenchError
from emobench.labels import UnknownLabelError, canonical

#: DFEW class sizes (single-label clips), most frequent first.
DFEW_COUNTS: dict[str, int] = {
    "neutral": 2669,
    "happiness": 2445,
    "anger": 2173,
    "sadness": 1894,
    "surprise": 1469,
    "fear": 902,
    "disgust": 145,
}

#: MAFW class sizes (single-label clips), most frequent first.
MAFW_COUNTS: dict[str, int] = {
    "sadness": 1470,
    "anger": 1390,
    "happiness": 1242,
    "neutral": 1138,
    "surprise": 1072,
    "anxiety": 916,
    "disgust": 639,
    "fear": 625,
    "helplessness": 262,
    "contempt": 236,
    "disappointment": 182,
}

#: The profile forms accepted by :func:`parse_profile`.
PROFILE_FORMS: tuple[str, ...] = (
    "dfew",
    "mafw",
    "exp:<ratio>",
    "exp:<ratio>:<class>,<class>,...",
    "uniform",
    "uniform:<class>,<class>,...",
)


class ProfileError(EmobenchError):
    """A class profile that cannot be parsed or a total too small for it."""


@dataclass(frozen=True)
class Profile:
    """A named class distribution: ``weights`` maps class → relative share (head first)."""

    name: str
    weights: Mapping[str, float]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def proportions(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {c: w / total for c, w in self.weights.items()}


def _bad(spec: str, why: str) -> ProfileError:
    return ProfileError(
        f"bad class profile {spec!r}: {why}; allowed: {', '.join(PROFILE_FORMS)} "
        f"(classes from: {', '.join(SYNTH_LABELS)})"
    )


def _classes(spec: str, text: str) -> tuple[str, ...]:
    names = [t for t in (s.strip() for s in text.split(",")) if t]
    try:
        classes = tuple(canonical(n) for n in names)
    except UnknownLabelError as exc:
        raise _bad(spec, str(exc)) from None
    unknown = [c for c in classes if c not in SYNTH_LABELS]
    if unknown:
        raise _bad(spec, f"no synth prototype for {', '.join(unknown)}")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise _bad(spec, "needs at least two distinct classes")
    return classes


def parse_profile(spec: str) -> Profile:
    """Parse a profile name (see the module docstring); raises :class:`ProfileError`."""
    text = spec.strip().lower()
    if text == "dfew":
        return Profile("dfew", {c: float(n) for c, n in DFEW_COUNTS.items()})
    if text == "mafw":
        return Profile("mafw", {c: float(n) for c, n in MAFW_COUNTS.items()})
    head, _, rest = text.partition(":")
    if head == "uniform":
        classes = _classes(spec, rest) if rest else tuple(DFEW_COUNTS)
        return Profile(text, {c: 1.0 for c in classes})
    if head == "exp" and rest:
        ratio_text, _, class_text = rest.partition(":")
        try:
            ratio = float(ratio_text)
        except ValueError:
            raise _bad(spec, f"ratio {ratio_text!r} is not a number") from None
        if not math.isfinite(ratio) or ratio < 1.0:
            raise _bad(spec, "the max/min ratio must be a finite number >= 1")
        classes = _classes(spec, class_text) if class_text else tuple(DFEW_COUNTS)
        k = len(classes)
        return Profile(text, {c: ratio ** (-i / (k - 1)) for i, c in enumerate(classes)})
    raise _bad(spec, "unknown profile")


def largest_remainder(weights: Mapping[str, float], total: int, minimum: int = 1) -> dict[str, int]:
    """Integer counts summing to ``total``, proportional to ``weights``, each >= ``minimum``.

    Hare / largest-remainder rounding: floor the quotas, then hand the remaining units to
    the largest fractional parts (ties go to the earlier class). Classes raised to
    ``minimum`` take their units back from the largest counts.
    """
    classes = list(weights)
    if total < minimum * len(classes):
        raise ProfileError(
            f"{total} clips cannot give {len(classes)} classes at least {minimum} each"
        )
    wsum = float(sum(weights.values()))
    quotas = [total * weights[c] / wsum for c in classes]
    counts = [max(minimum, math.floor(q)) for q in quotas]
    rem = [q - math.floor(q) for q in quotas]
    left = total - sum(counts)
    # classes already raised to the minimum get no extra unit (their quota is below it)
    order = sorted(range(len(classes)), key=lambda i: (quotas[i] < minimum, -rem[i], i))
    for i in order[: max(left, 0)]:
        counts[i] += 1
    while left < 0:  # minimums overshot: take from the largest counts, lightest class first
        i = max(
            (j for j in range(len(classes)) if counts[j] > minimum),
            key=lambda j: (counts[j], -quotas[j], j),
        )
        counts[i] -= 1
        left += 1
    return dict(zip(classes, counts, strict=True))


def class_counts(profile: Profile | str, total: int) -> dict[str, int]:
    """Per-class clip counts for ``total`` clips under ``profile`` (every class >= 1)."""
    prof = parse_profile(profile) if isinstance(profile, str) else profile
    return largest_remainder(prof.weights, total)
