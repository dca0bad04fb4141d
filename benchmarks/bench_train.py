"""Wall time of quickstart-sized baseline training on this machine's CPU.

Trains the frame encoder once, encodes every training frame (what the engine caches), then
trains a GRU head with instance-balanced and with class-balanced sampling. Budget: each
training (encoder + feature extraction + one head) under 90 s on a 2-core CPU.

Data: by default ~1000 long-tailed clips × ~62 frames at 64×64 made here in memory:
a class-dependent blob (position and colour per class) that appears with an onset ramp
(macro clips) or a 0.3 s flash (micro clips, a third) over a random background with
sensor noise, brightness drift and jitter. ``--render`` instead renders synth faces in
memory with ``emobench.data.synth`` (40 identities, DFEW proportions, a third of the
expressive clips micro); ``--data DIR`` reads a generated synth set through the dataset
registry and the frame reader (train split, fold 1).

    .venv/bin/python benchmarks/bench_train.py [--clips 1000] [--render | --data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

#: DFEW-like class proportions (7 classes): neutral, happiness, sadness, anger, surprise,
#: disgust, fear.
PROPORTIONS = np.array([0.228, 0.252, 0.166, 0.153, 0.099, 0.012, 0.090])
FPS = 25.0


def _noise_bank(side: int, rng: np.random.Generator) -> np.ndarray:
    """A bank of int16 noise frames; clips read random windows from it (cheap to make)."""
    return rng.normal(0, 12, (97, side, side, 3)).astype(np.int16)


def make_clips(
    n: int, side: int, mean_frames: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` long-tailed clips of (T, side, side, 3) uint8 and their class indices."""
    rng = np.random.default_rng(seed)
    c = len(PROPORTIONS)
    labels = rng.choice(c, size=n, p=PROPORTIONS / PROPORTIONS.sum())
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    angles = 2 * np.pi * np.arange(c) / c
    centres = np.stack([0.5 + 0.22 * np.sin(angles), 0.5 + 0.22 * np.cos(angles)], 1)
    colours = np.random.default_rng(1234).uniform(-70, 70, (c, 3)).astype(np.float32)
    bank = _noise_bank(side, rng)
    clips = []
    for y in labels:
        t = int(rng.integers(mean_frames - 12, mean_frames + 13))
        bg = rng.uniform(70, 170, 3).astype(np.float32)
        cy, cx = centres[y] + rng.normal(0, 0.04, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.08**2))[..., None]
        colour = colours[y] * rng.uniform(0.5, 1.0)
        env = np.zeros(t, np.float32)
        if rng.random() < 1 / 3:  # micro: a 0.25-0.5 s flash
            width = int(rng.integers(int(0.25 * FPS), int(0.5 * FPS) + 1))
            start = int(rng.integers(0, max(1, t - width)))
            env[start : start + width] = np.sin(np.linspace(0, np.pi, width))
        else:  # macro: onset ramp then hold
            onset, ramp = int(rng.integers(0, t // 2)), int(rng.integers(5, 15))
            env = np.clip((np.arange(t) - onset) / ramp, 0, 1).astype(np.float32)
        drift = np.linspace(0, rng.normal(0, 15), t, dtype=np.float32)
        frames = bg + env[:, None, None, None] * blob * colour + drift[:, None, None, None]
        off = int(rng.integers(0, len(bank)))
        noise = np.take(bank, np.arange(off, off + t) % len(bank), axis=0)
        clips.append(np.clip(frames + noise, 0, 255).astype(np.uint8))
    return clips, labels.astype(np.int64)


def render_synth(
    n: int, side: int, mean_frames: int, seed: int, n_subjects: int = 40
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` synth face clips rendered in memory (no video files), DFEW class proportions."""
    from emobench.data.synth.faces import render_frames, sample_identity
    from emobench.data.synth.timeline import make_timeline

    names = ("neutral", "happiness", "sadness", "anger", "surprise", "disgust", "fear")
    rng = np.random.default_rng(seed)
    identities = [sample_identity(rng) for _ in range(n_subjects)]
    labels = rng.choice(len(names), size=n, p=PROPORTIONS / PROPORTIONS.sum())
    clips = []
    for y in labels:
        micro = names[y] != "neutral" and rng.random() < 1 / 3
        t = int(rng.integers(mean_frames - 12, mean_frames + 13))
        tl = make_timeline(names[y], t, FPS, micro, rng, distractors=names)
        ident = identities[int(rng.integers(n_subjects))]
        clips.append(render_frames(ident, tl.aus, side, tl.poses, tl.illums, rng, tl.noise))
    return clips, labels.astype(np.int64)


def load_synth(root: str, side: int) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Decoded train clips (fold 1) of a generated synth set at ``side``×``side``."""
    from emobench.data.registry import load_index
    from emobench.video.frames import read_clip

    index = load_index("synth", root)
    train = index.filter((index["split"] == "train") & (index["fold"] == 1)).sort("clip_id")
    names = sorted(set(train["label"].to_list()))
    clips = [
        read_clip(row, np.arange(row["n_frames"]), size=side) for row in train.iter_rows(named=True)
    ]
    labels = np.array([names.index(lb) for lb in train["label"].to_list()], dtype=np.int64)
    return clips, labels, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=62, help="mean frames per clip")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--encoder-epochs", type=int, default=10)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--render", action="store_true", help="render synth faces in memory")
    parser.add_argument("--data", default=None, help="generated synth set to read instead")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from emobench.models.baseline.encoder import encode_frames
    from emobench.models.baseline.train import TrainConfig, train_encoder, train_head

    t0 = time.perf_counter()
    if args.data:
        clips, labels, _ = load_synth(args.data, args.side)
        source = f"synth:{args.data}"
    elif args.render:
        clips, labels = render_synth(args.clips, args.side, args.frames, args.seed)
        source = "synth faces rendered in memory"
    else:
        clips, labels = make_clips(args.clips, args.side, args.frames, args.seed)
        source = "generated in memory"
    n_classes = int(labels.max()) + 1
    n_frames = sum(len(c) for c in clips)
    print(
        f"data: {len(clips)} clips, {n_frames} frames at {args.side}px ({source}); "
        f"classes {np.bincount(labels, minlength=n_classes).tolist()}; "
        f"made in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    enc_cfg = TrainConfig(
        epochs=args.encoder_epochs, batch_size=32, lr=3e-3, patience=5,
        encoder_frames=4, seed=args.seed, device=args.device,
    )  # fmt: skip
    head_cfg = TrainConfig(
        epochs=args.head_epochs, batch_size=64, lr=2e-3, patience=8,
        seed=args.seed, device=args.device,
    )  # fmt: skip

    t = time.perf_counter()
    encoder, enc_hist = train_encoder(clips, labels, n_classes, enc_cfg)
    t_encoder = time.perf_counter() - t
    print(
        f"encoder: {t_encoder:.1f} s, {enc_hist['epochs_run']} epochs, "
        f"best val UAR {enc_hist['best_val_uar']:.3f} (epoch {enc_hist['best_epoch']})"
    )

    t = time.perf_counter()
    flat = encode_frames(encoder, np.concatenate(clips), batch_size=512, device=args.device)
    feats = np.split(flat, np.cumsum([len(c) for c in clips])[:-1])
    t_features = time.perf_counter() - t
    print(f"features: {t_features:.1f} s for {n_frames} frames ({n_frames / t_features:.0f}/s)")

    results: dict[str, Any] = {
        "clips": len(clips), "frames": n_frames, "side": args.side, "source": source,
        "threads": torch.get_num_threads(), "encoder_s": t_encoder, "features_s": t_features,
        "encoder_val_uar": enc_hist["best_val_uar"], "encoder_epochs": enc_hist["epochs_run"],
        "heads": {},
    }  # fmt: skip
    for rebalancing in ("instance-balanced", "class-balanced"):
        t = time.perf_counter()
        _, hist = train_head(feats, labels, n_classes, "gru", rebalancing, head_cfg)
        t_head = time.perf_counter() - t
        total = t_encoder + t_features + t_head
        results["heads"][rebalancing] = {
            "head_s": t_head, "total_s": total, "val_uar": hist["best_val_uar"],
            "epochs": hist["epochs_run"],
        }  # fmt: skip
        verdict = "ok" if total < 90 else "OVER 90 s BUDGET"
        print(
            f"gru/{rebalancing}: head {t_head:.1f} s ({hist['epochs_run']} epochs), "
            f"best val UAR {hist['best_val_uar']:.3f}; encoder+features+head {total:.1f} s "
            f"[{verdict}]"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
