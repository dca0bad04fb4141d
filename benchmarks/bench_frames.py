"""Video decoding backends: PyAV (the reference) vs decord, 16 frames per clip read.

Generates a few synth clips exactly as the benchmark generator does (``build_clip``:
112x112 H.264 ``yuv420p``, 2-3 s at 25 fps = 50-75 frames) in a temporary folder, then
times, per repetition, one clip read (open the file, decode, convert and scale 16 random
frames, sorted as a sampler gives them) through ``VideoFrameSource`` with each backend:

- ``pyav``: PyAV, one decoder thread (the default); ``pyav-threads0``: FFmpeg's own
  threading (``thread_type = "AUTO"``, thread count chosen by FFmpeg), for comparison;
- ``decord``: decord2, one decoder thread (the default, the faster for it too);
  ``decord-threads0``: decord/FFmpeg choose the threads (decord's own default);
- ``auto``: decord for (source, size) pairs checked against PyAV, else PyAV.

All variants read the same clip with the same indices in each repetition, in a rotating
order, so machine noise hits them equally; the report is the median ms per clip read and
the ratio to decord. Target: ``pyav`` <= 1.5 x ``decord`` at output size 112
and 64. Where decord cannot decode a size on this CPU its row says so.

Second section, frame folders (``FolderFrameSource``): a 224x224 JPEG folder clip of 70
frames (DFEW's ``clip_224x224`` layout and median length), 16 random sorted frames per read,
timed against the reference "decode those 16 JPEG files alone" (PIL ``open`` + ``convert
("RGB")``, no resize, no array) in the same rotation. Target: ``FolderFrameSource`` <= 1.2 x
the reference at output sizes 224 and 112; ``threads=1`` rows show the serial path.

Run: ``.venv/bin/python benchmarks/bench_frames.py [--reps 300] [--sizes 112 64]
[--section all|video|folder] [--folder-reps 300]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

MAX_RATIO = 1.5


def write_clips(folder: Path, n_clips: int = 8, size: int = 112) -> list[tuple[str, int]]:
    """``n_clips`` synth clips as the generator writes them: (path, frame count)."""
    from emobench.data.synth.generate import SynthConfig, build_clip, make_plan

    cfg = SynthConfig(n_train=7, n_test=7, size=size, seed=11)  # quickstart encoder settings
    clips = []
    for plan in make_plan(cfg)[:n_clips]:
        row, _ = build_clip(cfg, plan, folder)
        clips.append((str(folder / f"{plan.clip_id}.mp4"), int(row["n_frames"])))
    return clips


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(reps: int, k: int, size: int, clips: list[tuple[str, int]], seed: int = 0) -> dict:
    """Median seconds per clip read for each backend variant (None: the variant failed)."""
    from emobench.video.frames import FrameReadError, VideoFrameSource, available_backends

    variants: dict[str, Callable[[str, list[int]], np.ndarray]] = {}
    pyav = VideoFrameSource(size=size, backend="pyav")
    variants["pyav"] = lambda p, i: pyav.read(p, i)
    pyav0 = VideoFrameSource(size=size, backend="pyav", num_threads=0)
    variants["pyav-threads0"] = lambda p, i: pyav0.read(p, i)
    failed: dict[str, str] = {}
    if "decord" in available_backends():
        dec = VideoFrameSource(size=size, backend="decord")
        auto = VideoFrameSource(size=size, backend="auto")
        dec0 = VideoFrameSource(size=size, backend="decord", num_threads=0)
        variants["decord"] = lambda p, i: dec.read(p, i)
        variants["decord-threads0"] = lambda p, i: dec0.read(p, i)
        variants["auto"] = lambda p, i: auto.read(p, i)
    rng = np.random.default_rng(seed)
    # Warm-up (imports, page cache, auto's checks) and a same-content check.
    for path, n in clips * 3:
        idx = sorted(rng.choice(n, size=k, replace=False).tolist())
        ref = variants["pyav"](path, idx)
        for name, fn in list(variants.items()):
            try:
                got = fn(path, idx)
            except FrameReadError as exc:
                failed[name] = exc.reason
                del variants[name]
                continue
            diff = np.abs(got.astype(int) - ref).mean()
            assert diff <= 2.0, (name, size, diff)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(reps):
        path, n = clips[r % len(clips)]
        idx = sorted(rng.choice(n, size=k, replace=False).tolist())
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            variants[name](path, idx)
            times[name].append(time.perf_counter() - t0)
    return {
        "median_s": {name: statistics.median(ts) for name, ts in times.items()},
        "failed": failed,
    }


FOLDER_MAX_RATIO = 1.2


def write_jpeg_folder(folder: Path, n: int = 70, side: int = 224, seed: int = 0) -> Path:
    """``n`` face-crop-like JPEG frames (smooth shading, edges, noise; quality 90)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for i in range(n):
        t = i / n
        face = ((xx - 0.5) ** 2 / 0.12 + (yy - 0.5 - 0.02 * t) ** 2 / 0.2) < 1
        base = 60 + 120 * yy[..., None] * np.array([1.0, 0.8, 0.7]) + 70 * face[..., None]
        img = base + rng.normal(0, 8, (side, side, 3))
        arr = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i + 1:05d}.jpg", quality=90)
    return folder


