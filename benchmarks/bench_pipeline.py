"""The decode → encode pipeline side by side: is the encoder (GPU) kept busy?

One run measures, on the same machine and moment:

* **raw encode**: the network alone on random frames already on the device as normalised
  float input (bf16 autocast on CUDA), the ceiling;
* **adapter encode**: the adapter's ``encode`` on uint8 frames in host memory (transfer,
  conversion, resize, normalisation, copy back), as a ratio of raw (target on CUDA: ≥ 0.9
  for ``ViT-B-32`` at 224 px);
* **decode**: clips/s and frames/s of decoding the synth test clips serially (in-process,
  ``workers=0``) and through the prefetcher (:mod:`emobench.runner.prefetch`) with 1, 2, …
  worker threads (and worker processes with ``--processes``);
* **features phase**: an engine run of ``openclip:<model>`` zero-shot on those clips (cold
  caches, ``--sampler`` frames per clip), frames decoded and encoded per second of its
  features phase, for each workers setting (default, 0 = in-process, 1, 2, …), as a ratio
  of its bound measured in the same round: min(decoding the same frames with the default
  workers, raw encoding as many frames) (target on CUDA: ≥ 0.8).

CUDA is used when present (``--device auto``; bf16 autocast; defaults then ViT-B-32, 224 px
synth frames, 4096 frames per encode measurement), the CPU otherwise (emobench-tiny, 64
px); timings are medians of ``--repeats`` after one warm-up, the variants interleaved
within each repeat.

    .venv/bin/python benchmarks/bench_pipeline.py [--vit] [--model NAME] [--clips 24]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "disgust", "fear"]


def _medians(fns: list[Any], repeats: int) -> list[float]:
    """Median seconds of each function, timed in turn within every repeat (after a warm-up)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_encode(name: str, n: int, bs: int, device: Any, repeats: int) -> dict[str, Any]:
    """Raw ``encode_image`` on device-resident float input vs the adapter's uint8 encode."""
    import torch

    from emobench.models.device import autocast
    from emobench.models.openclip.adapter import OpenClipModel

    model = OpenClipModel(name, {"batch_size": bs})
    model.load(device)
    side = model.image_size
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, model.frame_size, model.frame_size, 3), dtype=np.uint8)
    # the layout the adapter hands the network (uint8 NHWC permuted: channels-last strides)
    raw_in = torch.randn(n, side, side, 3, device=device).permute(0, 3, 1, 2)
    net = model._model

    def raw() -> None:
        with torch.inference_mode(), autocast(device):
            for s in range(0, n, bs):
                net.encode_image(raw_in[s : s + bs], normalize=True)
        _sync(device)

    def adapter() -> None:
        model.encode(frames)

    t_raw, t_ad = _medians([raw, adapter], repeats)
    return {
        "model": f"openclip:{name}",
        "frame_size": model.frame_size,
        "image_size": side,
        "frames": n,
        "raw_fps": n / t_raw,
        "adapter_fps": n / t_ad,
        "ratio": t_raw / t_ad,
    }


def bench_decode(rows: list[dict[str, Any]], size: int, workers: list[tuple[str, int]],
                 repeats: int) -> list[dict[str, Any]]:  # fmt: skip
    """Decode every clip of ``rows`` (all frames) serially and through the prefetcher."""
    from emobench.video.frames import read_clip

    n_frames = sum(int(r["n_frames"]) for r in rows)

    def serial() -> None:
        for r in rows:
            read_clip(r, np.arange(r["n_frames"]), size=size, backend="pyav")

    fns, names = [serial], ["serial"]
    try:
        from emobench.runner.prefetch import DecodeJob, Prefetcher
    except ImportError:  # before the prefetcher existed
        workers = []
    for kind, w in workers:

        def run(kind: str = kind, w: int = w) -> None:
            jobs = [DecodeJob(r, np.arange(r["n_frames"]), size, "pyav") for r in rows]
            for _ in Prefetcher(workers=w, kind=kind).run(jobs):
                pass

        fns.append(run)
        names.append(f"{kind} x{w}")
    times = _medians(fns, repeats)
    return [
        {"decode": nm, "clips_per_s": len(rows) / t, "frames_per_s": n_frames / t}
        for nm, t in zip(names, times, strict=True)
    ]


