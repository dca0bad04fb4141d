"""Samplers and order transforms: hand-computed cases plus hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emobench.errors import EmobenchError
from emobench.video.sampling import (
    ORDERS,
    SAMPLERS,
    SamplerSpec,
    SamplerSpecError,
    SamplingError,
    apply_order,
    n_unique,
    parse_spec,
    sample,
    union_indices,
    window_hit,
)

# --- hand-computed cases ----------------------------------------------------------------
# Segment centre of segment i of K over n frames = floor((i + 0.5) * n / K).


def test_uniform_hand_values() -> None:
    # n=10, K=4: (i+.5)*2.5 = 1.25, 3.75, 6.25, 8.75 -> 1, 3, 6, 8
    assert sample(10, 25.0, "uniform:4").tolist() == [1, 3, 6, 8]
    # n=75, K=16 (DFER protocol on a 3 s clip): (i+.5)*75/16 = 2.34, 7.03, 11.72, ... 72.66
    expected = [int((i + 0.5) * 75 / 16) for i in range(16)]
    assert expected[:3] == [2, 7, 11] and expected[-1] == 72
    assert sample(75, 25.0, "uniform:16").tolist() == expected


def test_uniform_more_frames_than_clip_repeats() -> None:
    # n=3, K=7: (i+.5)*3/7 = 0.21, 0.64, 1.07, 1.5, 1.93, 2.36, 2.79 -> 0,0,1,1,1,2,2
    idx = sample(3, 25.0, "uniform:7")
    assert idx.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert n_unique(idx) == 3


def test_fps_hand_values() -> None:
    # 50 frames at 25 fps = 2 s; 5 frames/s -> K = 10; centres (i+.5)*5 -> 2, 7, ..., 47
    assert sample(50, 25.0, "fps:5").tolist() == list(range(2, 50, 5))
    # 75 frames at 25 fps = 3 s; 2 frames/s -> K = 6; (i+.5)*12.5 -> 6, 18, 31, 43, 56, 68
    assert sample(75, 25.0, "fps:2").tolist() == [6, 18, 31, 43, 56, 68]
    # 10 frames at 25 fps = 0.4 s; 1 frame/s -> round(0.4) = 0 -> at least 1 frame: centre 5
    assert sample(10, 25.0, "fps:1").tolist() == [5]
    # 100 frames/s on a 25 fps clip -> K = 40 capped at 10 frames -> every frame
    assert sample(10, 25.0, "fps:100").tolist() == list(range(10))
    # 25 frames at 10 fps, 1 frame/s -> 2.5 rounds half up to K = 3 (Python's round gives 2);
    # centres (i+.5)*25/3 = 4.17, 12.5, 20.83 -> 4, 12, 20
    assert sample(25, 10.0, "fps:1").tolist() == [4, 12, 20]


def test_dense() -> None:
    assert sample(5, 25.0, "dense").tolist() == [0, 1, 2, 3, 4]


def test_window_hand_values() -> None:
    # window (10, 20) inclusive has 11 frames; K=3: (i+.5)*11/3 = 1.83, 5.5, 9.17 -> 1, 5, 9,
    # plus the onset 10 -> 11, 15, 19. (19, not 18: 2.5 * 11 / 3 = 9.17 floors to 9.)
    idx = sample(30, 25.0, "window:3", window=(10, 20))
    assert idx.tolist() == [11, 15, 19]
    assert window_hit(idx, 10, 20) == 3
    # window (3, 4) has 2 frames; K=4: (i+.5)*2/4 = 0.25, 0.75, 1.25, 1.75 -> 0,0,1,1 -> +3
    idx = sample(10, 25.0, "window:4", window=(3, 4))
    assert idx.tolist() == [3, 3, 4, 4]
    assert n_unique(idx) == 2
    # a one-frame window gives that frame K times
    assert sample(10, 25.0, "window:3", window=(7, 7)).tolist() == [7, 7, 7]


def test_window_errors() -> None:
    with pytest.raises(SamplingError, match="window"):
        sample(30, 25.0, "window:3")
    for bad in [(5, 4), (-1, 3), (10, 30), (1,)]:
        with pytest.raises(SamplingError, match="window"):
            sample(30, 25.0, "window:3", window=bad)  # type: ignore[arg-type]


def test_segment_random_stays_in_segments_and_is_seeded() -> None:
    # n=10, K=4: segments [floor(i*10/4), floor((i+1)*10/4)) = [0,2), [2,5), [5,7), [7,10)
    lows, highs = np.array([0, 2, 5, 7]), np.array([2, 5, 7, 10])
    seen: set[tuple[int, ...]] = set()
    hits = [set() for _ in range(4)]
    for seed in range(200):
        idx = sample(10, 25.0, "segment-random:4", seed=seed)
        assert np.all((idx >= lows) & (idx < highs))
        assert np.array_equal(idx, sample(10, 25.0, "segment-random:4", seed=seed))
        seen.add(tuple(idx.tolist()))
        for s, v in enumerate(idx.tolist()):
            hits[s].add(v)
    # every frame of every segment gets drawn at some seed, and seeds differ
    assert [sorted(h) for h in hits] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert len(seen) > 20
    # K > n: empty segments take their start frame, so frames repeat
    assert sample(3, 25.0, "segment-random:7", seed=5).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_union_indices() -> None:
    # uniform:4 -> [1,3,6,8]; uniform:2 -> (i+.5)*5 = 2.5, 7.5 -> [2,7]; dense adds nothing new
    u = union_indices(10, 25.0, ["uniform:4", "uniform:2"])
    assert u.tolist() == [1, 2, 3, 6, 7, 8]
    assert union_indices(10, 25.0, ["uniform:4", "dense"]).tolist() == list(range(10))
    assert union_indices(10, 25.0, []).tolist() == []
    assert union_indices(10, 25.0, ["uniform:3"]).dtype == np.int64


def test_window_hit_and_n_unique() -> None:
    idx = np.array([1, 3, 6, 8])
    assert window_hit(idx, 3, 6) == 2
    assert window_hit(idx, 0, 0) == 0
    assert window_hit(idx, None, 6) == 0
    assert window_hit(idx, 3, None) == 0
    assert n_unique([4, 4, 4, 2]) == 2


def test_orders() -> None:
    idx = np.array([1, 3, 6, 8])
    assert apply_order(idx, "original", 0).tolist() == [1, 3, 6, 8]
    assert apply_order(idx, "reverse", 0).tolist() == [8, 6, 3, 1]
    sh = apply_order(idx, "shuffle", 7)
    assert sorted(sh.tolist()) == [1, 3, 6, 8]
    assert np.array_equal(sh, apply_order(idx, "shuffle", 7))
    # K = 2: the only other order is the swap, for every seed
    for seed in range(50):
        assert apply_order(np.array([0, 5]), "shuffle", seed).tolist() == [5, 0]
    # a constant sequence has no other order
    assert apply_order(np.array([3, 3, 3]), "shuffle", 1).tolist() == [3, 3, 3]
    assert apply_order(np.array([4]), "shuffle", 1).tolist() == [4]
    # the input is not modified
    assert idx.tolist() == [1, 3, 6, 8]
    assert set(ORDERS) >= {"original", "shuffle", "reverse"}
    with pytest.raises(SamplerSpecError, match="sideways"):
        apply_order(idx, "sideways", 0)


def test_seed_must_be_non_negative() -> None:
    with pytest.raises(SamplingError, match="seed"):
        sample(10, 25.0, "segment-random:3", seed=-1)


def test_bad_clip_length() -> None:
    with pytest.raises(SamplingError, match="n_frames"):
        sample(0, 25.0, "uniform:4")
    with pytest.raises(SamplingError, match="fps"):
        sample(10, 0.0, "fps:2")


# --- spec parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec", "canonical"),
    [
        ("uniform:16", SamplerSpec("uniform", k=16), "uniform:16"),
        ("fps:2", SamplerSpec("fps", fps=2.0), "fps:2"),
        ("fps:2.5", SamplerSpec("fps", fps=2.5), "fps:2.5"),
        ("dense", SamplerSpec("dense"), "dense"),
        ("segment-random:8", SamplerSpec("segment-random", k=8), "segment-random:8"),
        ("window:4", SamplerSpec("window", k=4), "window:4"),
        (" Uniform:08 ", SamplerSpec("uniform", k=8), "uniform:8"),
    ],
)
def test_parse_spec(text: str, spec: SamplerSpec, canonical: str) -> None:
    assert parse_spec(text) == spec
    assert str(parse_spec(text)) == canonical
    assert parse_spec(str(spec)) == spec
    assert parse_spec(spec) is spec


@pytest.mark.parametrize(
    "text",
    [
        "foo:3",
        "uniform",
        "uniform:0",
        "uniform:-2",
        "uniform:1.5",
        "uniform:x",
        "fps",
        "fps:0",
        "fps:-1",
        "fps:nan",
        "fps:inf",
        "dense:3",
        "window",
        "uniform:3:4",
        "",
    ],
)
def test_bad_specs(text: str) -> None:
    with pytest.raises(SamplerSpecError) as info:
        parse_spec(text)
    msg = str(info.value)
    assert repr(text) in msg
    assert "uniform:K" in msg and "fps:F" in msg and "dense" in msg
    assert isinstance(info.value, EmobenchError)


def test_bad_spec_objects() -> None:
    with pytest.raises(SamplerSpecError):
        SamplerSpec("uniform")
    with pytest.raises(SamplerSpecError):
        SamplerSpec("dense", k=3)
    with pytest.raises(SamplerSpecError):
        SamplerSpec("nope", k=3)
    with pytest.raises(SamplerSpecError):
        parse_spec(16)  # type: ignore[arg-type]
    assert set(SAMPLERS) >= {"uniform", "fps", "dense", "segment-random", "window"}


# --- properties -------------------------------------------------------------------------

Clip = tuple[int, float, int, tuple[int, int]]


@st.composite
def clips(draw: st.DrawFn) -> Clip:
    n = draw(st.integers(1, 400))
    fps = draw(st.sampled_from([10.0, 24.0, 25.0, 29.97, 30.0, 200.0]))
    seed = draw(st.integers(0, 2**32))
    onset = draw(st.integers(0, n - 1))
    offset = draw(st.integers(onset, n - 1))
    return n, fps, seed, (onset, offset)


@st.composite
def specs(draw: st.DrawFn) -> SamplerSpec:
    kind = draw(st.sampled_from(["uniform", "segment-random", "window", "fps", "dense"]))
    if kind == "fps":
        return SamplerSpec(kind, fps=draw(st.floats(0.05, 300.0)))
    if kind == "dense":
        return SamplerSpec(kind)
    return SamplerSpec(kind, k=draw(st.integers(1, 64)))


def expected_count(spec: SamplerSpec, n: int, fps: float) -> int:
    if spec.kind == "dense":
        return n
    if spec.kind == "fps":
        assert spec.fps is not None
        return min(max(1, int(np.floor(n / fps * spec.fps + 0.5))), n)
    assert spec.k is not None
    return spec.k


@settings(max_examples=200, deadline=None)
@given(clip=clips(), spec=specs())
def test_sampler_properties(clip: Clip, spec: SamplerSpec) -> None:
    n, fps, seed, window = clip
    idx = sample(n, fps, spec, seed=seed, window=window)
    assert idx.dtype == np.int64
    assert len(idx) == expected_count(spec, n, fps)
    assert np.all((idx >= 0) & (idx < n))
    assert np.all(np.diff(idx) >= 0)
    assert np.array_equal(idx, sample(n, fps, str(spec), seed=seed, window=window))
    if spec.kind == "window":
        assert window_hit(idx, *window) == len(idx)
    if spec.kind in ("uniform", "window"):
        span = n if spec.kind == "uniform" else window[1] - window[0] + 1
        # centres of K segments cover min(K, span) distinct frames (spacing span/K)
        assert n_unique(idx) == min(len(idx), span)
    assert parse_spec(str(spec)) == spec


@settings(max_examples=200, deadline=None)
@given(
    idx=st.lists(st.integers(0, 50), min_size=0, max_size=40).map(lambda v: np.array(v, np.int64)),
    seed=st.integers(0, 2**32),
)
def test_shuffle_properties(idx: np.ndarray, seed: int) -> None:
    sh = apply_order(idx, "shuffle", seed)
    assert sorted(sh.tolist()) == sorted(idx.tolist())
    assert np.array_equal(sh, apply_order(idx, "shuffle", seed))
    if n_unique(idx) >= 2:
        assert not np.array_equal(sh, idx)
    rev = apply_order(idx, "reverse", seed)
    assert rev.tolist() == idx.tolist()[::-1]


@settings(max_examples=200, deadline=None)
@given(
    clip=clips(),
    spec=specs(),
    order=st.sampled_from(sorted(ORDERS)),
)
def test_window_hit_matches_brute_force(clip: Clip, spec: SamplerSpec, order: str) -> None:
    n, fps, seed, (onset, offset) = clip
    idx = apply_order(sample(n, fps, spec, seed=seed, window=(onset, offset)), order, seed)
    hits = window_hit(idx, onset, offset)
    assert hits <= len(idx)
    assert hits == sum(1 for i in idx.tolist() if onset <= i <= offset)


@settings(max_examples=100, deadline=None)
@given(clip=clips(), a=specs(), b=specs())
def test_union_properties(clip: Clip, a: SamplerSpec, b: SamplerSpec) -> None:
    n, fps, seed, window = clip
    u = union_indices(n, fps, [a, b], seed=seed, window=window)
    assert np.all(np.diff(u) > 0)
    for s in (a, b):
        assert np.isin(sample(n, fps, s, seed=seed, window=window), u).all()
    both = np.concatenate([sample(n, fps, s, seed=seed, window=window) for s in (a, b)])
    assert len(u) == n_unique(both)
