"""Do the shipped tiny models regenerate bit for bit? Retrains them and compares.

Runs ``emobench pretrain synth-web`` and ``emobench pretrain synth-vlm`` (seed 0, the
shipped recipes, no zero-shot evaluation) into a temporary folder and compares each
weights file with the shipped one: the bytes (SHA-256) and, when they differ, the tensors
(how many differ and by how much). Prints one line per model and the training time; exits
1 when a file differs.

``--isa AVX2`` (or ``SSE4_2``) restricts MKL to that instruction set, as an older CPU
would: with the commands' pinned arithmetic (:mod:`emobench.pretrain.reproducible`) the
weights must not change. Not part of ``make bench`` (about 25 + 20 CPU minutes).

Run: ``.venv/bin/python benchmarks/regenerate_weights.py [--only web|vlm] [--isa AVX2]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "emobench" / "models" / "weights"
MODELS = {
    "web": (["synth-web"], "emobench-tiny-synth-web.safetensors"),
    "vlm": (["synth-vlm"], "emobench-tiny-vlm/model.safetensors"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensor_diff(a: Path, b: Path) -> str:
    """How the tensors of two safetensors files differ (names, values)."""
    from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        ka, kb = set(fa.keys()), set(fb.keys())
        if ka != kb:
            return f"tensor names differ ({len(ka ^ kb)} in one file only)"
        worst, n = 0.0, 0
        for k in sorted(ka):
            x, y = fa.get_tensor(k), fb.get_tensor(k)
            if x.shape != y.shape or not bool((x == y).all()):
                n += 1
                if x.shape == y.shape and x.is_floating_point():
                    worst = max(worst, float((x.float() - y.float()).abs().max()))
        meta = "same metadata" if fa.metadata() == fb.metadata() else "other metadata"
    return f"{n} of {len(ka)} tensors differ (max |diff| {worst:.3g}); {meta}"


def regenerate(name: str, out: Path, isa: str | None) -> tuple[bool, str]:
    args, rel = MODELS[name]
    target = out / name
    cmd = [sys.executable, "-m", "emobench", "pretrain", *args, "--out", str(target)]
    cmd += ["--seed", "0", "--eval-root", str(out / "no-eval"), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if isa:
        env["MKL_ENABLE_INSTRUCTIONS"] = isa
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return False, f"{name}: the command failed: {done.stderr.strip().splitlines()[-1:]}"
    new = target / Path(rel).name
    shipped = WEIGHTS / rel
    digest = sha256(new)
    same = digest == sha256(shipped)
    what = "identical bytes" if same else tensor_diff(new, shipped)
    return same, f"{name}: {what} (sha256 {digest[:16]}; {seconds:.0f} s)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(MODELS), help="regenerate one model only")
    ap.add_argument("--isa", help="MKL_ENABLE_INSTRUCTIONS for the runs (e.g. AVX2)")
    ap.add_argument("--keep", type=Path, help="write the models here instead of a temp dir")
    a = ap.parse_args()
    names = [a.only] if a.only else list(MODELS)
    with tempfile.TemporaryDirectory() as tmp:
        out = a.keep or Path(tmp)
        results = [regenerate(n, out, a.isa) for n in names]
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
