"""Is a run reproducible? The same preset run ``--repeats`` times, each in a fresh results
folder with a fresh cache, under ``--backend auto`` (and once under ``--backend pyav``),
compared prediction for prediction and score for score.

Each run is a fresh ``python -m emobench run PRESET --out DIR`` (the preset's data folder
is shared: generated once when absent). Prints one JSON object: wall seconds per run, the
clips each backend decoded in each run and ``auto``'s per-pair decisions, and against the
first run: how many predicted labels differ and the largest absolute score difference
(0.0 means bit-identical).

    .venv/bin/python benchmarks/bench_repeat.py [--preset quickstart] [--repeats 3] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(preset: str, out: Path, backend: str, limit: int | None) -> float:
    cmd = [sys.executable, "-m", "emobench", "run", preset, "--out", str(out)]
    cmd += ["--backend", backend, "--no-progress", "--set", f'cache.dir="{out}-cache"']
    if limit:
        cmd += ["--limit", str(limit)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def compare(a: Path, b: Path) -> dict[str, object]:
    import numpy as np
    import polars as pl

    def load(p: Path) -> pl.DataFrame:
        return pl.read_parquet(p / "predictions.parquet").sort(["cell_id", "fold", "clip_id"])

    x, y = load(a), load(b)
    scores = sorted(c for c in x.columns if c.startswith("score:"))
    sx = x.select(scores).to_numpy().astype(np.float64)
    sy = y.select(scores).to_numpy().astype(np.float64)
    both = ~(np.isnan(sx) | np.isnan(sy))
    return {
        "rows": x.height,
        "same_rows": x.select(["cell_id", "clip_id"]).equals(y.select(["cell_id", "clip_id"])),
        "labels_differ": int((x["pred"] != y["pred"]).sum()),
        "max_score_diff": float(np.abs(sx - sy)[both].max()) if both.any() else 0.0,
        "nan_pattern_equal": bool(np.array_equal(np.isnan(sx), np.isnan(sy))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="clips per split and fold")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="emobench-repeat-") as tmp:
        runs = [(f"auto-{k}", "auto") for k in range(args.repeats)] + [("pyav", "pyav")]
        report: dict[str, object] = {"preset": args.preset, "limit": args.limit, "runs": {}}
        first = None
        for name, backend in runs:
            out = Path(tmp) / name
            wall = run_once(args.preset, out, backend, args.limit)
            manifest = json.loads((out / "manifest.json").read_text())
            entry: dict[str, object] = {
                "wall_s": round(wall, 1),
                "decoded": manifest["decoding"]["this_run"]["clips"],
                "pairs": [
                    (c["source"], c["size"], c["result"])
                    for c in manifest["decoding"]["this_run"]["checks"]
                ],
            }
            if first is None:
                first = out
            else:
                entry["vs_first"] = compare(first, out)
            report["runs"][name] = entry  # type: ignore[index]
            print(json.dumps({name: entry}), file=sys.stderr)
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
