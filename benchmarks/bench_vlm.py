"""Throughput of the ``hf:`` adapter on a tiny random Qwen2.5-VL (built in code).

Through the adapter (what the engine runs per batch: chat template, processor, model,
decoding), with the answer cache off, on ``--clips`` random clips of ``--frames`` frames
(32 px, sent as a video):

* clips/s at batch 1 vs batched (``--batch-size``), for ``generate`` and ``loglik``;
* ``loglik`` over the 7 labels vs one greedy 3-token ``generate`` (``min_new_tokens`` = 3
  so the random model cannot stop early); target: loglik ≤ 1.5 × generate time.

Timings are the median of ``--repeats`` runs after one warm-up, the settings interleaved
within each repeat, with torch's default thread count.

    .venv/bin/python benchmarks/bench_vlm.py [--clips 16] [--frames 8] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch
    from hf_tiny import build_qwen25_vl

    from emobench.models.base import ClipInput, FitContext
    from emobench.models.hf.adapter import HFModel

    tmp = Path(tempfile.mkdtemp(prefix="bench-vlm-"))
    folder = build_qwen25_vl(tmp / "qwen")
    rng = np.random.default_rng(0)
    clips = [
        ClipInput(
            clip_id=f"c{i}",
            frames=rng.integers(0, 256, (args.frames, 32, 32, 3), dtype=np.uint8),
            indices=np.arange(args.frames) * 3,
            fps=25.0,
        )
        for i in range(args.clips)
    ]
    ctx = FitContext(
        dataset="bench",
        fold=1,
        seed=0,
        rebalancing="none",
        labels=LABELS,
        train_index=None,
        checkpoint_dir=tmp / "ckpt",
        device=torch.device(args.device),
        train_options={},
        load_frames=None,
        load_features=None,
        cache_dir=tmp / "cache",
    )
    models = {}
    for scoring in ("generate", "loglik"):
        m = HFModel(str(folder), {"scoring": scoring, "max_new_tokens": 3, "cache": False})
        m.fit(ctx)
        m._load()
        m._model.generation_config.min_new_tokens = 3
        models[scoring] = m

    def run(scoring: str, batch: int) -> float:
        m = models[scoring]
        m._inner_batch = batch
        t = time.perf_counter()
        for start in range(0, len(clips), batch):
            m.predict(clips[start : start + batch])
        return time.perf_counter() - t

    settings = [(s, b) for s in ("generate", "loglik") for b in (1, args.batch_size)]
    for s, b in settings:  # warm-up
        run(s, b)
    times: dict[tuple[str, int], list[float]] = {k: [] for k in settings}
    for _ in range(args.repeats):
        for k in settings:
            times[k].append(run(*k))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, device {args.device}",
        "clips": args.clips,
        "frames": args.frames,
        "clips_per_s": {f"{s}@batch{b}": round(args.clips / med[(s, b)], 1) for s, b in settings},
        "loglik_over_generate": {
            f"batch{b}": round(med[("loglik", b)] / med[("generate", b)], 2)
            for b in (1, args.batch_size)
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
