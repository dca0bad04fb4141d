"""The throughput path of the ``hf:`` family: length bucketing and a processor that runs ahead.

A VLM batch is as slow as its longest prompt (the others are left-padded to it), and the
processor (chat template, frame resizing and patching) is CPU work that, done inline,
leaves the accelerator idle between batches. With ``pipeline = true`` (default)
:meth:`HFModel._compute <emobench.models.hf.adapter.HFModel._compute>`:

* orders the requests that missed the answer cache by an estimate of their token count
  (:func:`estimate_tokens`: visual tokens from frame count × pixels, plus the text),
  longest first (:func:`bucket_order`), so each inner batch holds similar lengths; the
  answers go back in the original order;
* encodes batch *i + 1* (up to ``lookahead`` batches ahead) in one background thread
  (:class:`Prefetcher`) while the model runs batch *i*; an error of the processor is
  raised, unchanged, when the model reaches that batch, as on the naive path.

The outputs are those of the naive path (``pipeline = false``): the same requests, the
same greedy decoding or label log-likelihoods; only which requests share a batch changes.
:func:`padding_fraction` measures the padding a batch order costs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

#: Qwen-VL-style defaults: a visual token covers 28 × 28 pixels (14-px patches merged 2 × 2)
#: and 2 video frames (temporal patches); about 4 characters per text token.
PIXELS_PER_TOKEN = 28 * 28
TEMPORAL_PATCH = 2
CHARS_PER_TOKEN = 4


def estimate_tokens(
    content: Sequence[dict[str, Any]],
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    pixels_per_token: int = PIXELS_PER_TOKEN,
    temporal_patch: int = TEMPORAL_PATCH,
) -> int:
    """A cheap estimate of a request's prompt length in tokens, for ordering only.

    Each image or video frame counts its pixels (clamped to the processor's
    ``[min_pixels, max_pixels]``, as its resize does) over ``pixels_per_token``; a video's
    frames are grouped ``temporal_patch`` at a time; text counts 1 token per 4 characters.
    """
    total = 0
    for c in content:
        kind = c.get("type")
        if kind == "text":
            total += math.ceil(len(c.get("text", "")) / CHARS_PER_TOKEN)
            continue
        if kind not in ("image", "video"):
            continue
        shape = np.shape(c[kind])
        if kind == "image":
            frames, h, w = 1, shape[0], shape[1]
        else:
            frames, h, w = math.ceil(shape[0] / temporal_patch), shape[1], shape[2]
        px = int(h) * int(w)
        if min_pixels is not None:
            px = max(px, min_pixels)
        if max_pixels is not None:
            px = min(px, max_pixels)
        total += frames * max(px // pixels_per_token, 1)
    return total


def bucket_order(lengths: Sequence[int]) -> list[int]:
    """Indices of ``lengths`` longest first, ties in arrival order (a stable sort): cut
    into consecutive batches, each batch holds neighbouring lengths, and the largest batch
    (the one most likely to run out of memory) comes first."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def padding_counts(lengths: Sequence[int], order: Sequence[int], batch: int) -> tuple[int, int]:
    """(padding tokens, all tokens) when the requests run in ``order`` in batches of
    ``batch``, each left-padded to its longest."""
    batch = max(batch, 1)
    pad = total = 0
    for start in range(0, len(order), batch):
        rows = [lengths[i] for i in order[start : start + batch]]
        pad += max(rows) * len(rows) - sum(rows)
        total += max(rows) * len(rows)
    return pad, total


def padding_fraction(lengths: Sequence[int], order: Sequence[int], batch: int) -> float:
    """The share of padding tokens when the requests run in ``order`` in batches of
    ``batch``, each left-padded to its longest: Σ(longest − length) / Σ(longest × rows)."""
    pad, total = padding_counts(lengths, order, batch)
    return pad / total if total else 0.0


class Prefetcher:
    """Runs ``fn`` on each of ``batches`` in one background thread, at most ``lookahead``
    batches ahead of the one being consumed.

    Iterating yields ``(batch, future)``; the next batches are submitted before the
    current one is handed out, so the processor works while the caller runs the model.
    ``peak`` is the most batches ever held (submitted, not yet handed out): never above
    ``lookahead``. ``wait_s`` is the time the caller spent waiting in :meth:`result`.
    """

    def __init__(
        self, fn: Callable[[Any], Any], batches: Sequence[Any], lookahead: int = 1
    ) -> None:
        if lookahead < 1:
            raise ValueError("lookahead must be at least 1")
        self._fn = fn
        self._batches = iter(batches)
        self.lookahead = lookahead
        self._queue: deque[tuple[Any, Future[Any]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.peak = 0
        self.wait_s = 0.0

    def _fill(self) -> None:
        while len(self._queue) < self.lookahead:
            batch = next(self._batches, None)
            if batch is None:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="emobench-hf-processor")
            self._queue.append((batch, self._pool.submit(self._fn, batch)))
            with self._lock:
                self.peak = max(self.peak, len(self._queue))

    def __iter__(self) -> Iterator[tuple[Any, Future[Any]]]:
        try:
            self._fill()
            while self._queue:
                batch, fut = self._queue.popleft()
                self._fill()  # the processor starts on the next batch before the model runs
                yield batch, fut
        finally:
            self.close()

    def result(self, fut: Future[Any]) -> Any:
        """``fut``'s value (its exception re-raised as is), timing the wait."""
        t = time.perf_counter()
        try:
            return fut.result()
        finally:
            self.wait_s += time.perf_counter() - t

    def close(self) -> None:
        """Drop the batches not handed out (cancelling those not started) and stop the
        thread once the one it is encoding, if any, is done."""
        for _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: transformers modules of the models that cast their pixel inputs to the model's dtype on
#: entry and do nothing to them before (so an earlier cast gives the same values)
CASTS_PIXELS_ON_ENTRY = ("modeling_qwen2_vl", "modeling_qwen2_5_vl")


def stage_for_device(enc: Any, model: Any, device: Any) -> Any:
    """Ready a processor batch for the copy to ``device``, in the processor's thread.

    For a Qwen-VL model in 16 bits the pixel tensors are cast to its dtype here (it casts
    them on entry: the same values, half the bytes to copy); for a CUDA target every
    tensor is pinned, so the copy in :meth:`HFModel.encode` runs asynchronously."""
    import torch

    dtype = getattr(model, "dtype", None)
    cast = (
        dtype in (torch.bfloat16, torch.float16)
        and type(model).__module__.rsplit(".", 1)[-1] in CASTS_PIXELS_ON_ENTRY
    )
    pin = str(device).startswith("cuda") and torch.cuda.is_available()
    for k in list(enc.keys()):
        v = enc[k]
        if not isinstance(v, torch.Tensor):
            continue
        if cast and k.startswith("pixel_values") and v.is_floating_point():
            v = v.to(dtype)
        if pin:
            v = v.pin_memory()
        enc[k] = v
    return enc
