"""LoRA fine-tuning throughput of the ``hf:`` family (``finetune = "lora"``).

Through :meth:`HFModel.fit` — what the engine runs: per-batch frame loading, TSN sampling,
the evaluation prompt, one prefill + every label's continuation with gradients, the
recipe's loss, AdamW — on random clips made here in memory (so decoding is not measured,
see ``bench_frames.py``), with no validation split (``val_fraction = 0``), so the time is
training only. Reported: training clips/s (clips seen per second over all epochs), then
loglik scoring clips/s with the adapters, and on CUDA the peak memory.

* ``cpu``: the tests' tiny random Qwen2.5-VL (:func:`hf_tiny.build_qwen25_vl`: width 32,
  2 layers, 1 vision block), 8 frames of 32 px as a video, fp32;
* ``cuda``: a larger random Qwen2.5-VL (width 1024, 8 layers, 16 heads; vision tower 8
  blocks of width 640), 8 frames at 224 px (256 visual tokens), bf16 weights and autocast,
  LoRA r = 16 on every attention/MLP projection of the language model. Needs CUDA.

Prints JSON; asserts nothing.

    .venv/bin/python benchmarks/bench_lora.py [--sections cpu,cuda] [--clips 24] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def _bigger(tiny: Path, folder: Path) -> Path:
    """A larger random Qwen2.5-VL with the tiny one's tokenizer and processor."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    cfg = Qwen2_5_VLConfig.from_pretrained(tiny)
    t = cfg.text_config
    t.hidden_size, t.intermediate_size = 1024, 2816
    t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads = 8, 16, 2
    t.rope_parameters = {**t.rope_parameters, "mrope_section": [8, 12, 12]}  # head_dim 64
    t.layer_types = ["full_attention"] * t.num_hidden_layers
    if getattr(t, "head_dim", None) is not None:
        t.head_dim = 64
    v = cfg.vision_config
    v.depth, v.hidden_size, v.intermediate_size, v.num_heads = 8, 640, 1280, 10
    v.out_hidden_size = 1024
    v.fullatt_block_indexes = [3, 7]
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    for p in tiny.iterdir():  # tokenizer, processor, chat template
        if p.is_file() and not p.name.startswith(("model", "config")):
            shutil.copy(p, folder / p.name)
    shutil.copy(tiny / "generation_config.json", folder / "generation_config.json")
    return folder


def _run(
    folder: Path, device: str, n_clips: int, frames: int, side: int, epochs: int, opts: dict
) -> dict[str, Any]:
    import polars as pl
    import torch

    from emobench.models.base import ClipInput, FitContext
    from emobench.models.hf import finetune as ft
    from emobench.models.hf.adapter import HFModel

    rng = np.random.default_rng(0)
    ids = [f"c{i:03d}" for i in range(n_clips)]
    labels = [LABELS[i % len(LABELS)] for i in range(n_clips)]
    arrays = {c: rng.integers(0, 256, (2 * frames, side, side, 3), dtype=np.uint8) for c in ids}
    index = pl.DataFrame(
        {
            "clip_id": ids,
            "label": labels,
            "split": "train",
            "fold": 1,
            "n_frames": 2 * frames,
            "fps": 25.0,
            "onset": None,
            "apex": None,
            "offset": None,
        },
        schema_overrides={"onset": pl.Int64, "apex": pl.Int64, "offset": pl.Int64},
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    ctx = FitContext(
        dataset="bench",
        fold=1,
        seed=0,
        rebalancing="instance-balanced",
        labels=LABELS,
        train_index=index,
        checkpoint_dir=tmp / "ckpt",
        device=torch.device(device),
        train_options={"val_fraction": 0.0, "epochs": epochs},
        load_frames=lambda m, rows: (
            [arrays[c] for c in rows["clip_id"]],
            list(range(rows.height)),
        ),
        load_features=None,
        cache_dir=tmp / "cache",
    )
    m = HFModel(str(folder), {"finetune": "lora", "scoring": "loglik", "cache": False, **opts})
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    steps = ft.TRAIN_STEPS["optimizer"]
    t = time.perf_counter()
    m.fit(ctx)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t
    peak_train = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    clips = [ClipInput(c, arrays[c][::2][:frames], np.arange(frames) * 2, 25.0) for c in ids]
    m.predict(clips[: m.batch_size])  # warm-up
    t = time.perf_counter()
    for s in range(0, len(clips), m.batch_size):
        m.predict(clips[s : s + m.batch_size])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    score_s = time.perf_counter() - t
    out = {
        "clips": n_clips,
        "frames": frames,
        "side": side,
        "epochs": epochs,
        "optimizer_steps": ft.TRAIN_STEPS["optimizer"] - steps,
        "train_seconds": round(train_s, 2),
        "train_clips_per_s": round(n_clips * epochs / train_s, 2),
        "loglik_clips_per_s_with_adapters": round(n_clips / score_s, 2),
        "trainable_parameters": None,
        "loss_first_last": m._adapter.summary["train_loss_first_last"],
    }
    meta = json.loads((m._adapter.folder / ft.SIDECAR).read_text())
    out["trainable_parameters"] = meta["history"]["trainable_parameters"]
    if peak_train is not None:
        out["peak_memory_gib"] = round(
            max(peak_train, torch.cuda.max_memory_allocated() / 2**30), 2
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="cpu,cuda")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()

    import torch
    from hf_tiny import build_qwen25_vl

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-lora-models-"))
    tiny = build_qwen25_vl(tmp / "tiny")
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    }
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if "cpu" in sections:
        result["cpu"] = _run(
            tiny, "cpu", args.clips, 8, 32, args.epochs, {"lora_r": 8, "finetune_batch_size": 4}
        )
    if "cuda" in sections:
        if not torch.cuda.is_available():
            result["cuda"] = "skipped: no CUDA device here"
        else:
            big = _bigger(tiny, tmp / "big")
            result["gpu"] = torch.cuda.get_device_name(0)
            result["cuda"] = _run(
                big,
                "cuda",
                args.clips,
                8,
                224,
                args.epochs,
                {
                    "lora_r": 16,
                    "finetune_batch_size": 4,
                    "min_pixels": 224 * 224,
                    "max_pixels": 224 * 224,
                    "dtype": "bfloat16",
                },
            )
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
