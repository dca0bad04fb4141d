"""Reading DFEW's metadata: 16,372 clip folders must take < 30 s on 2 cores.

Generates a DFEW-layout tree on /tmp (removed afterwards): ``Clip/clip_224x224/<00001..
16372>/`` with 11-847 zero-byte ``.jpg`` files each (log-normal, median about 70, so the
listing counts real directory entries; nothing is decoded), and the split CSVs
``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv`` over 11,697 labelled
clips in DFEW's class proportions. Then times, on that tree (its directory entries are in
the page cache, as just written):

- the folder-listing part alone: one ``os.scandir`` per clip folder counting images;
- ``load_dataset("dfew", root)`` in this process (when the registry has it);
- ``emobench data check dfew ROOT --json`` as a fresh process (imports included).

Run: ``.venv/bin/python benchmarks/bench_data_check.py [--clips 16372] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_S = 30.0
N_CLIPS = 16372
# official ids 1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear
CLASS_TOTALS = {1: 2445, 2: 1894, 3: 2669, 4: 2173, 5: 1469, 6: 145, 7: 902}


def write_tree(root: Path, n_clips: int = N_CLIPS, seed: int = 0) -> int:
    """The DFEW layout under ``root``; returns the number of frame files written."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(70), 0.65, n_clips)), 11, 847).astype(int)
    clips = root / "Clip" / "clip_224x224"
    total = 0
    flags = os.O_CREAT | os.O_WRONLY
    for i, n in enumerate(lengths.tolist(), 1):
        folder = clips / f"{i:05d}"
        folder.mkdir(parents=True)
        base = os.fspath(folder)
        for k in range(1, n + 1):
            os.close(os.open(f"{base}/{k:05d}.jpg", flags, 0o644))
        total += n
    # 11,697 labelled clips in DFEW's proportions, 5 folds (fold N tests part N)
    labels = np.concatenate([np.full(v, k) for k, v in CLASS_TOTALS.items()])
    n_lab = min(len(labels), n_clips)
    ids = rng.permutation(np.arange(1, n_clips + 1))[:n_lab]
    labels = rng.permutation(labels)[:n_lab]
    part = np.arange(n_lab) % 5 + 1
    for split in ("train", "test"):
        (root / "EmoLabel_DataSplit" / f"{split}(single-labeled)").mkdir(parents=True)
    for fold in range(1, 6):
        for split, mask in (("train", part != fold), ("test", part == fold)):
            path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
            rows = "".join(f"{v},{lab}\n" for v, lab in zip(ids[mask], labels[mask], strict=True))
            path.write_text("video_name,label\n" + rows)
    return total


def list_folders(root: Path) -> tuple[int, int]:
    """The listing part alone: images per clip folder by one scandir each."""
    exts = (".jpg", ".jpeg", ".png", ".bmp")
    clips = root / "Clip" / "clip_224x224"
    n_folders = n_files = 0
    for entry in os.scandir(clips):
        with os.scandir(entry.path) as it:
            n_files += sum(1 for e in it if e.name.lower().endswith(exts))
        n_folders += 1
    return n_folders, n_files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=N_CLIPS)
    ap.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dfew-", dir="/tmp"))
    ok = True
    try:
        root = tmp / "DFEW"
        t0 = time.perf_counter()
        n_files = write_tree(root, args.clips)
        print(
            f"tree: {args.clips} clip folders, {n_files:,} zero-byte .jpg files "
            f"({n_files / args.clips:.0f} per folder on average), written in "
            f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}"
        )
        t0 = time.perf_counter()
        folders, files = list_folders(root)
        listing = time.perf_counter() - t0
        print(f"listing alone: {folders} folders, {files:,} images in {listing:.2f} s")
        from emobench.data import registry

        load_dataset = getattr(registry, "load_dataset", None)
        if load_dataset is None:
            print("load_dataset is not in the registry yet: the listing figure stands alone")
            ok = listing < TARGET_S
        else:
            t0 = time.perf_counter()
            index, problems = load_dataset("dfew", root)
            loaded = time.perf_counter() - t0
            print(
                f"load_dataset('dfew'): {index.height} rows, "
                f"{index['clip_id'].n_unique()} clips, {len(problems)} problems in {loaded:.2f} s"
            )
            exe = Path(sys.executable).with_name("emobench")
            t0 = time.perf_counter()
            out = subprocess.run(
                [str(exe), "data", "check", "dfew", str(root), "--json"],
                capture_output=True,
                text=True,
            )
            cli = time.perf_counter() - t0
            print(f"emobench data check dfew ROOT --json: exit {out.returncode} in {cli:.2f} s")
            if out.returncode != 0:
                print(out.stderr.strip()[-500:])
            ok = loaded < TARGET_S and cli < TARGET_S and out.returncode == 0
        print(f"target < {TARGET_S:.0f} s: {'OK' if ok else 'ABOVE TARGET'}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
