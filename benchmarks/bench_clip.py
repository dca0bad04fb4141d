"""Zero-shot scoring throughput of the openclip adapter vs raw ``encode_image``.

For each model, the same frames (synth faces rendered at the model's input size, ``clips``
clips × ``frames`` frames) go through

* **raw**: ``model.encode_image`` on frames already converted to normalised float tensors,
  in batches of ``--batch-size`` (the network alone: the ceiling; the faster of contiguous
  and channels-last layouts);
* **zero-shot**: the adapter's ``encode`` on the uint8 frames (conversion, normalisation,
  ``encode_image``, L2 normalisation, copy to numpy) then ``score`` (prompt-ensemble
  classifier and mean pooling), i.e. everything the engine runs per clip.

Both report clips/s (frames/s ÷ frames per clip); the target is zero-shot ≥ 80% of raw.
Models: ``ViT-B-32`` with random weights (224 px) and ``emobench-tiny`` (the shipped
synth-web weights: frames at 112 px, centre 64 px crop fed to its ResNet tower; raw gets
the cropped frames). Timings are the median of ``--repeats`` runs
after one warm-up, raw and zero-shot interleaved within each repeat (the ratio then
compares the same moments of a shared machine), with torch's default thread count.

    .venv/bin/python benchmarks/bench_clip.py [--clips 32] [--frames 8] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELS = ["neutral", "happiness", "sadness", "anger", "surprise", "disgust", "fear"]


def render(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` synth face frames (uint8, size × size) with random expressions."""
    from emobench.data.synth.aus import prototype_vector
    from emobench.data.synth.faces import render_frames, sample_identity

    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, 16):
        k = min(16, n - start)
        ident = sample_identity(rng)
        aus = np.stack([prototype_vector(LABELS[int(c)]) for c in rng.integers(7, size=k)])
        out.append(render_frames(ident, aus * rng.uniform(0.4, 1.0, (k, 1)), size, rng=rng))
    return np.concatenate(out)


def _interleaved_medians(fns: list[Any], repeats: int) -> list[float]:
    """Median seconds of each function, timed in turn within every repeat (after one
    warm-up each), so that a slow phase of a shared machine hits all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, options: dict[str, Any], clips: int, frames: int, bs: int, repeats: int):
    import torch

    from emobench.models.openclip.adapter import OpenClipModel
    from emobench.video.frames import centre_crop

    model = OpenClipModel(name, {"batch_size": bs, **options})
    model.load("cpu")
    model.labels = LABELS
    model._classifier = model.class_embeddings(LABELS, "synth")
    data = render(clips * frames, model.frame_size)
    net = model._model
    # raw gets exactly the network's input, prepared outside the timing: the centre crop
    # (the shipped weights' preprocessing) and the resize to the input size
    with torch.inference_mode():
        x = torch.from_numpy(centre_crop(data, model.crop))
        x = x.permute(0, 3, 1, 2).float()
        if x.shape[-1] != model.image_size:
            x = torch.nn.functional.interpolate(
                x, size=(model.image_size,) * 2, mode="bicubic", antialias=True
            )
        x = ((x - model._mean) * model._std).contiguous()
        # uint8 NHWC frames permuted to NCHW keep a channels-last layout, which CPU
        # convolutions run faster: the ceiling is the faster of the two layouts
        x_cl = x.contiguous(memory_format=torch.channels_last)

    def raw_with(t: Any) -> Any:
        def run() -> None:
            with torch.inference_mode():
                for s in range(0, len(t), bs):
                    net.encode_image(t[s : s + bs])

        return run

    def zero_shot() -> None:
        feats = model.encode(data)
        model.score([feats[i * frames : (i + 1) * frames] for i in range(clips)])

    t_nchw, t_cl, t_zs = _interleaved_medians([raw_with(x), raw_with(x_cl), zero_shot], repeats)
    t_raw = min(t_nchw, t_cl)
    feats = model.encode(data)
    seqs = [feats[i * frames : (i + 1) * frames] for i in range(clips)]
    t_score = _median_time(lambda: model.score(seqs), repeats)
    return {
        "model": f"openclip:{name}",
        "weights": model.weights_tag,
        "image_size": model.image_size,
        "frame_size": model.frame_size,
        "crop": model.crop,
        "clips": clips,
        "frames_per_clip": frames,
        "batch_size": bs,
        "threads": torch.get_num_threads(),
        "raw_clips_per_s": clips / t_raw,
        "zero_shot_clips_per_s": clips / t_zs,
        "ratio": t_raw / t_zs,
        "score_only_ms": 1000 * t_score,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-vit", action="store_true", help="only the tiny model (fast)")
    args = ap.parse_args()
    from emobench.models.openclip.adapter import SHIPPED, WEIGHTS_DIR

    tiny = "emobench-tiny"
    if (WEIGHTS_DIR / SHIPPED[(tiny, "synth-web")]).is_file():
        tiny += "@synth-web"
    rows = (
        []
        if args.skip_vit
        else [bench("ViT-B-32", {}, args.clips, args.frames, args.batch_size, args.repeats)]
    )
    rows.append(bench(tiny, {}, args.clips, args.frames, args.batch_size, args.repeats))
    print(
        f"{'model':34} {'raw clips/s':>12} {'zero-shot clips/s':>18} {'ratio':>6} {'score ms':>9}"
    )
    for r in rows:
        print(
            f"{r['model']:34} {r['raw_clips_per_s']:12.2f} {r['zero_shot_clips_per_s']:18.2f} "
            f"{r['ratio']:6.2f} {r['score_only_ms']:9.2f}"
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
