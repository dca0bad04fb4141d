"""Wall time of one small run with 1 vs N processes (``emobench run --num-processes``).

A synth set (``--train`` / ``--test`` clips, 32 px, 1 s) and a config of two baseline
models (mean pooling and a GRU, each with its own small frame encoder) over ``--seeds``
seeds and two samplers: 2 × seeds groups, each trained on the fold and scored for every
sampler. Each process count runs the whole benchmark as a fresh
``python -m emobench run CONFIG --num-processes N`` (a new results folder and a new
feature cache every time, so nothing is reused), timed from start to exit (interpreter and
torch start-up included). One process uses torch's default thread count; N processes split
the cores (``OMP_NUM_THREADS`` = cores // N, as the launcher does). Prints one JSON object:
wall seconds per process count (median of ``--repeats``), the CPU seconds all its
processes used (the cost of the extra start-ups and of redundant work), the machine's
load average (on a shared machine other jobs take cores too), speed-up against 1 process, and
whether each run's predictions equal the 1-process run's (``pred`` exactly; the largest
score difference, which is a float32 rounding difference when thread counts differ).

    .venv/bin/python benchmarks/bench_parallel.py [--processes 1,2] [--seeds 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name = "bench-parallel"
device = "cpu"
[[datasets]]
name = "synth"
root = "{root}"
[[models]]
adapter = "baseline:mean"
name = "mean"
options = {{frame_size = 32, encoder = {{widths = [8, 16]}}}}
[[models]]
adapter = "baseline:gru"
name = "gru"
options = {{frame_size = 32, encoder = {{widths = [8, 16, 16]}}}}
[sweep]
sampler = ["uniform:4,8"]
seeds = {seeds}
[train]
epochs = {epochs}
patience = {epochs}
batch_size = 16
crt_epochs = 1
encoder_frames = 4
[metrics]
n_resamples = 20
"""


def make_data(root: Path, n_train: int, n_test: int) -> Path:
    from emobench.data.synth.generate import SynthConfig, generate

    cfg = SynthConfig(
        size=32,
        min_seconds=1.0,
        max_seconds=1.0,
        n_train_subjects=6,
        n_test_subjects=3,
        profile="exp:4",
        n_train=n_train,
        n_test=n_test,
        seed=11,
    )
    generate(cfg, root, progress=False, workers=1)
    return root


def run_once(config: Path, out: Path, n: int) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all its processes) of one
    ``emobench run --num-processes n`` into a fresh folder."""
    import resource

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "emobench", "run", str(config), "--out", str(out)]
    cmd += ["--no-progress", "--num-processes", str(n)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"run with {n} process(es) failed:\n{res.stdout}\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def compare(a: Path, b: Path) -> dict[str, object]:
    """Whether b's predictions equal a's: labels and predictions exactly, scores closely."""
    import polars as pl

    keys = ["cell_id", "fold", "clip_id"]
    x = pl.read_parquet(a / "predictions.parquet").sort(keys)
    y = pl.read_parquet(b / "predictions.parquet").sort(keys)
    scores = [c for c in x.columns if c.startswith("score:")]
    same = x.drop(["latency_s", *scores]).equals(y.drop(["latency_s", *scores]))
    diff = max(float((x[c] - y[c]).abs().max() or 0.0) for c in scores) if scores else 0.0
    return {"rows": x.height, "same_predictions": same, "max_score_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    ap.add_argument("--seeds", type=int, default=4, help="seeds (groups = 2 × seeds)")
    ap.add_argument("--train", type=int, default=128, help="training clips")
    ap.add_argument("--test", type=int, default=32, help="test clips")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    counts = [int(x) for x in args.processes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        base = Path(tmp)
        root = make_data(base / "synth", args.train, args.test)
        config = base / "bench.toml"
        seeds = list(range(args.seeds))
        config.write_text(CONFIG.format(root=root, seeds=seeds, epochs=args.epochs))
        seconds: dict[int, list[float]] = {n: [] for n in counts}
        cpu: dict[int, list[float]] = {n: [] for n in counts}
        outs: dict[int, Path] = {}
        for rep in range(args.repeats):
            for n in counts:  # interleaved: a slow phase of the machine hits all alike
                out = base / f"n{n}-r{rep}" / "run"  # its own feature cache beside it
                wall, used = run_once(config, out, n)
                seconds[n].append(wall)
                cpu[n].append(used)
                outs[n] = out
        median = {n: statistics.median(v) for n, v in seconds.items()}
        first = counts[0]
        report = {
            "machine": f"{os.cpu_count()} CPU cores",
            "groups": 2 * args.seeds,
            "parts": 4 * args.seeds,
            "clips": {"train": args.train, "test": args.test},
            "load_average_1min": round(os.getloadavg()[0], 1),
            "seconds": {str(n): round(s, 2) for n, s in median.items()},
            "cpu_seconds": {str(n): round(statistics.median(v), 2) for n, v in cpu.items()},
            f"speedup_vs_{first}": {str(n): round(median[first] / s, 2) for n, s in median.items()},
            "check": {str(n): compare(outs[first], outs[n]) for n in counts[1:]},
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
