"""The quickstart's generated data has a measurable long tail.

Under the quickstart's own metrics rule (``relative``: tail < 0.2 × the largest training
class, head ≥ 0.5 ×) the natural test split must hold at least two tail classes with at
least 15 clips each, so that tail recall, the head-tail gap and collapse are estimated on
enough clips to compare remedies. Everything is computed from ``SynthConfig.quickstart()``
through the generator's own plan (the clips it would write) and checked against the
profile's proportions computed here by hand: no count is written into the test.
"""

from __future__ import annotations

from collections import Counter

import pytest

from emobench.config import load_config
from emobench.data.synth.generate import SynthConfig, make_plan
from emobench.data.synth.profiles import DFEW_COUNTS
from emobench.metrics.groups import get_rule, group_classes

MIN_TAIL_CLASSES = 2
MIN_TAIL_TEST_CLIPS = 15


@pytest.fixture(scope="module")
def plan_counts() -> dict[str, Counter[str]]:
    """Clips per split and class in the plan of the quickstart set (no rendering)."""
    counts: dict[str, Counter[str]] = {"train": Counter(), "test": Counter()}
    for clip in make_plan(SynthConfig.quickstart()):
        assert clip.split is not None
        counts[clip.split][clip.label] += 1
    return counts


def _metrics_rule() -> tuple[str, float, float]:
    cfg = load_config("quickstart")
    rule = get_rule(cfg.metrics.rule)
    head = rule.default_head if cfg.metrics.head is None else cfg.metrics.head
    tail = rule.default_tail if cfg.metrics.tail is None else cfg.metrics.tail
    return cfg.metrics.rule, head, tail


def test_preset_generates_the_quickstart_config() -> None:
    """The preset's generate table is SynthConfig.quickstart(), in its own folder."""
    cfg = load_config("quickstart")
    (ds,) = cfg.datasets
    assert ds.name == "synth"
    assert SynthConfig(**(ds.generate or {})) == SynthConfig.quickstart()
    # the older quickstart set (DFEW profile, 400 test clips) lived in data/synth-quickstart;
    # a new folder keeps a stale set from being reused with a drift warning
    assert str(ds.root) != "data/synth-quickstart"


def test_quickstart_has_two_tail_classes_with_15_test_clips(
    plan_counts: dict[str, Counter[str]],
) -> None:
    q = SynthConfig.quickstart()
    assert q.test_split == "natural" and q.folds == 1
    assert sum(plan_counts["train"].values()) == q.n_train
    assert sum(plan_counts["test"].values()) == q.n_test
    rule, head, tail = _metrics_rule()
    groups = group_classes(dict(plan_counts["train"]), rule, head, tail)
    # the rule by hand: tail < tail x largest training class
    largest = max(plan_counts["train"].values())
    tails = sorted(c for c, n in plan_counts["train"].items() if n < tail * largest)
    assert tails == sorted(c for c, g in groups.items() if g == "tail")
    assert len(tails) >= MIN_TAIL_CLASSES, groups
    for c in tails:
        assert plan_counts["test"][c] >= MIN_TAIL_TEST_CLIPS, (c, plan_counts["test"])
    heads = [c for c, g in groups.items() if g == "head"]
    assert heads and set(heads).isdisjoint(tails)


def test_quickstart_profile_is_dfews_classes_in_an_exponential_tail(
    plan_counts: dict[str, Counter[str]],
) -> None:
    """exp:R over DFEW's classes ranked as in DFEW: class i gets a share ∝ R^(-i/6)."""
    q = SynthConfig.quickstart()
    kind, ratio_text = q.profile.split(":")[:2]
    assert kind == "exp"
    ratio = float(ratio_text)
    ranked = list(DFEW_COUNTS)  # most frequent first
    weights = [ratio ** (-i / (len(ranked) - 1)) for i in range(len(ranked))]
    for split, total in (("train", q.n_train), ("test", q.n_test)):
        for c, w in zip(ranked, weights, strict=True):
            expect = total * w / sum(weights)
            assert abs(plan_counts[split][c] - expect) < 1.0, (split, c, expect)
    # a real long tail, but not the degenerate one: largest / smallest close to the ratio
    train = plan_counts["train"]
    assert 0.8 * ratio <= max(train.values()) / min(train.values()) <= 1.25 * ratio
