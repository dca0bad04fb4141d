"""What part a model family plays in the study's comparisons, declared on its registration
(:func:`emobench.models.registry.register_model`, ``role=``): a VLM or a vision-only
model, zero-shot or trained on the benchmark, and whether it sees the frame order.

The report's findings pick their cells by these roles, never by model names
(:mod:`emobench.report.roles` reads them); a family without a role is left out of the
findings, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The two sides of the study's comparison.
Role = Literal["vlm", "vision-only"]
#: ``(argument, options) -> bool`` of one family (argument: the name after ``family:``).
RoleTest = Callable[[str, Mapping[str, Any]], bool]
#: ``(argument, options) -> role or None``: for families whose role depends on the model
#: (imported predictions say in their options what made them).
RoleOf = Callable[[str, Mapping[str, Any]], "Role | None"]


def never(argument: str, options: Mapping[str, Any]) -> bool:
    return False


def always(argument: str, options: Mapping[str, Any]) -> bool:
    return True


def option_on(key: str) -> RoleTest:
    """A test: option ``key`` is set to something other than ``none``."""

    def test(argument: str, options: Mapping[str, Any]) -> bool:
        return str(options.get(key) or "none").strip().lower() != "none"

    return test


@dataclass(frozen=True)
class FamilyRole:
    """A model family's role: ``role``, whether a model is ``trained`` on the benchmark's
    training split (not zero-shot), whether it is ``temporal`` (its output depends on
    the frame order, so shuffling the frames can hurt it) and whether it is
    ``order_invariant`` by construction (it pools the frames, so shuffling cannot change
    a single answer: a frame-order comparison of it is no evidence)."""

    role: Role | RoleOf
    trained: RoleTest = never
    temporal: RoleTest = never
    order_invariant: RoleTest = never

    def role_of(self, argument: str, options: Mapping[str, Any]) -> Role | None:
        """This family's role for one model (a fixed role, or the family's rule)."""
        return self.role(argument, options) if callable(self.role) else self.role


#: The role of a video encoder fine-tuned (or probed) on each fold whose encoder embeds
#: each frame's position in time: the temporal vision-only specialist (hfvideo, MAE-DFER,
#: HiCMAE).
TRAINED_VIDEO_ENCODER = FamilyRole("vision-only", trained=always, temporal=always)