def bench_features(
    root: Path, rows: list[dict[str, Any]], name: str, device: Any, sampler: str,
    workers: list[int | None], bs: int, repeats: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The features phase of a zero-shot engine run (cold caches) per workers setting, and
    in the same rounds its bound: min(decoding the same frames with the default workers,
    raw encoding as many frames), so that a loaded machine moves both alike."""
    import torch

    from emobench.config import validate_config
    from emobench.models.device import autocast
    from emobench.models.openclip.adapter import OpenClipModel
    from emobench.runner.execute import Engine
    from emobench.runner.scorers import clip_seed, window
    from emobench.video.sampling import union_indices

    def run(w: int | None) -> tuple[float, int]:
        cfg = validate_config(
            {
                "name": "bench",
                "datasets": [{"name": "synth", "root": str(root)}],
                "models": [{"adapter": f"openclip:{name}", "name": "zs"}],
                "sweep": {"sampler": [sampler], "order": ["original"]},
                "device": str(device),
                "video": {"backend": "pyav"},
                "metrics": {"n_resamples": 10},
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(cfg, Path(tmp) / "run", progress=False)
            if w is not None:
                engine.media.workers = w
            engine.load_datasets()
            summary = engine.execute()
            return engine.timings["features"], summary.cache["miss_frames"]

    model = OpenClipModel(name, {"batch_size": bs})
    model.load(device)

    def frames_of(r: dict[str, Any]) -> np.ndarray:
        seed = clip_seed(0, r["clip_id"])
        return union_indices(r["n_frames"], r["fps"], [sampler], seed, window(r))

    wanted = [(r, frames_of(r)) for r in rows]
    n = sum(len(i) for _, i in wanted)
    raw_in = torch.randn(n, model.image_size, model.image_size, 3, device=device)
    raw_in = raw_in.permute(0, 3, 1, 2)

    def raw() -> float:
        t = time.perf_counter()
        with torch.inference_mode(), autocast(device):
            for s in range(0, n, bs):
                model._model.encode_image(raw_in[s : s + bs], normalize=True)
        _sync(device)
        return time.perf_counter() - t

    def decode() -> float:
        t = time.perf_counter()
        try:
            from emobench.runner.prefetch import DecodeJob, Prefetcher, default_workers
        except ImportError:  # before the prefetcher: serial
            from emobench.video.frames import read_clip

            for r, i in wanted:
                read_clip(r, i, size=model.frame_size, backend="pyav")
            return time.perf_counter() - t
        jobs = [DecodeJob(r, i, model.frame_size, "pyav") for r, i in wanted]
        for _ in Prefetcher(default_workers(device.type == "cuda")).run(jobs):
            pass
        return time.perf_counter() - t

    probe = Engine.__init__.__globals__.get("MediaReader")
    if probe is None or "workers" not in probe.__init__.__code__.co_varnames:
        workers = [None]  # before the prefetcher: only today's engine
    secs: dict[int | None, list[float]] = {w: [] for w in workers}
    ratios: dict[int | None, list[float]] = {w: [] for w in workers}
    bounds: list[float] = []
    frames = 0
    for rep in range(repeats + 1):  # settings interleaved; the first round warms up
        bound_fps = n / max(raw(), decode())
        for w in workers:
            t, frames = run(w)
            if rep:
                secs[w].append(t)
                ratios[w].append(frames / t / bound_fps)
        if rep:
            bounds.append(bound_fps)
    out = []
    for w, ts in secs.items():
        t = statistics.median(ts)
        out.append({
            "workers": w, "features_s": t, "frames": frames, "fps": frames / t,
            "bound_fps": statistics.median(bounds),
            "ratio_of_bound": statistics.median(ratios[w]),
        })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None,
                    help="open_clip arch for encode + engine (default: emobench-tiny on a CPU, "
                    "ViT-B-32 with CUDA)")  # fmt: skip
    ap.add_argument("--vit", action="store_true", help="also ViT-B-32 (random weights, 224 px)")
    ap.add_argument("--frames", type=int, default=None,
                    help="frames per encode measurement (default 256 CPU, 4096 CUDA)")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--clips", type=int, default=24, help="synth test clips")
    ap.add_argument("--size", type=int, default=None,
                    help="synth frame size in px (default 64 CPU, 224 CUDA)")  # fmt: skip
    ap.add_argument("--sampler", default="uniform:16", help="the engine run's sampler")
    ap.add_argument("--max-workers", type=int, default=2)
    ap.add_argument("--processes", action="store_true", help="also process workers")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from emobench.data.synth.generate import SynthConfig, generate
    from emobench.models.device import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    model = args.model or ("ViT-B-32" if cuda else "emobench-tiny")
    n_frames = args.frames or (4096 if cuda else 256)
    size = args.size or (224 if cuda else 64)
    report: dict[str, Any] = {"device": str(device), "torch_threads": torch.get_num_threads()}
    names = [("ViT-B-32", n_frames if cuda else min(n_frames, 64))] if args.vit else []
    if model != "ViT-B-32" or not args.vit:
        names.append((model, n_frames))
    report["encode"] = [
        bench_encode(nm, n, args.batch_size, device, args.repeats) for nm, n in names
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        generate(
            SynthConfig(size=size, n_train=8, n_test=args.clips, n_train_subjects=2,
                        n_test_subjects=2, min_seconds=1.0, max_seconds=2.0, seed=1),
            root, progress=False, workers=min(8, os.cpu_count() or 1),
        )  # fmt: skip
        import polars as pl

        from emobench.data.registry import load_index

        index = load_index("synth", root)
        rows = list(index.filter(pl.col("split") == "test").iter_rows(named=True))
        kinds = [("thread", w) for w in range(1, args.max_workers + 1)]
        if args.processes:
            kinds += [("process", w) for w in range(1, args.max_workers + 1)]
        enc_size = report["encode"][-1]["frame_size"]
        report["decode"] = bench_decode(rows, enc_size, kinds, args.repeats)
        ws: list[int | None] = [None, 0, *range(1, args.max_workers + 1)]
        report["features"] = bench_features(
            root, rows, model, device, args.sampler, ws, args.batch_size, args.repeats
        )

    print(f"device {report['device']}, torch threads {report['torch_threads']}")
    for e in report["encode"]:
        print(f"encode {e['model']:24} raw {e['raw_fps']:9.1f} f/s  adapter "
              f"{e['adapter_fps']:9.1f} f/s  ratio {e['ratio']:.2f}")  # fmt: skip
    for d in report["decode"]:
        rate = f"{d['clips_per_s']:8.1f} clips/s {d['frames_per_s']:9.1f} f/s"
        print(f"decode {d['decode']:12} {rate}")
    for f in report["features"]:
        w = "default" if f["workers"] is None else f["workers"]
        share = f"{f['ratio_of_bound']:.2f} of min(decode, raw encode) = {f['bound_fps']:.1f} f/s"
        print(f"features workers={w!s:8} {f['features_s']:.3f} s  {f['fps']:8.1f} f/s  {share}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
