"""Fine-tuning throughput: training and inference clips/s of the ``hfvideo:`` family.

Sections (``--sections``, all by default; a section that cannot run here says why):

* ``hfvideo-cpu``: the tests' tiny random VideoMAE (32 px, 4 frames, width 32, 2 layers)
  fine-tuned on the CPU through :func:`emobench.training.video.finetune` (TSN
  sampling, AdamW + cosine, instance-balanced), then its frozen-feature and logit
  inference: the per-clip overhead of the training loop, not of the network.
* ``hfvideo-cpu-small``: VideoMAE-Small widths (ViT-S/16, 12 layers) at 112 px and 8
  frames on the CPU, one epoch: whether CPU fine-tuning of a real-sized model is practical.
* ``hfvideo-cuda``: VideoMAE-Base-sized random weights (ViT-B, 16 frames, 224 px, tubelet
  2: 1568 tokens) fine-tuned under bf16 autocast on the GPU: training clips/s, inference
  clips/s and peak memory (``torch.cuda.max_memory_allocated``). Needs CUDA.

Clips are random uint8 arrays made here in memory (twice the model's frame count each), so
decoding is not measured (see ``bench_frames.py``). New sections (e.g. LoRA fine-tuning of
a VLM) are one function added to :data:`SECTIONS`. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/bench_finetune.py [--sections hfvideo-cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: VideoMAE-Base (MCG-NJU/videomae-base) sizes
VIDEOMAE_BASE = {
    "image_size": 224,
    "patch_size": 16,
    "num_frames": 16,
    "tubelet_size": 2,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
#: VideoMAE-Small widths (ViT-S) at 112 px and 8 frames: what a CPU can still fine-tune
VIDEOMAE_SMALL_112 = {
    **VIDEOMAE_BASE,
    "image_size": 112,
    "num_frames": 8,
    "hidden_size": 384,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
}
#: the tests' tiny VideoMAE (tests/hfvideo_tiny.py)
VIDEOMAE_TINY = {
    "image_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "tubelet_size": 2,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
N_CLASSES = 7


def _net(config: dict[str, Any], seed: int = 0) -> Any:
    """A random VideoMAE classifier wrapped as emobench feeds it (uint8 frames in)."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from emobench.models.hfvideo.loading import Normalisation, make_video_classifier
    from emobench.models.hfvideo.options import architecture

    torch.manual_seed(seed)
    hf = VideoMAEForVideoClassification(VideoMAEConfig(**config, num_labels=N_CLASSES))
    norm = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255, "imagenet")
    return make_video_classifier()(hf, architecture("videomae"), norm)


def _store(n: int, frames: int, side: int, seed: int = 0) -> tuple[Any, np.ndarray]:
    """An in-memory ClipStore of ``n`` random clips and their (round-robin) labels."""
    import polars as pl

    from emobench.training.video import ClipStore

    rng = np.random.default_rng(seed)
    clips = [rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8) for _ in range(n)]
    rows = pl.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "n_frames": [frames] * n})

    def load(sel: pl.DataFrame) -> tuple[list[np.ndarray], list[int]]:
        return [clips[int(c[1:])] for c in sel["clip_id"]], list(range(sel.height))

    return ClipStore(rows, load, preload=True), np.arange(n) % N_CLASSES


def _finetune_rate(
    net: Any, config: dict[str, Any], n: int, epochs: int, batch: int, device: str
) -> dict[str, Any]:
    """Training clips/s of ``finetune`` (after a one-epoch warm-up on a few clips) and
    inference clips/s of frozen features and of logits."""
    import torch

    from emobench.training.loop import TrainConfig
    from emobench.training.video import (
        FinetuneSettings,
        centre_clips,
        finetune,
        run_batches,
    )

    t, side = config["num_frames"], config["image_size"]
    store, labels = _store(n, 2 * t, side)
    cfg = TrainConfig(val_fraction=0.0, patience=100, batch_size=batch, device=device)
    s = FinetuneSettings(num_frames=t, batch_size=batch, lr=1e-4, epochs=epochs)
    warm_store, warm_labels = _store(2 * batch, 2 * t, side, seed=1)
    finetune(net, warm_store, warm_labels, N_CLASSES, "instance-balanced", cfg,
             FinetuneSettings(num_frames=t, batch_size=batch, epochs=1))  # fmt: skip
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    history = finetune(net, store, labels, N_CLASSES, "instance-balanced", cfg, s)
    if cuda:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    peak_train = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    clips = centre_clips([store.frames[i] for i in range(n)], t)
    dev = torch.device(device)
    net.to(dev)
    run_batches(net, clips[:batch], batch, dev, True)  # warm-up
    rates = {}
    for what, feats in (("logits", False), ("features", True)):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        run_batches(net, clips, 2 * batch, dev, True, features=feats)
        if cuda:
            torch.cuda.synchronize()
        rates[what] = n / (time.perf_counter() - start)
    net.cpu()
    return {
        "train_clips_per_s": epochs * n / train_s,
        "train_s": train_s,
        "epochs": epochs,
        "clips": n,
        "batch": batch,
        "final_loss": history["train_loss"][-1],
        "infer_clips_per_s": rates["logits"],
        "feature_clips_per_s": rates["features"],
        "peak_train_gib": peak_train,
    }


