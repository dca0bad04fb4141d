"""Cost of a density × order sweep vs its single densest cell (frame-feature model).

Target: a sweep over ``uniform:2,4,8,16,32`` × {original, shuffle} costs at most
1.5× the single densest cell (``uniform:32``, original) for a frame-feature model, because
the engine decodes and encodes the union of needed frames once and reuses them for every
density and order. The naive ratio (each cell run on its own, nothing shared) is printed
next to it.

Training is excluded: a first run trains the baseline; every timed run starts from a copy
of its checkpoints with an empty feature cache, so each timing is decode + encode + score +
write. Usage: ``python benchmarks/bench_sweep.py [--n-test 150] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

SAMPLERS = ["uniform:2", "uniform:4", "uniform:8", "uniform:16", "uniform:32"]
ORDERS = ["original", "shuffle"]


def _config(root: Path, cache: Path, samplers: list[str], orders: list[str]):
    from emobench.config import validate_config

    return validate_config(
        {
            "name": "bench-sweep",
            "datasets": [{"name": "synth", "root": str(root)}],
            "models": [{"adapter": "baseline:gru", "name": "gru"}],
            "sweep": {"sampler": samplers, "order": orders},
            "train": {"epochs": 1, "patience": 1},
            "cache": {"dir": str(cache)},
            "metrics": {"n_resamples": 0},
            "device": "cpu",
        }
    )


def _timed_run(
    root: Path,
    work: Path,
    name: str,
    samplers: list[str],
    orders: list[str],
    checkpoints: Path | None,
) -> float:
    from emobench.runner.execute import Engine

    out = work / name
    if checkpoints is not None:
        shutil.copytree(checkpoints, out / "checkpoints")
    engine = Engine(_config(root, work / f"cache-{name}", samplers, orders), out, progress=False)
    engine.load_datasets()
    t = time.perf_counter()
    summary = engine.execute()
    took = time.perf_counter() - t
    phases = ", ".join(f"{k} {v:.2f}" for k, v in summary.timings.items())
    print(f"  {name}: {took:.2f} s ({phases})", flush=True)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="an existing synth set (default: generate one)")
    ap.add_argument("--n-test", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="emobench-bench-sweep-"))
    try:
        root = args.data
        if root is None:
            from emobench.data.synth.generate import SynthConfig, generate

            root = work / "data"
            generate(SynthConfig(n_train=120, n_test=args.n_test, seed=1), root, progress=False)
        _timed_run(root, work, "pretrain", ["uniform:32"], ["original"], None)
        ckpt = work / "pretrain" / "checkpoints"
        singles, sweeps, naives = [], [], []
        for rep in range(args.repeats):
            singles.append(
                _timed_run(root, work, f"single{rep}", ["uniform:32"], ["original"], ckpt)
            )
            sweeps.append(_timed_run(root, work, f"sweep{rep}", SAMPLERS, ORDERS, ckpt))
            naive = 0.0
            for s in SAMPLERS:
                for o in ORDERS:
                    naive += _timed_run(root, work, f"naive{rep}-{s[8:]}-{o}", [s], [o], ckpt)
            naives.append(naive)
        single, sweep, naive = min(singles), min(sweeps), min(naives)
        print(f"test clips: {args.n_test}; cells in the sweep: {len(SAMPLERS) * len(ORDERS)}")
        print(f"single densest cell (uniform:32, original): {single:.2f} s")
        print(
            f"sweep with shared cache:                    {sweep:.2f} s  "
            f"ratio {sweep / single:.2f} (target <= 1.5)"
        )
        print(
            f"naive (each cell alone, nothing shared):    {naive:.2f} s  ratio {naive / single:.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
