"""Benchmark: the synth generator's speed (render, encode, and the full quickstart set).

Three measurements:

1. *render*: frames rendered per second (yuv420p output, one process), over the first
   ``--clips`` clips of the quickstart plan;
2. *render + encode*: the same clips rendered and H.264-encoded (one process), the work
   each worker does per clip;
3. *quickstart*: wall time of ``generate(SynthConfig.quickstart(), workers=--workers)``
   into a temporary folder (1400 clips, about 87k frames), and the frames per second that
   gives. Target: under 60 s with 2 workers on a 2-core machine.

1 and 2 run in this process with the worker's memory settings, taking the best of
``--reps`` CPU-time repetitions (robust to other jobs on the machine); 3 is wall time.

    .venv/bin/python benchmarks/bench_synth.py [--workers 2] [--clips 40] [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0


def per_clip(clips: int, reps: int) -> dict[str, float]:
    """Best CPU milliseconds per frame for rendering, and for rendering + encoding."""
    from emobench.data.synth.faces import render_yuv420p, sample_identity
    from emobench.data.synth.generate import (
        SynthConfig,
        _worker_init,
        clip_rng,
        clip_timeline,
        encode_h264,
        make_plan,
        subject_rng,
    )

    _worker_init()
    cfg = SynthConfig.quickstart()
    jobs = []
    for plan in make_plan(cfg)[:clips]:
        rng = clip_rng(cfg.seed, plan.number)
        tl = clip_timeline(cfg, plan, rng)
        jobs.append((sample_identity(subject_rng(cfg.seed, plan.subject)), tl))
    frames = sum(tl.n_frames for _, tl in jobs)
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:

        def render(encode: bool) -> float:
            import numpy as np

            start = time.process_time()
            for i, (identity, tl) in enumerate(jobs):
                yuv = render_yuv420p(
                    identity,
                    tl.aus,
                    cfg.size,
                    tl.poses,
                    tl.illums,
                    rng=np.random.default_rng(i),
                    noise=tl.noise,
                )
                if encode:
                    encode_h264(
                        tmp / f"{i}.mp4", yuv, cfg.fps, cfg.crf, cfg.preset, cfg.x264_params
                    )
            return (time.process_time() - start) / frames * 1e3

        render(False)  # warm caches (identity layers, noise bank)
        only = min(render(False) for _ in range(reps))
        both = min(render(True) for _ in range(reps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"frames": frames, "render_ms": only, "render_encode_ms": both}


def full(workers: int) -> dict[str, float]:
    """Wall time to generate the whole quickstart set."""
    import json

    from emobench.data.synth.generate import SynthConfig, generate

    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_qs_"))
    try:
        cpu0 = _cpu_seconds()
        start = time.perf_counter()
        generate(SynthConfig.quickstart(), tmp, progress=False, workers=workers)
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu0
        meta = json.loads((tmp / "synth.json").read_text())
        size_mb = sum(f.stat().st_size for f in (tmp / "videos").iterdir()) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "clips": meta["n_clips"],
        "frames": meta["n_frames"],
        "seconds": seconds,
        "fps": meta["n_frames"] / seconds,
        "video_mb": size_mb,
        "cpu_seconds": cpu,
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    import resource

    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clips", type=int, default=40, help="clips for the per-clip timings")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true", help="skip the quickstart run")
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} CPUs; quickstart: 112x112, 25 fps, 2-3 s clips")
    pc = per_clip(args.clips, args.reps)
    print(
        f"render          : {pc['render_ms']:.3f} ms/frame = {1e3 / pc['render_ms']:,.0f} "
        f"frames/s per process ({pc['frames']} frames, best of {args.reps})"
    )
    print(
        f"render + encode : {pc['render_encode_ms']:.3f} ms/frame = "
        f"{1e3 / pc['render_encode_ms']:,.0f} frames/s per process"
    )
    if args.skip_full:
        return 0
    res = full(args.workers)
    ok = res["seconds"] < TARGET_SECONDS
    print(
        f"quickstart      : {res['clips']} clips, {res['frames']:,} frames in "
        f"{res['seconds']:.1f} s with {args.workers} workers = {res['fps']:,.0f} frames/s; "
        f"videos {res['video_mb']:.1f} MiB  [{'OK' if ok else 'SLOW'}: target "
        f"< {TARGET_SECONDS:.0f} s]"
    )
    print(
        f"CPU time        : {res['cpu_seconds']:.1f} s in all ({res['cpu_seconds'] / 2:.1f} s "
        f"per core on 2 cores; wall time above includes any other load on the machine)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
