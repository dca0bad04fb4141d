"""Frame-source overhead: 16 random frames through VideoFrameSource vs decord directly.

Writes a small H.264 clip (112x112, 75 frames, 25 fps, like the synth benchmark) with PyAV
into a temporary folder, then times, per repetition, opening the file and reading 16 random
frames (a) with ``decord.VideoReader(path).get_batch(idx).asnumpy()`` and (b) with
``VideoFrameSource().read(path, idx)``. Both open the file on every call, as a pipeline
reading many different clips does. The two variants run interleaved (same random indices,
alternating which goes first) so that machine noise hits both equally; the report is the
median time per read and the ratio (b)/(a), which the issue requires to be at most 1.10.

Run: ``.venv/bin/python benchmarks/bench_frames.py [--reps 400] [--sorted|--unsorted]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MAX_RATIO = 1.10


def write_clip(path: Path, n_frames: int = 75, size: int = 112, fps: int = 25) -> None:
    """A moving-gradient H.264 clip (so frames differ and decoding does real work)."""
    import av

    yy, xx = np.mgrid[0:size, 0:size]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for i in range(n_frames):
            img = np.stack(
                [(xx * 2 + i * 3) % 256, (yy * 2 + i * 5) % 256, ((xx + yy) + i * 7) % 256],
                axis=-1,
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def run(reps: int, k: int, sort: bool, seed: int = 0) -> dict[str, float]:
    """Median seconds per read for direct decord and for VideoFrameSource, and their ratio."""
    from decord import VideoReader

    from emobench.video.frames import VideoFrameSource

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "clip.mp4")
        write_clip(Path(path))
        source = VideoFrameSource()
        rng = np.random.default_rng(seed)
        n = len(VideoReader(path))

        def direct(idx: list[int]) -> np.ndarray:
            return VideoReader(path).get_batch(idx).asnumpy()

        def ours(idx: list[int]) -> np.ndarray:
            return source.read(path, idx)

        # Same content check and warm-up (page cache, lazy imports) before timing.
        idx0 = sorted(rng.choice(n, size=k, replace=False).tolist())
        assert np.array_equal(direct(idx0), ours(idx0))
        for _ in range(20):
            direct(idx0)
            ours(idx0)

        times: dict[str, list[float]] = {"decord": [], "source": []}
        for r in range(reps):
            idx = rng.choice(n, size=k, replace=False)
            idx = (np.sort(idx) if sort else idx).tolist()
            order = [("decord", direct), ("source", ours)]
            if r % 2:
                order.reverse()
            for name, fn in order:
                t0 = time.perf_counter()
                fn(idx)
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "decord_s": med["decord"],
        "source_s": med["source"],
        "ratio": med["source"] / med["decord"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--unsorted", action="store_true", help="random order instead of ascending")
    args = ap.parse_args(argv)
    res = run(args.reps, args.frames, sort=not args.unsorted)
    order = "unsorted" if args.unsorted else "sorted"
    print(
        f"clip 112x112, 75 frames; {args.frames} random {order} frames; {args.reps} reps (median)"
    )
    print(f"  decord VideoReader(path).get_batch(idx).asnumpy(): {res['decord_s'] * 1e3:7.3f} ms")
    print(f"  VideoFrameSource().read(path, idx):                {res['source_s'] * 1e3:7.3f} ms")
    ok = res["ratio"] <= MAX_RATIO
    verdict = "OK" if ok else "FAIL"
    print(f"  ratio source/decord: {res['ratio']:.3f} (limit {MAX_RATIO:.2f}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