def run_folder(reps: int, k: int, sizes: list[int], folder: Path, seed: int = 0) -> dict:
    """Median seconds per 16-frame read: the reference and each FolderFrameSource variant."""
    from PIL import Image

    from emobench.video.frames import FolderFrameSource

    names = sorted(os.listdir(folder))
    n = len(names)

    def reference(idx: list[int]) -> None:
        for i in idx:
            with Image.open(folder / names[i]) as im:
                im.convert("RGB")

    variants: dict[str, Callable[[list[int]], object]] = {"reference (PIL open+convert)": reference}
    for size in sizes:
        for threads in (None, 1):
            src = FolderFrameSource(size=size, threads=threads)
            name = f"folder size {size}" + (" threads=1" if threads == 1 else "")
            variants[name] = lambda idx, src=src: src.read(str(folder), idx)
    rng = np.random.default_rng(seed)
    for _ in range(10):  # warm-up: imports, page cache, the thread pool
        idx = sorted(rng.choice(n, size=k, replace=False).tolist())
        for fn in variants.values():
            fn(idx)
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for r in range(reps):
        idx = sorted(rng.choice(n, size=k, replace=False).tolist())
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            t0 = time.perf_counter()
            variants[name](idx)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def folder_section(reps: int, k: int, sizes: list[int]) -> bool:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_jpeg_folder(Path(tmp) / "00001")
        kib = sum(f.stat().st_size for f in folder.iterdir()) / 1024 / 70
        print(
            f"frame folder: 70 JPEGs 224x224 (q90, {kib:.1f} KiB each); {k} random sorted "
            f"frames per read; {reps} reps (median); load {os.getloadavg()[0]:.1f}"
        )
        med = run_folder(reps, k, sizes, folder)
        ref = med["reference (PIL open+convert)"]
        for name, sec in med.items():
            print(f"  {name:30s} {sec * 1e3:7.3f} ms/read  {sec / ref:.2f} x reference")
        for size in sizes:
            ratio = med[f"folder size {size}"] / ref
            verdict = "OK" if ratio <= FOLDER_MAX_RATIO else "ABOVE TARGET"
            print(
                f"  size {size}: {ratio:.2f} x reference (target <= {FOLDER_MAX_RATIO}): {verdict}"
            )
            ok &= ratio <= FOLDER_MAX_RATIO
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 64])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--section", choices=["all", "video", "folder"], default="all")
    ap.add_argument("--folder-reps", type=int, default=300)
    ap.add_argument("--folder-sizes", type=int, nargs="+", default=[224, 112])
    args = ap.parse_args(argv)
    from emobench.video.frames import decode_stats

    ok = True
    if args.section in ("all", "folder"):
        ok &= folder_section(args.folder_reps, args.frames, args.folder_sizes)
        if args.section == "folder":
            return 0 if ok else 1
    with tempfile.TemporaryDirectory() as tmp:
        clips = write_clips(Path(tmp), args.clips)
        lengths = sorted(n for _, n in clips)
        print(
            f"{len(clips)} synth clips 112x112, {lengths[0]}-{lengths[-1]} frames; "
            f"{args.frames} random sorted frames per read; {args.reps} reps (median)"
        )
        print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load {os.getloadavg()[0]:.1f}")
        for size in args.sizes:
            res = run(args.reps, args.frames, size, clips)
            med = res["median_s"]
            base = med.get("decord")
            print(f"output {size}x{size}:")
            for name, sec in med.items():
                ratio = f"  {sec / base:.2f} x decord" if base else ""
                print(f"  {name:15s} {sec * 1e3:7.3f} ms/clip{ratio}")
            for name, reason in res["failed"].items():
                print(f"  {name:15s} cannot decode here: {reason}")
            if base:
                ratio = med["pyav"] / base
                verdict = "OK" if ratio <= MAX_RATIO else "ABOVE TARGET"
                print(f"  pyav / decord = {ratio:.2f} (target <= {MAX_RATIO}): {verdict}")
                ok &= ratio <= MAX_RATIO
    stats = decode_stats().as_dict()
    print(f"auto's checks: {[(c['source'], c['size'], c['result']) for c in stats['checks']]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
