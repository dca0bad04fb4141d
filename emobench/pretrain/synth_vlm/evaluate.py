"""Zero-shot UAR/WAR of a pre-trained ``emobench-tiny-vlm`` on a synth split through the
``hf:`` family (generate, loglik, MSCE), for its card."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from emobench.answers import parse_answer
from emobench.data.registry import load_index
from emobench.errors import PretrainError
from emobench.longtail.prior_estimated import estimated_prior
from emobench.models.base import ClipInput, FitContext
from emobench.models.hf.adapter import HFModel
from emobench.progress import ProgressFn
from emobench.video.frames import read_clip
from emobench.video.sampling import between_indices, sample


def evaluate_zero_shot(
    folder: str | Path,
    root: str | Path,
    sampler: str = "uniform:8",
    modes: tuple[str, ...] = ("generate", "loglik"),
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Zero-shot UAR/WAR of the model in ``folder`` through the ``hf:`` family on a synth
    split (frames decoded at 112 px, ``sampler``), for each scoring mode in ``modes``
    (``generate``, ``loglik``, ``msce``: generate with MSCE enrichment, the model describing
    its own gaps): per-class recall, each class's share of the predictions, the invalid
    share (generate), and clips per second."""
    import polars as pl
    import torch

    index = load_index("synth", Path(root))
    rows = index.filter(pl.col("split") == split).sort("clip_id")
    if limit is not None:
        rows = rows.head(limit)
    if rows.height == 0:
        raise PretrainError(f"{root}: no {split!r} clips to evaluate on")
    labels = sorted(set(rows["label"].to_list()))
    y = np.array([labels.index(lb) for lb in rows["label"].to_list()])
    clips: list[ClipInput] = []
    gap_clips: list[ClipInput] = []
    for r in rows.iter_rows(named=True):
        idx = sample(r["n_frames"], r["fps"], sampler, seed)
        frames = read_clip(r, idx, size=112)
        clips.append(ClipInput(r["clip_id"], frames, idx, float(r["fps"])))
        if "msce" in modes:
            gaps = [between_indices(a, b, 4) for a, b in zip(idx[:-1], idx[1:], strict=True)]
            between = [read_clip(r, g, size=112) if len(g) else frames[:0] for g in gaps]
            gap_clips.append(
                ClipInput(r["clip_id"], frames, idx, float(r["fps"]), "msce", between, gaps)
            )
    out: dict[str, Any] = {"split": split, "sampler": sampler, "n_clips": len(y), "labels": labels}
    for n, mode in enumerate(modes):
        scoring = "loglik" if mode == "loglik" else "generate"
        model = HFModel(
            str(Path(folder).resolve()),
            {"scoring": scoring, "batch_size": 16, "max_new_tokens": 4, "cache": False},
        )
        model.fit(
            FitContext(
                dataset="synth", fold=1, seed=seed, rebalancing="none", labels=labels,
                train_index=None, checkpoint_dir=Path("."), device=torch.device("cpu"),
                train_options={}, load_frames=None, load_features=None, cache_dir=None,
            )
        )  # fmt: skip
        todo = gap_clips if mode == "msce" else clips
        t0 = time.perf_counter()
        preds, invalid, contexts, scores = [], 0, [], []
        for s in range(0, len(todo), 16):
            for o in model.predict(todo[s : s + 16]):
                if o.scores is not None:
                    preds.append(int(np.argmax(o.scores)))
                    scores.append(np.asarray(o.scores, np.float64))
                else:
                    lb = parse_answer(o.text, labels)
                    invalid += lb not in labels
                    preds.append(labels.index(lb) if lb in labels else -1)
                if o.context and len(contexts) < 3:
                    contexts.append(o.context)
            if progress is not None:
                progress(min(s + 16, len(todo)), len(todo), {"phase": f"eval-{n}"})
        seconds = time.perf_counter() - t0
        pred = np.array(preds)
        recall = {lb: float(np.mean(pred[y == c] == c)) for c, lb in enumerate(labels)}
        out[mode] = {
            "uar": float(np.mean(list(recall.values()))),
            "war": float(np.mean(pred == y)),
            "recall": recall,
            "pred_share": {lb: float(np.mean(pred == c)) for c, lb in enumerate(labels)},
            "invalid_share": invalid / len(y),
            "clips_per_s": len(y) / seconds,
            "seconds": seconds,
        }
        if contexts:
            out[mode]["example_contexts"] = contexts
        if scores:  # is there class information under the prior? (estimated-prior correction)
            p2 = estimated_prior(np.stack(scores), None).argmax(1)
            rec2 = {lb: float(np.mean(p2[y == c] == c)) for c, lb in enumerate(labels)}
            out[mode]["estimated_prior"] = {
                "uar": float(np.mean(list(rec2.values()))),
                "war": float(np.mean(p2 == y)),
                "recall": rec2,
            }
    return out


__all__ = ["evaluate_zero_shot"]
