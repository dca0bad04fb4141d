"""Common properties of every registered sampler, order, prior correction and frame source
(a new registry entry is checked without writing a test for it), plus the ``em-test-prior``
correction against independent references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_frames import decoded_levels, write_folder, write_video

from emobench.longtail.prior import PRIOR_CORRECTIONS, apply_prior, needs_calibration
from emobench.longtail.prior_estimated import estimate_prior
from emobench.longtail.prior_saerens import em_test_prior_estimate
from emobench.video.frames import FRAME_SOURCES, open_source, reset_decode_stats
from emobench.video.sampling import ORDERS, SAMPLERS, apply_order, parse_spec, sample

# --- samplers ---------------------------------------------------------------------------

ARGS = {"count": ":5", "rate": ":2.5", "none": ""}
CLIPS = [(1, 25.0), (7, 10.0), (30, 30.0), (97, 24.0)]


def spec_of(name: str) -> str:
    return name + ARGS[SAMPLERS[name].param]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_common(name: str) -> None:
    spec = parse_spec(spec_of(name))
    assert parse_spec(str(spec)) == spec
    for n, fps in CLIPS:
        window = (n // 4, n - 1 - n // 4)
        idx = sample(n, fps, spec, seed=3, window=window)
        assert idx.dtype == np.int64 and idx.ndim == 1 and idx.size >= 1
        assert idx.min() >= 0 and idx.max() < n
        assert np.all(np.diff(idx) >= 0)  # ascending: the original order
        np.testing.assert_array_equal(idx, sample(n, fps, spec, seed=3, window=window))
        np.testing.assert_array_equal(apply_order(idx, "original"), idx)
        if SAMPLERS[name].param == "count":
            assert idx.size == spec.k
        elif SAMPLERS[name].param == "none":
            assert idx.size <= n


# --- orders -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(ORDERS))
def test_order_common(order: str) -> None:
    for idx in (np.array([4]), np.array([0, 0, 3]), np.arange(2, 40, 3)):
        out = apply_order(idx, order, seed=5)
        assert out.dtype == np.int64 and out.shape == idx.shape
        np.testing.assert_array_equal(np.sort(out), np.sort(idx))  # a permutation
        np.testing.assert_array_equal(out, apply_order(idx, order, seed=5))
        assert apply_order(idx, order.upper(), seed=5).tolist() == out.tolist()


# --- prior corrections ------------------------------------------------------------------


def scores_with_a_dead_column(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(40, 5)) + np.array([1.5, 0.5, 0.0, -0.5, 0.0])
    z[:, 4] = -np.inf  # a label the model cannot output
    return z


TRAIN_PRIOR = np.array([0.4, 0.3, 0.15, 0.1, 0.05])


def held_out(name: str, z: np.ndarray) -> dict[str, object]:
    """Held-out labelled clips (``calibration=``) shaped like ``z``, for the corrections
    that need them."""
    if not needs_calibration(name):
        return {}
    cal = scores_with_a_dead_column(seed=1)[:, : z.shape[1]]
    return {"calibration": (cal, np.arange(40) % min(4, z.shape[1]))}


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # batch-calibration on 0 clips
@pytest.mark.parametrize("name", list(PRIOR_CORRECTIONS))
def test_prior_correction_common(name: str) -> None:
    z = scores_with_a_dead_column()
    before = z.copy()
    with np.errstate(invalid="ignore"):  # batch-calibration: -inf - mean(-inf) is nan
        out = apply_prior(name, z, TRAIN_PRIOR, **held_out(name, z))
    np.testing.assert_array_equal(z, before)  # input untouched
    assert out.shape == z.shape
    assert np.all(np.isfinite(out[:, :4]))  # finite where the input column is finite
    finite = z[:, :4]
    cal = held_out(name, finite)
    # a per-clip constant (e.g. log-softmax vs logits) never changes the prediction
    shifted = apply_prior(name, finite + np.arange(40)[:, None], TRAIN_PRIOR[:4], **cal)
    np.testing.assert_array_equal(
        shifted.argmax(1), apply_prior(name, finite, TRAIN_PRIOR[:4], **cal).argmax(1)
    )
    with np.errstate(invalid="ignore"):
        empty = np.zeros((0, 3))
        out = apply_prior(name, empty, np.full(3, 1 / 3), **held_out(name, empty))
        assert out.shape == (0, 3)


def test_none_is_identity_and_uniform_logit_adjust_keeps_argmax() -> None:
    z = scores_with_a_dead_column()
    np.testing.assert_array_equal(apply_prior("none", z, TRAIN_PRIOR), z)
    f = z[:, :4]
    la = apply_prior("logit-adjust", f, np.full(4, 0.25))
    np.testing.assert_array_equal(la.argmax(1), f.argmax(1))


# --- em-test-prior (Saerens, Latinne & Decaestecker 2002) -------------------------------


def test_em_test_prior_two_classes_by_hand() -> None:
    """Half the clips have posteriors (0.9, 0.1), half (0.2, 0.8), training prior uniform.
    The likelihood ½log(0.1 + 0.8π) + ½log(0.8 − 0.6π) peaks where
    0.8·(0.8 − 0.6π) = 0.6·(0.1 + 0.8π), i.e. π̂ = 0.58 / 0.96 = 29/48."""
    p = np.array([[0.9, 0.1]] * 3 + [[0.2, 0.8]] * 3)
    z = np.log(p) + 7.0  # logits: any per-clip constant
    q = em_test_prior_estimate(z, np.array([0.5, 0.5]))
    np.testing.assert_allclose(q, [29 / 48, 19 / 48], atol=1e-8)
    out = apply_prior("em-test-prior", z, np.array([0.5, 0.5]))
    post = np.exp(out - out.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    want = p * np.array([29 / 48, 19 / 48]) / 0.5
    np.testing.assert_allclose(post, want / want.sum(1, keepdims=True), atol=1e-8)
    np.testing.assert_allclose(post.mean(0), [29 / 48, 19 / 48], atol=1e-8)  # fixed point


def saerens_reference(post: np.ndarray, train_prior: np.ndarray) -> np.ndarray:
    """Saerens et al. (2002) eqs. (2.9)-(2.10) written directly in probability space."""
    prior = train_prior.copy()
    for _ in range(10000):
        adj = post * (prior / train_prior)
        adj /= adj.sum(axis=1, keepdims=True)
        prior, last = adj.mean(axis=0), prior
        if np.max(np.abs(prior - last)) < 1e-13:
            break
    return prior


def gaussian_task(n: int, test_prior: np.ndarray, seed: int) -> np.ndarray:
    """Exact log-posteriors (up to a per-clip constant) under a uniform training prior
    for 1-D Gaussian classes at 0, 1.5, 3 (unit variance), on clips drawn with
    ``test_prior``."""
    rng = np.random.default_rng(seed)
    means = np.array([0.0, 1.5, 3.0])
    y = rng.choice(3, size=n, p=test_prior)
    x = rng.normal(means[y], 1.0)
    return -0.5 * (x[:, None] - means[None, :]) ** 2


def test_em_test_prior_recovers_the_true_test_prior() -> None:
    true = np.array([0.6, 0.3, 0.1])
    z = gaussian_task(10000, true, seed=1)
    uniform = np.full(3, 1 / 3)
    q = em_test_prior_estimate(z, uniform)
    assert np.max(np.abs(q - true)) < 0.03
    post = np.exp(z - z.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    np.testing.assert_allclose(q, saerens_reference(post, uniform), atol=1e-6)
    # a non-uniform training prior: posteriors calibrated for it give the same test prior
    train = np.array([0.2, 0.5, 0.3])
    q_t = em_test_prior_estimate(z + np.log(train), train)
    np.testing.assert_allclose(q_t, q, atol=1e-6)


def test_estimated_prior_is_not_saerens_but_uniformises_the_mean_posterior() -> None:
    """``estimated-prior`` removes the prior that makes the mean corrected posterior
    uniform (Sinkhorn-style scaling); Saerens' EM adopts the test prior instead."""
    z = gaussian_task(5000, np.array([0.6, 0.3, 0.1]), seed=2)
    out = apply_prior("estimated-prior", z, None)
    post = np.exp(out - out.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    np.testing.assert_allclose(post.mean(0), np.full(3, 1 / 3), atol=1e-6)
    assert np.max(np.abs(estimate_prior(z) - em_test_prior_estimate(z))) > 0.05


# --- frame sources ----------------------------------------------------------------------


def make_video(root: Path) -> tuple[Path, list[int]]:
    return write_video(root / "clip.mp4", n=12, side=32), list(range(12))


def make_folder(root: Path) -> tuple[Path, list[int]]:
    levels = [16 + 8 * k for k in range(6)]
    return write_folder(root / "clip", [f"img{k + 1}.png" for k in range(6)], levels), list(
        range(6)
    )


#: Known-content media per registered kind: frame i decodes to grey level 16 + 8 i.
MEDIA = {"video": make_video, "frames": make_folder}


@pytest.mark.parametrize("media", list(FRAME_SOURCES))
def test_frame_source_common(media: str, tmp_path: Path) -> None:
    assert media in MEDIA, f"add a known-content maker for the frame source {media!r}"
    path, frames = MEDIA[media](tmp_path)
    backend = "pyav" if media == "video" else "auto"
    src = open_source(media, backend=backend)
    assert src.count(str(path)) == len(frames)
    req = [len(frames) - 1, 0, 2, 2]
    out = src.read(str(path), req, clip_id="c")
    assert out.dtype == np.uint8 and out.shape[0] == len(req) and out.shape[-1] == 3
    assert decoded_levels(out) == req
    sized = open_source(media, size=16, backend=backend).read(str(path), [1])
    assert sized.shape == (1, 16, 16, 3)
    reset_decode_stats()
