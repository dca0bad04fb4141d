"""Throughput of the ``hf:`` adapter on a tiny random Qwen2.5-VL (built in code).

Through the adapter (what the engine runs per batch: chat template, processor, model,
decoding), with the answer cache off, on ``--clips`` random clips of ``--frames`` frames
(32 px, sent as a video):

* clips/s at batch 1 vs batched (``--batch-size``), for ``generate`` and ``loglik``;
* ``loglik`` over the 7 labels vs one greedy 3-token ``generate`` (``min_new_tokens`` = 3
  so the random model cannot stop early); target: loglik ≤ 1.5 × generate time.

Timings are the median of ``--repeats`` runs after one warm-up, the settings interleaved
within each repeat, with torch's default thread count.

``pipeline``: the naive path (``pipeline = false``: the engine hands ``batch_size`` clips per
call, each batch encoded then run) against the throughput path (length bucketing over
``batch_size × bucket_batches`` clips, the processor one batch ahead in a thread,
:mod:`emobench.models.hf.pipeline`) on ``--mixed-clips`` clips of mixed frame counts (from
half to twice ``--frames``, 224 px): clips/s, the padding fraction each path ran with, and
the time the model waited for the processor.

``fps_mixed`` (issue 21): clips as an ``fps:`` sampler gives them (``--fps-clips`` clips of
1–3 s at 25 fps sampled at 5 fps: 5 to 15 frames each, 112 px) scored at ``batch_size = 1``
and batched (``--batch-size``), the batched path once as the Qwen family runs (frame counts
mixed in one call) and once bucketed by frame count (as the video processors that stack a
call's videos run, :mod:`emobench.models.hf.batching`); ``--only-fps-mixed`` runs this
section alone.

``sized`` (when CUDA is available, or ``--sized test`` for a small CPU check of the same
code): a random bf16 model of Qwen2.5-VL-7B's architecture (``--sized 7b``; built in memory,
no weights read), 224 px frames, 16 and 32 frames per clip, 3 new tokens: naive at batch 1,
naive and optimised at ``--sized-batch``, with ``torch.cuda.max_memory_allocated``.

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
    ap.add_argument("--mixed-clips", type=int, default=32)
    ap.add_argument("--sized", choices=["auto", "7b", "test", "none"], default="auto")
    ap.add_argument("--sized-batch", type=int, default=32)
    ap.add_argument("--sized-clips", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    ap.add_argument("--fps-clips", type=int, default=48)
    ap.add_argument("--only-fps-mixed", action="store_true")
    args = ap.parse_args()

    import torch
    from hf_tiny import build_qwen25_vl

    if args.threads:
        torch.set_num_threads(args.threads)

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
    if args.only_fps_mixed:
        print(
            json.dumps(
                {"machine": _machine(args), "fps_mixed": bench_fps_mixed(folder, ctx, args)},
                indent=2,
            )
        )
        return
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
    result["pipeline"] = bench_pipeline(folder, ctx, args)
    result["fps_mixed"] = bench_fps_mixed(folder, ctx, args)
    sized = args.sized
    if sized == "auto":
        sized = "7b" if torch.cuda.is_available() else "none"
    if sized != "none":
        result["sized"] = bench_sized(folder, tmp, args, sized)
    print(json.dumps(result, indent=2))


def _time_engine_like(m, clips) -> float:
    """Seconds to score ``clips`` as the engine does: ``m.batch_size`` clips per call."""
    import time as _t

    t = _t.perf_counter()
    for start in range(0, len(clips), m.batch_size):
        out = m.predict(clips[start : start + m.batch_size])
        assert len(out) == len(clips[start : start + m.batch_size])
    return _t.perf_counter() - t


def _mixed_clips(n: int, frames: int, side: int, seed: int = 1) -> list:
    from emobench.models.base import ClipInput

    rng = np.random.default_rng(seed)
    counts = rng.integers(max(frames // 4, 2), frames + 1, n)
    counts += counts % 2  # even counts: whole temporal patches
    return [
        ClipInput(
            clip_id=f"m{i}",
            frames=rng.integers(0, 256, (int(f), side, side, 3), dtype=np.uint8),
            indices=np.arange(int(f)) * 3,
            fps=25.0,
        )
        for i, f in enumerate(counts)
    ]


def _machine(args) -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )


def bench_fps_mixed(folder: Path, ctx, args) -> dict:
    """``fps:5`` clips of 1–3 s (5–15 frames, 112 px): batch 1 vs batched, frame counts
    mixed in a call vs bucketed by frame count (module docstring)."""
    from emobench.models.base import ClipInput
    from emobench.models.hf import batching
    from emobench.models.hf.adapter import HFModel

    rng = np.random.default_rng(5)
    clips = []
    for i in range(args.fps_clips):
        n_src = int(rng.integers(25, 76))  # 1–3 s at 25 fps
        idx = np.unique(np.round(np.arange(0, n_src, 25 / 5)).astype(int))
        clips.append(
            ClipInput(
                clip_id=f"f{i}",
                frames=rng.integers(0, 256, (len(idx), 112, 112, 3), dtype=np.uint8),
                indices=idx,
                fps=25.0,
            )
        )
    counts = [len(c.frames) for c in clips]
    out: dict = {"clips": len(clips), "frames": [min(counts), max(counts)], "side": 112}
    real_keys = batching.request_keys

    def bucketed_keys(m, reqs):
        return [batching.batch_key(r, mixed_frames=False, fps_kwarg=False) for r in reqs]

    for scoring in ("generate", "loglik"):
        models = {}
        for name, b in (("batch1", 1), (f"batch{args.batch_size}", args.batch_size)):
            m = HFModel(
                str(folder),
                {"scoring": scoring, "max_new_tokens": 3, "cache": False, "batch_size": b},
            )
            m.fit(ctx)
            m._load()
            m._model.generation_config.min_new_tokens = 3
            models[name] = m
        settings = [("batch1", False), (f"batch{args.batch_size}", False)]
        settings.append((f"batch{args.batch_size}", True))
        times: dict[str, list[float]] = {}
        for rep in range(args.repeats + 1):  # the first round warms up
            for name, bucket in settings:
                batching.request_keys = bucketed_keys if bucket else real_keys
                try:
                    t = _time_engine_like(models[name], clips)
                finally:
                    batching.request_keys = real_keys
                if rep:
                    times.setdefault(name + (":bucketed" if bucket else ""), []).append(t)
        cps = {k: round(len(clips) / statistics.median(v), 1) for k, v in times.items()}
        out[scoring] = {
            "clips_per_s": cps,
            "batched_over_batch1": round(cps[f"batch{args.batch_size}"] / cps["batch1"], 2),
            "bucketed_over_batch1": round(
                cps[f"batch{args.batch_size}:bucketed"] / cps["batch1"], 2
            ),
        }
    return out


def bench_pipeline(folder: Path, ctx, args) -> dict:
    """Naive vs optimised on the tiny model, clips of mixed frame counts."""
    from emobench.models.hf.adapter import HFModel

    side = 224  # 64 visual tokens per 2 frames, as Qwen2.5-VL sees 224 px frames
    clips = _mixed_clips(args.mixed_clips, args.frames * 2, side)
    out: dict = {"clips": len(clips), "frames": sorted({len(c.frames) for c in clips})}
    for scoring in ("generate", "loglik"):
        models = {}
        for name, pipe in (("naive", False), ("optimised", True)):
            m = HFModel(
                str(folder),
                {
                    "scoring": scoring,
                    "max_new_tokens": 3,
                    "cache": False,
                    "batch_size": args.batch_size,
                    "pipeline": pipe,
                    "size": {"shortest_edge": side * side, "longest_edge": side * side},
                },
            )
            m.fit(ctx)
            m._load()
            m._model.generation_config.min_new_tokens = 3
            models[name] = m
        times: dict[str, list[float]] = {k: [] for k in models}
        for m in models.values():  # warm-up
            _time_engine_like(m, clips)
        for _ in range(args.repeats):
            for k, m in models.items():
                m.reset_stats()
                times[k].append(_time_engine_like(m, clips))
        for k, m in models.items():
            d = m.describe()
            out[f"{scoring}:{k}"] = {
                "clips_per_s": round(len(clips) / statistics.median(times[k]), 1),
                "padding_fraction": d["padding_fraction"],
                "processor_wait_s_per_run": d["processor_wait_s"],
            }
    return out


#: Qwen2.5-VL-7B-Instruct's architecture (config.json of the hub release); "test": a small
#: stand-in to check this code on a CPU.
SIZES = {
    "7b": {
        "text": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [16, 24, 24],
            },
            "max_position_embeddings": 128000,
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
    },
    "test": {
        "text": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
        "vision": {"depth": 2, "hidden_size": 32, "out_hidden_size": 64, "window_size": 112},
    },
}


def bench_sized(folder: Path, tmp: Path, args, size: str) -> dict:
    """clips/s and peak memory of a random bf16 model of a real size: naive at batch 1,
    naive and optimised at ``--sized-batch``, 16 and 32 frames of 224 px (3 new tokens)."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from emobench.models.base import FitContext
    from emobench.models.hf.adapter import HFModel

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    cfg = Qwen2_5_VLConfig.from_pretrained(folder)
    for k, v in SIZES[size]["text"].items():
        setattr(cfg.text_config, k, v)
    for k, v in SIZES[size]["vision"].items():
        setattr(cfg.vision_config, k, v)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16 if cuda else torch.float32
        ).eval()
    tiny_gen = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder).generation_config
    model.generation_config = tiny_gen
    model.generation_config.min_new_tokens = 3
    processor = AutoProcessor.from_pretrained(folder)
    processor.tokenizer.padding_side = "left"
    ctx = FitContext(
        dataset="bench",
        fold=1,
        seed=0,
        rebalancing="none",
        labels=LABELS,
        train_index=None,
        checkpoint_dir=tmp / "ckpt-sized",
        device=device,
        train_options={},
        load_frames=None,
        load_features=None,
        cache_dir=tmp / "cache-sized",
    )
    pixels = 224 * 224
    n_clips = args.sized_clips if cuda else 4
    batch = args.sized_batch if cuda else 2
    result: dict = {
        "size": size,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": str(next(model.parameters()).dtype),
        "attn_implementation": model.config._attn_implementation,
        "params_billion": round(sum(p.numel() for p in model.parameters()) / 1e9, 2),
    }
    rng = np.random.default_rng(2)
    for frames in (16, 32):
        from emobench.models.base import ClipInput

        clips = [
            ClipInput(
                clip_id=f"s{i}",
                frames=rng.integers(0, 256, (frames, 224, 224, 3), dtype=np.uint8),
                indices=np.arange(frames) * 3,
                fps=25.0,
            )
            for i in range(n_clips)
        ]
        for name, pipe, b in (
            ("naive@batch1", False, 1),
            (f"naive@batch{batch}", False, batch),
            (f"optimised@batch{batch}", True, batch),
        ):
            m = HFModel(
                str(folder),
                {
                    "max_new_tokens": 3,
                    "cache": False,
                    "batch_size": b,
                    "pipeline": pipe,
                    "size": {"shortest_edge": pixels, "longest_edge": pixels},
                },
            )
            m.fit(ctx)
            m._model, m._processor = model, processor
            m._device = device
            _time_engine_like(m, clips[: max(b, 2)])  # warm-up
            m.reset_stats()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            seconds = _time_engine_like(m, clips)
            d = m.describe()
            result[f"{frames}f:{name}"] = {
                "clips_per_s": round(n_clips / seconds, 2),
                "visual_tokens": d["visual_tokens"],
                "padding_fraction": d["padding_fraction"],
                "processor_wait_s": d["processor_wait_s"],
                "max_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
                if cuda
                else None,
            }
    return result


if __name__ == "__main__":
    main()
