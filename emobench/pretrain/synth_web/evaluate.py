"""Zero-shot UAR/WAR of a pre-trained ``emobench-tiny`` on a synth split, for its card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emobench.data.registry import load_index
from emobench.errors import PretrainError
from emobench.longtail.prior_estimated import estimated_prior
from emobench.models.openclip.adapter import OpenClipModel
from emobench.pretrain.synth_web.config import ARCH
from emobench.video.frames import read_clip
from emobench.video.sampling import sample


def evaluate_zero_shot(
    weights: str | Path,
    root: str | Path,
    sampler: str = "uniform:8",
    split: str = "test",
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot UAR/WAR of ``emobench-tiny`` with ``weights`` on a synth split.

    Frames are decoded at the model's input size, sampled with ``sampler``, mean-pooled;
    metrics are given raw and after the ``estimated-prior`` correction, with per-class
    recall and the share of predictions going to each class (collapse shows there).
    """
    import polars as pl

    index = load_index("synth", Path(root))
    rows = index.filter(pl.col("split") == split).sort("clip_id")
    if rows.height == 0:
        raise PretrainError(f"{root}: no {split!r} clips to evaluate on")
    labels = sorted(set(rows["label"].to_list()))
    model = OpenClipModel(f"{ARCH}@{weights}", {})
    model.load("cpu")
    model.labels = labels
    model._classifier = model.class_embeddings(labels, "synth")
    clips = []
    for r in rows.iter_rows(named=True):
        idx = sample(r["n_frames"], r["fps"], sampler, seed)
        clips.append(model.encode(read_clip(r, idx, size=model.frame_size)))
    scores = model.score(clips).astype(np.float64)
    y = np.array([labels.index(lb) for lb in rows["label"].to_list()])
    out: dict[str, Any] = {"split": split, "sampler": sampler, "n_clips": int(len(y))}
    for name, s in (("none", scores), ("estimated-prior", estimated_prior(scores, None))):
        pred = s.argmax(1)
        recall = {
            lb: float(np.mean(pred[y == c] == c)) for c, lb in enumerate(labels) if (y == c).any()
        }
        out[name] = {
            "uar": float(np.mean(list(recall.values()))),
            "war": float(np.mean(pred == y)),
            "recall": recall,
            "pred_share": {lb: float(np.mean(pred == c)) for c, lb in enumerate(labels)},
        }
    return out


__all__ = ["evaluate_zero_shot"]
