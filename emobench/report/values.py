"""A metric value with its spread, shared by the analysis and the figures.

Kept in its own dependency-free module so figure jobs can be pickled to a worker process
without importing polars there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stat:
    """One metric value with its spread: across-fold std and a confidence interval."""

    value: float
    std: float | None = None
    lo: float | None = None
    hi: float | None = None

    def band(self) -> tuple[float, float]:
        """The CI when present, else mean +- std, else the value itself."""
        if self.lo is not None and self.hi is not None:
            return (self.lo, self.hi)
        if self.std is not None:
            return (self.value - self.std, self.value + self.std)
        return (self.value, self.value)


def opt_float(x: Any) -> float | None:
    """``x`` as a float, or None when it is None or NaN (a missing table value)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x
