"""The ``hf:`` throughput path (:mod:`emobench.models.hf.pipeline`) against the naive one.

Length bucketing and the processor running ahead in a thread must not change an answer:
on clips of mixed frame counts (so bucketing reorders them) the pipelined tiny Qwen2.5-VL
gives the naive path's texts and label log-likelihoods, in the clips' order; the ordering
and padding helpers match hand-computed cases; the prefetch never holds more than its
bound; a processor error surfaces as the naive path's error.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from conftest import zero_shot_context

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emobench.models.base import ClipInput  # noqa: E402
from emobench.models.hf import adapter as hf  # noqa: E402
from emobench.models.hf.pipeline import (  # noqa: E402
    Prefetcher,
    bucket_order,
    estimate_tokens,
    padding_counts,
    padding_fraction,
)

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
#: frame counts that arrive unsorted, so bucketing reorders them
FRAMES = [2, 8, 4, 8, 2, 6, 4]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from hf_tiny import build_qwen25_vl

    return build_qwen25_vl(tmp_path_factory.mktemp("hf-tp") / "qwen")


def _ctx(tmp_path):
    return zero_shot_context(tmp_path, LABELS, torch.device("cpu"))


def _clips(frames=FRAMES, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ClipInput(
            clip_id=f"c{i}",
            frames=rng.integers(0, 256, (f, 32, 32, 3), dtype=np.uint8),
            indices=np.arange(f) * 3,
            fps=25.0,
        )
        for i, f in enumerate(frames)
    ]


def _model(folder, tmp_path, **options):
    m = hf.HFModel(str(folder), {"cache": False, "batch_size": 2, **options})
    m.fit(_ctx(tmp_path))
    m._load()
    m._model.generation_config.min_new_tokens = 3  # the random model may not stop early
    return m


def test_bucket_order_and_padding_are_the_hand_computed_ones():
    lengths = [5, 20, 10, 20]
    # longest first, the two 20s in arrival order
    assert bucket_order(lengths) == [1, 3, 2, 0]
    # arrival order in pairs: [5, 20] pads 15 of 40, [10, 20] pads 10 of 40
    assert padding_counts(lengths, range(4), 2) == (25, 80)
    assert padding_fraction(lengths, range(4), 2) == pytest.approx(25 / 80)
    # bucketed: [20, 20] pads 0 of 40, [10, 5] pads 5 of 20
    assert padding_counts(lengths, [1, 3, 2, 0], 2) == (5, 60)
    assert padding_fraction([], [], 2) == 0.0


def test_token_estimate_is_the_hand_computed_one():
    video = {"type": "video", "video": np.zeros((8, 32, 32, 3), np.uint8)}
    text = {"type": "text", "text": "abcdefghi"}  # 9 characters: 3 tokens
    # 8 frames → 4 temporal patches × (1024 px // 784) = 4; + 3 text tokens
    assert estimate_tokens([video, text], min_pixels=784, max_pixels=3136) == 7
    big = {"type": "image", "image": np.zeros((100, 100, 3), np.uint8)}
    assert estimate_tokens([big], max_pixels=3136) == 4  # clamped to 56 × 56 → 4 tokens
    assert estimate_tokens([big]) == 10000 // 784
    tiny = {"type": "image", "image": np.zeros((8, 8, 3), np.uint8)}
    assert estimate_tokens([tiny], min_pixels=784) == 1  # raised to the minimum


@pytest.mark.parametrize(("scoring", "inp"), [("generate", "video"), ("loglik", "video")])
def test_pipelined_answers_equal_the_naive_ones(qwen, tmp_path, scoring, inp):
    clips = _clips()
    naive = _model(qwen, tmp_path, scoring=scoring, input=inp, pipeline=False)
    fast = _model(qwen, tmp_path, scoring=scoring, input=inp)
    assert naive.batch_size == 2 and fast.batch_size == 2 * 8  # room to sort per call
    calls = sum(hf.MODEL_CALLS.values())
    want = naive.predict(clips)
    naive_calls = sum(hf.MODEL_CALLS.values()) - calls
    got = fast.predict(clips)
    assert sum(hf.MODEL_CALLS.values()) - calls == 2 * naive_calls  # same batches count
    if scoring == "generate":
        assert [o.text for o in got] == [o.text for o in want]
        assert len({o.text for o in want}) > 1  # the clips' answers differ: order matters
    else:
        a = np.stack([o.scores for o in got])
        b = np.stack([o.scores for o in want])
        assert not np.allclose(b[0], b[1], atol=1e-3)  # the clips' scores differ
        # a clip padded to another length rounds differently (float32 matmuls of another
        # shape), nothing more: both paths equal the unpadded one-clip-at-a-time
        # reference to 1e-5 (the continuations' positions count from each row's own
        # prompt, emobench.models.hf.positions)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        one = _model(qwen, tmp_path, scoring=scoring, input=inp, pipeline=False, batch_size=1)
        ref = np.stack([o.scores for o in one.predict(clips)])
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b, ref, rtol=0, atol=1e-5)
    d, dn = fast.describe(), naive.describe()
    assert d["pipeline"] is True and dn["pipeline"] is False
    # bucketing cut the padding; the naive path pads as its arrival order implies
    assert d["padding_fraction_unbucketed"] == dn["padding_fraction"]
    assert dn["padding_fraction_unbucketed"] == dn["padding_fraction"]
    assert d["padding_fraction"] < dn["padding_fraction"]
    assert d["prefetch_peak"] == 1 and dn["prefetch_peak"] == 0
    assert d["attn_implementation"] in ("sdpa", "eager")


@pytest.mark.parametrize("scoring", ["generate", "loglik"])
def test_same_batches_give_bit_identical_answers(qwen, tmp_path, scoring):
    """Clips of one length are not reordered: the processor thread alone changes nothing."""
    clips = _clips([4] * 5, seed=1)
    want = _model(qwen, tmp_path, scoring=scoring, pipeline=False).predict(clips)
    got = _model(qwen, tmp_path, scoring=scoring).predict(clips)
    for g, w in zip(got, want, strict=True):
        assert g.text == w.text
        if scoring == "loglik":
            np.testing.assert_array_equal(g.scores, w.scores)


def test_the_optimised_batches_are_the_length_sorted_ones(qwen, tmp_path, monkeypatch):
    m = _model(qwen, tmp_path)
    seen = []
    real = hf.HFModel._generate

    def generate(self, reqs, max_new_tokens):
        seen.append([len(r.content[0]["video"]) for r in reqs])
        return real(self, reqs, max_new_tokens)

    monkeypatch.setattr(hf.HFModel, "_generate", generate)
    m.predict(_clips())
    assert seen == [[8, 8], [6, 4], [4, 2], [2]]


def test_prefetch_never_holds_more_than_its_bound():
    live = {"n": 0, "max": 0}
    lock = threading.Lock()

    def encode(batch):
        with lock:  # a batch is held from submission until the consumer takes it
            live["n"] += 1
            live["max"] = max(live["max"], live["n"])
        time.sleep(0.002)
        return [x * 10 for x in batch]

    for bound in (1, 2):
        live.update(n=0, max=0)
        feed = Prefetcher(encode, [[i] for i in range(6)], lookahead=bound)
        got = []
        for batch, fut in feed:
            got.append((batch, feed.result(fut)))
            with lock:
                live["n"] -= 1
            # the batches submitted and not yet handed out never exceed the bound
            assert len(feed._queue) <= bound
            time.sleep(0.005)  # the "model": slower than the processor, which runs ahead
        assert got == [([i], [i * 10]) for i in range(6)]  # in order, each with its batch
        assert feed.peak == bound and live["max"] <= bound + 1
    with pytest.raises(ValueError, match="lookahead"):
        Prefetcher(encode, [], lookahead=0)


def test_a_processor_error_surfaces_as_on_the_naive_path(qwen, tmp_path, monkeypatch):
    from transformers import Qwen2_5_VLProcessor

    real = Qwen2_5_VLProcessor.__call__

    def call(self, *args, **kw):
        if any(len(v) == 6 for v in kw.get("videos") or []):
            raise ValueError("cannot process a 6-frame video (simulated)")
        return real(self, *args, **kw)

    monkeypatch.setattr(Qwen2_5_VLProcessor, "__call__", call)
    errors = []
    for pipeline in (False, True):
        m = _model(qwen, tmp_path, pipeline=pipeline)
        with pytest.raises(ValueError) as info:
            m.predict(_clips())
        errors.append((type(info.value), str(info.value)))
        assert m._prepared is None
    assert errors[0] == errors[1]
    assert not [t for t in threading.enumerate() if t.name.startswith("emobench-hf-processor")]


def test_the_model_estimate_uses_its_processor_geometry(qwen, tmp_path):
    """Tiny Qwen2.5-VL: 28-px tokens, 2-frame temporal patches, 784–3136 px per frame."""
    m = _model(qwen, tmp_path)
    (clip,) = _clips([8])
    req, _ = m._clip_request(clip)
    text = next(c["text"] for c in req.content if c["type"] == "text")
    assert m._estimate(req) == 4 * 1 + -(-len(text) // 4)  # 4 patches × 1024 // 784
    big = _model(qwen, tmp_path, size={"shortest_edge": 784, "longest_edge": 784 * 4})
    wide = ClipInput("w", np.zeros((8, 112, 112, 3), np.uint8), np.arange(8) * 3, 25.0)
    # 112 × 112 = 12544 px per frame, clamped to 3136 px: 4 tokens per temporal patch
    assert big._estimate(big._clip_request(wide)[0]) == 4 * 4 + -(-len(text) // 4)


def test_identical_requests_are_computed_once(qwen, tmp_path):
    m = _model(qwen, tmp_path, batch_size=4)
    (a,) = _clips([4], seed=3)
    b = ClipInput("other", a.frames.copy(), a.indices, a.fps)  # the same request
    calls = sum(hf.MODEL_CALLS.values())
    out = m.predict([a, b])
    assert sum(hf.MODEL_CALLS.values()) - calls == 1
    assert out[0].text == out[1].text
    assert m.describe()["padding_fraction"] == 0.0  # one row, no padding


def test_batched_vision_attention_equals_the_per_chunk_one(qwen, tmp_path, monkeypatch):
    from emobench.models.hf.kernels import batched_vision_attention, equal_runs

    assert equal_runs([4, 4, 2, 4]) == [(0, 2, 4), (2, 1, 2), (3, 1, 4)]
    assert equal_runs([]) == []
    m = _model(qwen, tmp_path)
    (clip,) = _clips([8])
    enc, _ = m.encode([m._clip_request(clip)[0]])
    visual = m._model.model.visual
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counted(*a, **kw):
        calls.append(a[0].shape[0])  # the batch of chunks of each call
        return sdpa(*a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)

    def run():
        with torch.no_grad():
            out = visual(enc["pixel_values_videos"], grid_thw=enc["video_grid_thw"])
        return out if torch.is_tensor(out) else out[0]

    ref = run()
    assert calls == [1, 1, 1, 1]  # one call per 2-frame chunk: 8 frames, 4 chunks
    calls.clear()
    with batched_vision_attention(m._model) as n:
        assert n == 1  # the tiny tower's one block
        got = run()
    assert calls == [4]  # one call over the 4 equal chunks
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    attn = next(mod for mod in visual.modules() if type(mod).__name__.endswith("Attention"))
    assert "forward" not in vars(attn)  # restored after the block
    with batched_vision_attention(m._model, enabled=False) as n:
        assert n == 0


def test_staging_casts_pixels_only_where_the_model_would(qwen, tmp_path):
    from types import SimpleNamespace

    from emobench.models.hf.pipeline import stage_for_device

    naive = _model(qwen, tmp_path, scoring="loglik", dtype="bfloat16", pipeline=False)
    clips = _clips([4, 4, 4], seed=2)
    enc, _ = naive._encode_cpu([naive._clip_request(c)[0] for c in clips])
    pixels, ids = enc["pixel_values_videos"].clone(), enc["input_ids"].clone()
    assert pixels.dtype == torch.float32
    other = stage_for_device(dict(enc), SimpleNamespace(dtype=torch.bfloat16), "cpu")
    assert other["pixel_values_videos"].dtype == torch.float32  # not a Qwen-VL: untouched
    staged = stage_for_device(enc, naive._model, "cpu")
    assert staged["pixel_values_videos"].dtype == torch.bfloat16
    assert torch.equal(staged["pixel_values_videos"], pixels.to(torch.bfloat16))
    assert torch.equal(staged["input_ids"], ids)
    # the bf16 model casts them on entry anyway: the pipelined scores are the naive ones
    fast = _model(qwen, tmp_path, scoring="loglik", dtype="bfloat16")
    want = np.stack([o.scores for o in naive.predict(clips)])
    got = np.stack([o.scores for o in fast.predict(clips)])
    np.testing.assert_array_equal(got, want)
