"""Which requests share a model call in the ``hf:`` family, and the loop that runs them.

Clips of one ``fps:`` cell have different frame counts (and MSCE gaps different numbers
of in-between frames). The Qwen family's processors flatten every video into patches with
a grid per video, so one call may mix frame counts; other video processors (LLaVA-NeXT-
Video, LLaVA-OneVision, Video-LLaVA, InternVL, SmolVLM2) stack a call's videos into one
tensor and fail on unequal counts. :func:`plan_batches` therefore puts requests into
buckets of one :func:`batch_key` — the frame count of each video where the architecture
needs it, the rate where the processor takes one ``fps`` per call (Qwen2.5-Omni) — and
cuts each bucket into batches of ``batch_size``, keeping the longest-first order of the
throughput path inside each bucket. Requests never wait for a batch size of 1: every
bucket runs batched, so an ``fps:`` sweep keeps the batching benefit
(``benchmarks/bench_vlm.py``: mixed frame counts, bucketed vs one clip per call).

:func:`run_batches` is the loop :meth:`HFModel._compute
<emobench.models.hf.adapter.HFModel._compute>` runs: pipelined (the processor one batch
ahead in a thread), halving the batch on CUDA out-of-memory, answers back in the order
of the requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.models.hf.architectures import arch_of
from emobench.models.hf.encoding import has_video_processor
from emobench.models.hf.pipeline import Prefetcher, bucket_order, padding_counts

if TYPE_CHECKING:
    from emobench.chat.request import Request
    from emobench.models.hf.protocol import BatchedModel as HFModel


def batch_key(req: Request, *, mixed_frames: bool, fps_kwarg: bool) -> tuple[Any, ...]:
    """What requests sharing a processor call must have in common: the frame count of
    each video unless the processor mixes them (``mixed_frames``), and the rate when the
    processor takes one ``fps`` per call (``fps_kwarg``)."""
    frames = tuple(len(c["video"]) for c in req.content if c["type"] == "video")
    key: list[Any] = []
    if frames and not mixed_frames:
        key.append(frames)
    if frames and fps_kwarg:
        key.append(round(float(req.fps or 1.0), 6))
    return tuple(key)


def plan_batches(order: Sequence[int], keys: Sequence[Any], size: int) -> list[list[int]]:
    """Batches of at most ``size`` request indices, each of one key: the indices in
    ``order`` grouped by ``keys[i]`` (groups in order of their first member, members in
    ``order``), each group cut into consecutive batches."""
    size = max(size, 1)
    groups: dict[Any, list[int]] = {}
    for i in order:
        groups.setdefault(keys[i], []).append(i)
    return [g[s : s + size] for g in groups.values() for s in range(0, len(g), size)]


def request_keys(m: HFModel, reqs: Sequence[Request]) -> list[tuple[Any, ...]]:
    """:func:`batch_key` of each request for ``m``'s loaded model and processor (frames
    shown as images need no common count)."""

    arch = arch_of(getattr(m._model, "config", None))
    mixed = arch.mixed_frames or not has_video_processor(m._processor)
    return [batch_key(r, mixed_frames=mixed, fps_kwarg=arch.fps_kwarg) for r in reqs]


def run_batches(
    m: HFModel, reqs: list[Request], mode: str, max_new_tokens: int
) -> list[dict[str, Any]]:
    """Run ``m``'s model on ``reqs`` in planned batches (module docstring); on CUDA
    out-of-memory halve the batch and re-plan what is left."""
    import torch

    pipelined = m.opts.pipeline and len(reqs) > 1
    order = bucket_order([m._estimate(r) for r in reqs]) if pipelined else list(range(len(reqs)))
    keys = request_keys(m, reqs)
    first_n = max(m._inner_batch, 1)
    m._lengths = {}
    done: dict[int, dict[str, Any]] = {}
    while len(done) < len(reqs):
        n = max(m._inner_batch, 1)
        plan = plan_batches([i for i in order if i not in done], keys, n)
        batches = [[reqs[i] for i in b] for b in plan]
        feed = Prefetcher(m._encode_staged, batches, m.lookahead) if pipelined else None
        steps = iter(feed) if feed is not None else ((b, None) for b in batches)
        try:
            for idx, (batch, fut) in zip(plan, steps, strict=False):
                m._prepared = (batch, fut, feed)
                try:
                    if mode == "generate":
                        got = m._generate(batch, max_new_tokens)
                    else:
                        got = m._loglik(batch)
                finally:
                    m._prepared = None
                done.update(zip(idx, got, strict=True))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if n == 1:
                raise EmobenchError(
                    f"hf:{m.name}: out of GPU memory on a single clip (lower "
                    'max_pixels or the frame count, or use device_map = "auto")'
                ) from None
            m._inner_batch = n // 2
        finally:
            if feed is not None:
                feed.close()
                s = m._stats
                s["prefetch_peak"] = max(s["prefetch_peak"], feed.peak)
                s["processor_wait_s"] += feed.wait_s
    lengths = [m._lengths.get(id(r)) for r in reqs]
    if all(v is not None for v in lengths):  # the naive path's padding, for the record
        pad, total = padding_counts(lengths, range(len(reqs)), first_n)  # type: ignore[arg-type]
        m._stats["unbucketed_pad_tokens"] += pad
        m._stats["unbucketed_tokens"] += total
    return [done[i] for i in range(len(reqs))]