def section_hfvideo_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tiny VideoMAE on the CPU."""
    net = _net(VIDEOMAE_TINY)
    row = _finetune_rate(net, VIDEOMAE_TINY, args.cpu_clips, args.epochs, 8, "cpu")
    return [{"section": "hfvideo-cpu", "model": "videomae-tiny 4f 32px", "device": "cpu",
             "dtype": "fp32", **row}]  # fmt: skip


def section_hfvideo_cpu_small(args: argparse.Namespace) -> list[dict[str, Any]]:
    """VideoMAE-Small widths at 112 px, 8 frames, on the CPU (one epoch)."""
    net = _net(VIDEOMAE_SMALL_112)
    row = _finetune_rate(net, VIDEOMAE_SMALL_112, args.small_clips, 1, 4, "cpu")
    return [{"section": "hfvideo-cpu-small", "model": "videomae-small 8f 112px",
             "device": "cpu", "dtype": "fp32", **row}]  # fmt: skip


def section_hfvideo_cuda(args: argparse.Namespace) -> list[dict[str, Any]]:
    """VideoMAE-Base sizes, bf16 autocast, on the GPU."""
    import torch

    if not torch.cuda.is_available():
        return [{"section": "hfvideo-cuda", "skipped": "no CUDA device"}]
    rows = []
    for batch in args.cuda_batches:
        net = _net(VIDEOMAE_BASE)
        row = _finetune_rate(net, VIDEOMAE_BASE, args.cuda_clips, 1, batch, "cuda")
        name = torch.cuda.get_device_name(0)
        rows.append({"section": "hfvideo-cuda", "model": "videomae-base 16f 224px",
                     "device": name, "dtype": "bf16 autocast", **row})  # fmt: skip
        del net
        torch.cuda.empty_cache()
    return rows


def section_lora_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """LoRA fine-tuning of the tiny random Qwen2.5-VL (``hf:`` with ``finetune = "lora"``,
    8 frames of 32 px, r = 8) on the CPU, through :mod:`bench_lora`'s measured run."""
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for path in (here, here.parent / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from bench_lora import _run
    from hf_tiny import build_qwen25_vl

    tmp = Path(tempfile.mkdtemp(prefix="bench-finetune-lora-"))
    try:
        tiny = build_qwen25_vl(tmp / "tiny")
        r = _run(tiny, "cpu", args.lora_clips, 8, 32, args.epochs,
                 {"lora_r": 8, "finetune_batch_size": 4})  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"section": "lora-cpu", "model": "qwen2.5-vl-tiny LoRA r8 8f 32px", "device": "cpu",
             "dtype": "fp32", "batch": 4, "clips": r["clips"],
             "train_clips_per_s": r["train_clips_per_s"],
             "infer_clips_per_s": r["loglik_clips_per_s_with_adapters"],
             "final_loss": r["loss_first_last"][-1]}]  # fmt: skip


#: Sections by name, in run order: ``(args) -> table rows``.
SECTIONS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {
    "hfvideo-cpu": section_hfvideo_cpu,
    "hfvideo-cpu-small": section_hfvideo_cpu_small,
    "hfvideo-cuda": section_hfvideo_cuda,
    "lora-cpu": section_lora_cpu,
}

COLUMNS = [
    ("section", "{}"),
    ("model", "{}"),
    ("device", "{}"),
    ("batch", "{}"),
    ("train_clips_per_s", "{:.2f}"),
    ("infer_clips_per_s", "{:.2f}"),
    ("feature_clips_per_s", "{:.2f}"),
    ("peak_train_gib", "{:.2f}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return fmt.format(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [[name for name, _ in COLUMNS]]
    for r in rows:
        if "skipped" in r:
            cells.append([r["section"], f"skipped: {r['skipped']}"] + [""] * (len(COLUMNS) - 2))
            continue
        cells.append([_cell(r.get(name), fmt) for name, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--epochs", type=int, default=3, help="CPU training epochs")
    parser.add_argument("--cpu-clips", type=int, default=64)
    parser.add_argument("--small-clips", type=int, default=16)
    parser.add_argument("--cuda-clips", type=int, default=64)
    parser.add_argument("--lora-clips", type=int, default=24, help="clips of the LoRA section")
    parser.add_argument("--cuda-batches", type=int, nargs="+", default=[8])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    rows: list[dict[str, Any]] = []
    for name in args.sections:
        rows += SECTIONS[name](args)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
