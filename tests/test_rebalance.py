"""Sampling schedules, re-weighted losses and recipes of ``emobench.longtail.rebalance``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from emobench.errors import EmobenchError
from emobench.longtail.rebalance import (
    LOSSES,
    REBALANCING,
    SAMPLINGS,
    RebalancingError,
    class_balanced_weights,
    class_probabilities,
    draw_epoch,
    get_rebalancing,
    make_loss,
    sample_weights,
)

COUNTS = np.array([400, 200, 100, 50, 25, 10, 5])  # a DFEW-like long tail
N = COUNTS.sum()


def _labels(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("instance-balanced", COUNTS / N),
        ("class-balanced", np.full(7, 1 / 7)),
        ("square-root", np.sqrt(COUNTS) / np.sqrt(COUNTS).sum()),
    ],
)
def test_static_sampling_probabilities(strategy: str, expected: np.ndarray) -> None:
    for epoch in (0, 3, 9):
        np.testing.assert_allclose(class_probabilities(strategy, COUNTS, epoch, 10), expected)


def test_hand_computed_square_root() -> None:
    # counts 1, 4, 16 → roots 1, 2, 4 → 1/7, 2/7, 4/7
    np.testing.assert_allclose(
        class_probabilities("square-root", np.array([1, 4, 16])), [1 / 7, 2 / 7, 4 / 7]
    )


def test_progressive_interpolates() -> None:
    ib, cb = COUNTS / N, np.full(7, 1 / 7)
    e_total = 10
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 0, e_total), ib)
    np.testing.assert_allclose(
        class_probabilities("progressive", COUNTS, 5, e_total), 0.5 * ib + 0.5 * cb
    )
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 10, e_total), cb)
    np.testing.assert_allclose(
        class_probabilities("progressive", COUNTS, 3, e_total), 0.7 * ib + 0.3 * cb
    )


def test_absent_class_gets_no_probability() -> None:
    counts = np.array([10, 0, 5])
    for name in SAMPLINGS:
        p = class_probabilities(name, counts, 1, 2)
        assert p[1] == 0.0
        assert p.sum() == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 500), min_size=2, max_size=12).filter(lambda c: sum(c) > 0),
    st.sampled_from(sorted(SAMPLINGS)),
    st.integers(0, 20),
)
def test_probabilities_are_distributions(counts: list[int], name: str, epoch: int) -> None:
    p = class_probabilities(name, np.array(counts), epoch, 20)
    assert p.shape == (len(counts),)
    assert np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("strategy", sorted(SAMPLINGS))
def test_sample_weights_give_class_probabilities(strategy: str) -> None:
    labels = _labels(COUNTS)
    w = sample_weights(strategy, labels, 7, 4, 10)
    assert w.sum() == pytest.approx(1.0)
    per_class = np.bincount(labels, weights=w, minlength=7)
    np.testing.assert_allclose(per_class, class_probabilities(strategy, COUNTS, 4, 10))
    # every sample of a class has the same weight p_c / n_c
    probs = class_probabilities(strategy, COUNTS, 4, 10)
    for c in range(7):
        np.testing.assert_allclose(w[labels == c], probs[c] / COUNTS[c])


@pytest.mark.parametrize("strategy", sorted(SAMPLINGS))
def test_draw_epoch_empirical_frequencies(strategy: str) -> None:
    labels = np.random.default_rng(1).permutation(_labels(COUNTS * 40))  # 31 600 samples
    rng = np.random.default_rng(0)
    idx = draw_epoch(strategy, labels, 7, 5, 10, rng)
    assert idx.shape == labels.shape and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < len(labels)
    freq = np.bincount(labels[idx], minlength=7) / len(idx)
    np.testing.assert_allclose(freq, class_probabilities(strategy, COUNTS, 5, 10), atol=0.01)


def test_draw_epoch_is_seeded() -> None:
    labels = _labels(COUNTS)
    a = draw_epoch("class-balanced", labels, 7, 0, 1, np.random.default_rng(3))
    b = draw_epoch("class-balanced", labels, 7, 0, 1, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_class_balanced_weights_by_hand() -> None:
    beta = 0.9
    counts = np.array([1, 2, 10])
    raw = np.array([(1 - beta) / (1 - beta**n) for n in (1, 2, 10)])  # 1, 1/1.9, 0.1/(1-.9^10)
    np.testing.assert_allclose(raw[:2], [1.0, 1 / 1.9])
    expected = raw / raw.sum() * 3
    np.testing.assert_allclose(class_balanced_weights(counts, beta), expected)
    assert class_balanced_weights(counts, beta).sum() == pytest.approx(3.0)
    # beta → 0 is plain CE; weights are ~1/n_c for beta → 1
    np.testing.assert_allclose(class_balanced_weights(counts, 0.0), [1, 1, 1])
    w = class_balanced_weights(counts, 0.999999)
    np.testing.assert_allclose(w / w[0], [1, 1 / 2, 1 / 10], rtol=1e-4)


def test_cb_loss_matches_hand_computation() -> None:
    counts = np.array([100, 10, 1])
    beta = 0.99
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 0, 1])
    w = (1 - beta) / (1 - beta ** counts.astype(float))
    w = w / w.sum() * 3
    per_sample = -torch.log_softmax(logits, 1)[torch.arange(6), targets].numpy()
    expected = float(np.mean(w[targets.numpy()] * per_sample))
    got = float(make_loss("class-balanced", counts, {"beta": beta})(logits, targets))
    assert got == pytest.approx(expected, rel=1e-6)


def test_logit_adjusted_loss_is_ce_on_shifted_logits() -> None:
    counts = np.array([60, 30, 10])
    torch.manual_seed(1)
    logits, targets = torch.randn(8, 3), torch.randint(0, 3, (8,))
    for tau in (1.0, 0.5, 2.0):
        shifted = logits + tau * torch.log(torch.tensor(counts / counts.sum(), dtype=torch.float32))
        expected = F.cross_entropy(shifted, targets)
        got = make_loss("logit-adjusted", counts, {"tau": tau})(logits, targets)
        assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_ce_loss_is_cross_entropy() -> None:
    logits, targets = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    got = make_loss("ce", np.array([1, 1, 1, 1]))(logits, targets)
    assert float(got) == pytest.approx(float(F.cross_entropy(logits, targets)))


def test_registry_contents_and_recipes() -> None:
    assert set(SAMPLINGS) == {"instance-balanced", "class-balanced", "square-root", "progressive"}
    assert set(LOSSES) == {"ce", "class-balanced", "logit-adjusted"}
    assert set(REBALANCING) == {
        "instance-balanced", "class-balanced", "square-root", "progressive",
        "cb-loss", "logit-adjusted", "decoupled-crt",
    }  # fmt: skip
    for name, recipe in REBALANCING.items():
        assert recipe.name == name
        assert recipe.sampling in SAMPLINGS and recipe.loss in LOSSES
        make_loss(recipe.loss, COUNTS, recipe.params)  # parameters fit the loss
    crt = get_rebalancing("decoupled-crt")
    assert crt.decoupled and crt.sampling == "instance-balanced"
    assert crt.crt_sampling == "class-balanced"
    assert get_rebalancing("cb-loss").params == {"beta": 0.9999}
    assert get_rebalancing("logit-adjusted").params == {"tau": 1.0}
    with pytest.raises(AttributeError):
        crt.decoupled = False  # type: ignore[misc]  # frozen


def test_unknown_names_list_allowed() -> None:
    with pytest.raises(EmobenchError, match="allowed: .*cb-loss.*decoupled-crt"):
        get_rebalancing("focal")
    with pytest.raises(RebalancingError, match="square-root"):
        class_probabilities("nope", COUNTS)
    with pytest.raises(RebalancingError, match="logit-adjusted"):
        make_loss("focal", COUNTS)
    with pytest.raises(RebalancingError, match="bad parameters"):
        make_loss("ce", COUNTS, {"tau": 1.0})


def test_bad_labels_are_clear() -> None:
    with pytest.raises(RebalancingError, match=r"\[0, 3\)"):
        sample_weights("class-balanced", np.array([0, 1, 3]), 3)
    with pytest.raises(RebalancingError, match="integer"):
        sample_weights("class-balanced", np.array([0.0, 1.0]), 3)
    with pytest.raises(RebalancingError, match="beta"):
        class_balanced_weights(COUNTS, 1.0)
