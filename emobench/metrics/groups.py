"""Class groups: head / medium / tail (or many / medium / few) from training counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from emobench.metrics.core import MetricsError


@dataclass(frozen=True)
class GroupRule:
    """A way to cut classes into three groups by their training counts.

    ``groups`` names the (head-role, medium, tail-role) groups. A class with count ≥ the
    upper threshold is head, < the lower threshold tail, else medium; ``relative`` rules
    scale the thresholds by the largest class's count.
    """

    name: str
    groups: tuple[str, str, str]
    default_head: float
    default_tail: float
    relative: bool
    description: str

    def thresholds(self, largest: float, head: float, tail: float) -> tuple[float, float]:
        return (head * largest, tail * largest) if self.relative else (head, tail)


GROUP_RULES: dict[str, GroupRule] = {
    "relative": GroupRule(
        "relative",
        ("head", "medium", "tail"),
        0.5,
        0.2,
        True,
        "head: count >= head x largest; tail: count < tail x largest; else medium",
    ),
    "absolute": GroupRule(
        "absolute",
        ("many", "medium", "few"),
        100,
        20,
        False,
        "many: >= 100 training clips; few: < 20; medium: 20-99 (thresholds configurable)",
    ),
}


def get_rule(rule: str) -> GroupRule:
    """The registered :class:`GroupRule` named ``rule``."""
    try:
        return GROUP_RULES[rule]
    except KeyError:
        raise MetricsError(
            f"unknown grouping rule {rule!r}; known: {', '.join(sorted(GROUP_RULES))}"
        ) from None


def group_classes(
    train_counts: Mapping[str, int],
    rule: str = "relative",
    head: float | None = None,
    tail: float | None = None,
) -> dict[str, str]:
    """Map each class to its group from its training count.

    ``relative`` (default thresholds head=0.5, tail=0.2): head if count ≥ head × largest,
    tail if count < tail × largest, else medium. ``absolute`` (defaults head=100, tail=20):
    many if count ≥ 100, few if < 20, else medium. ``None`` takes the rule's default.
    """
    r = get_rule(rule)
    hi_t = r.default_head if head is None else float(head)
    lo_t = r.default_tail if tail is None else float(tail)
    if not (0 <= lo_t <= hi_t):
        raise MetricsError(
            f"grouping thresholds need 0 <= tail <= head (got tail={lo_t}, head={hi_t})"
        )
    neg = sorted(k for k, v in train_counts.items() if v < 0)
    if neg:
        raise MetricsError(f"negative training count(s) for {neg}")
    if not train_counts:
        return {}
    largest = max(train_counts.values())
    hi, lo = r.thresholds(largest, hi_t, lo_t)
    head_name, medium_name, tail_name = r.groups
    return {
        k: head_name if v >= hi else tail_name if v < lo else medium_name
        for k, v in train_counts.items()
    }


def group_names(rule: str) -> tuple[str, str, str]:
    """The group names of ``rule``, head to tail: ``(head, medium, tail)`` for ``relative``,
    ``(many, medium, few)`` for ``absolute``."""
    return get_rule(rule).groups


def class_groups(
    train_counts: Mapping[str, float],
    rule: str = "relative",
    head: float | None = None,
    tail: float | None = None,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Each class's group under ``rule`` and the rule's group names, head to tail.

    The groups are :func:`group_classes` of ``train_counts`` (e.g. mean training clips per
    fold); with no training clips at all (empty or all zero) no class has a group (``{}``).
    The names come from :func:`group_names` whether or not every group is populated.
    """
    names = group_names(rule)
    if sum(train_counts.values()) <= 0:
        return {}, names
    return group_classes(train_counts, rule=rule, head=head, tail=tail), names


def head_to_tail(labels: Sequence[str], train_counts: Mapping[str, float]) -> list[str]:
    """``labels`` ordered by training count, largest first; ties keep ``labels`` order.

    A label without a count counts 0. This is the label order of the report's tables and
    confusion matrices, and of the across-fold bootstrap (:func:`fold_mean_ci`) in the
    metrics table, so both draw the same resamples.
    """
    rank = {lab: i for i, lab in enumerate(labels)}
    return sorted(labels, key=lambda lab: (-train_counts.get(lab, 0.0), rank[lab]))
