"""Which frames MAE-DFER sees per clip, and how its views' scores become one.

* ``resample`` (emobench's default): the cell's presented frames resampled to the model's
  frame count (:func:`emobench.models.hfvideo.adapter.resample_indices`), one view.
* ``authors``: the released test loader's protocol (``kinetics.py``, test mode), applied
  to the presented frames: take every ``rate``-th frame from the first (``0, rate, 2·rate,
  …``), repeat the last until there are ``clip_len``, then ``segments`` windows of
  ``clip_len`` consecutive taken frames, window ``k`` starting at
  ``⌊k · max((L − clip_len) / (segments − 1), 0)⌋`` (the first and the last window for 2
  segments). The released test also takes 2 spatial crops, but after its square resize to
  the input size both crops are the whole frame, so they only repeat each segment; they
  are left out (the mean is the same). Each view's softmax is averaged
  (:func:`average_softmax`); with the ``dense`` sampler this is the published protocol.
"""

from __future__ import annotations

import numpy as np


def authors_views(n: int, rate: int, clip_len: int, segments: int) -> list[np.ndarray]:
    """Positions (into ``n`` presented frames) of each test view (module docstring)."""
    if n < 1:
        raise ValueError("a clip must present at least one frame")
    taken = list(range(0, n, rate))
    taken += [taken[-1]] * max(0, clip_len - len(taken))
    step = max((len(taken) - clip_len) / (segments - 1), 0.0) if segments > 1 else 0.0
    return [
        np.asarray(taken[int(k * step) : int(k * step) + clip_len], np.int64)
        for k in range(segments)
    ]


def average_softmax(logits: np.ndarray, views_per_clip: list[int]) -> np.ndarray:
    """Per clip, ``log`` of the mean softmax of its consecutive views' logits (a score
    whose softmax is that mean, so argmax and probabilities are the protocol's)."""
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    out, start = [], 0
    for k in views_per_clip:
        out.append(np.log(np.clip(p[start : start + k].mean(axis=0), 1e-30, None)))
        start += k
    return np.stack(out) if out else np.zeros((0, logits.shape[1]))


__all__ = ["authors_views", "average_softmax"]
