"""Synthetic "web" pre-training of ``emobench-tiny``: emobench's default contrastive VLM.

Recipe (the model card ``emobench/models/weights/emobench-tiny-synth-web.md`` gives its
figures):

* **Images**: a pool of generated faces (:mod:`emobench.data.synth.faces`) whose identities
  come from their own seed stream (``[WEB_STREAM, 1, seed, identity]``; the benchmark uses
  ``[seed, 1, subject]``), so no web identity is a benchmark subject. Each identity gets
  ``images_per_identity`` still images, each with one of the 11 synth expressions drawn
  uniformly, at intensity 0.4–1.0 plus small AU jitter, pose, light and sensor noise;
  rendered at ``render_size``, centre-cropped to ``crop`` pixels (the face from brows to
  chin, so that action units cover many pixels) and resized (antialiased) to the model's
  input size if needed. The weights record this as ``preprocess`` metadata, and the adapter
  prepares benchmark frames the same way.
* **Captions**: a short templated sentence ("a photo of a person."). With
  probability ``mention_rate · F_c / F_max`` it names the face's emotion, with ``F_c`` the
  summed English frequency (``wordfreq``) of that emotion's words and the word itself drawn
  in proportion to its frequency; so "happy" faces are captioned as happy far more often
  than disgusted ones are captioned "disgusted", as on the web. Otherwise the caption has
  no emotion word. A share ``noise_rate`` of captions is noisy: their emotion word is drawn
  from all emotion words by frequency, whatever the face shows (biased toward "happy",
  "afraid", "sad" ...).
* **Training**: open_clip's ``ClipLoss`` (symmetric InfoNCE) on batches of several faces of
  each of a few identities (``per_identity``), AdamW with cosine decay and warm-up, no
  weight decay on gains, biases, embeddings and the logit scale. CPU, seeded: the same
  seed gives the same weights on the same torch build.

The zero-shot classifier therefore inherits a word-frequency prior: the head-class bias the
study attributes to web-scale pre-training. :func:`pretrain_synth_web` writes the weights
(float16 safetensors, a few MB) and a card; :func:`evaluate_zero_shot` measures UAR/WAR on
a synth test split.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import PretrainError
from emobench.models.openclip.webpool import (
    WEB_STREAM,
    build_web_pool,
    make_caption,
    mention_probabilities,
    web_identity_rng,
    word_frequencies,
)
from emobench.progress import ProgressFn

ARCH = "emobench-tiny"
TAG = "synth-web"
WEIGHTS_NAME = "emobench-tiny-synth-web.safetensors"
CARD_NAME = "emobench-tiny-synth-web.md"


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of the synthetic web pre-training (defaults: the shipped weights)."""

    seed: int = 0
    n_identities: int = 1000
    images_per_identity: int = 16
    image_size: int = 64
    render_size: int = 112
    crop: int = 64
    mention_rate: float = 0.9
    noise_rate: float = 0.15
    steps: int = 1200
    batch_size: int = 128
    per_identity: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 50
    classes: tuple[str, ...] = field(default_factory=lambda: _synth_classes())

    def __post_init__(self) -> None:
        checks = {
            "n_identities": self.n_identities >= 1,
            "images_per_identity": self.images_per_identity >= 1,
            "image_size": self.image_size >= 16,
            "render_size": self.render_size >= 16 and self.render_size % 2 == 0,
            "crop": 0 <= self.crop <= self.render_size and self.crop % 2 == 0,
            "mention_rate": 0.0 <= self.mention_rate <= 1.0,
            "noise_rate": 0.0 <= self.noise_rate <= 1.0,
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 2,
            "per_identity": self.per_identity >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup": self.warmup >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise PretrainError(
                "bad pre-training setting(s): "
                + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )

    @property
    def n_images(self) -> int:
        return self.n_identities * self.images_per_identity

    @property
    def preprocess(self) -> dict[str, int]:
        """How benchmark frames must be prepared to look like the web pool: decode at
        ``frame_size`` (the render size), centre-crop ``crop`` pixels (0: none)."""
        return {"frame_size": self.render_size, "crop": self.crop}


def _synth_classes() -> tuple[str, ...]:
    from emobench.data.synth.aus import SYNTH_LABELS

    return tuple(SYNTH_LABELS)


# --------------------------------------------------------------------------- training


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = (
            p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
            or "logit_scale" in name or "embedding" in name or "class_embedding" in name
        )  # fmt: skip
        (no_decay if exclude else decay).append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def batch_indices(cfg: PretrainConfig, rng: np.random.Generator) -> np.ndarray:
    """One batch of pair indices: ``batch_size // per_identity`` random identities with
    ``per_identity`` of their images each (images are stored identity by identity).

    Several faces of one person per batch make hair, clothes and background useless for
    telling those pairs apart, so the contrastive loss has to use the expression (and its
    caption words) rather than only the easier identity attributes.
    """
    k = cfg.images_per_identity
    per = min(cfg.per_identity, k)
    n_ids = max(1, cfg.batch_size // per)
    ids = rng.choice(cfg.n_identities, size=min(n_ids, cfg.n_identities), replace=False)
    picks = np.stack([rng.choice(k, size=per, replace=False) for _ in ids])
    return np.sort((ids[:, None] * k + picks).ravel())


def train_clip(
    images: np.ndarray,
    captions: list[str],
    cfg: PretrainConfig,
    progress: ProgressFn | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Contrastive training of a fresh ``emobench-tiny`` on (image, caption) pairs (CPU).

    Batches come from :func:`batch_indices` (seeded), several faces per identity each.
    Returns the model (eval mode) and a history (loss every 10 steps, seconds).
    """
    import math

    import open_clip
    import torch

    from emobench.models.openclip.adapter import register_configs

    if len(images) != len(captions) or len(images) != cfg.n_images:
        raise PretrainError(
            f"need n_identities × images_per_identity = {cfg.n_images} pairs, got "
            f"{len(images)} images and {len(captions)} captions"
        )
    register_configs()
    started = time.perf_counter()
    history: dict[str, Any] = {"step": [], "loss": [], "logit_scale": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng([WEB_STREAM, 2, cfg.seed])
        model = open_clip.create_model(ARCH, pretrained=None)
        model.train()
        tokenizer = open_clip.get_tokenizer(ARCH)
        tokens = tokenizer(captions)
        pcfg = model.visual.preprocess_cfg
        mean = torch.tensor(pcfg["mean"]).view(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(pcfg["std"]).view(1, 3, 1, 1) * 255.0)
        loss_fn = open_clip.ClipLoss()
        opt = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6
        )

        def lr_at(step: int) -> float:
            if step < cfg.warmup:
                return cfg.lr * (step + 1) / cfg.warmup
            t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
            return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * t))

        running = []
        for step in range(cfg.steps):
            idx = batch_indices(cfg, rng)
            x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float()
            x = (x - mean) * inv_std
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            img_f, txt_f, scale = model(x, tokens[idx])
            loss = loss_fn(img_f, txt_f, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running.append(float(loss.detach()))
            if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
                history["step"].append(step + 1)
                history["loss"].append(float(np.mean(running)))
                history["logit_scale"].append(float(model.logit_scale.detach().exp()))
                running = []
                if progress is not None:
                    progress(step + 1, cfg.steps, {"phase": "train", "loss": history["loss"][-1]})
    history["seconds"] = time.perf_counter() - started
    return model.eval(), history


def save_weights(model: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as float16 safetensors (open_clip can load it back with
    ``pretrained=path``; values are cast to the model's dtype on load)."""
    import torch
    from safetensors.torch import save_file

    from emobench.io import atomic_path

    tensors = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata or {})
    return path


# --------------------------------------------------------------------------- evaluation


def evaluate_zero_shot(
    weights: str | Path,
    root: str | Path,
    sampler: str = "uniform:8",
    split: str = "test",
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot UAR/WAR of ``emobench-tiny`` with ``weights`` on a synth split.

    Frames are decoded at the model's input size, sampled with ``sampler``, mean-pooled;
    metrics are given raw and after the ``estimated-prior`` correction, with per-class
    recall and the share of predictions going to each class (collapse shows there).
    """
    import polars as pl

    from emobench.data.registry import load_index
    from emobench.longtail.prior_estimated import estimated_prior
    from emobench.models.openclip.adapter import OpenClipModel
    from emobench.video.frames import read_clip
    from emobench.video.sampling import sample

    index = load_index("synth", Path(root))
    rows = index.filter(pl.col("split") == split).sort("clip_id")
    if rows.height == 0:
        raise PretrainError(f"{root}: no {split!r} clips to evaluate on")
    labels = sorted(set(rows["label"].to_list()))
    model = OpenClipModel(f"{ARCH}@{weights}", {})
    model.load("cpu")
    model.labels = labels
    model._classifier = model.class_embeddings(labels, "synth")
    clips = []
    for r in rows.iter_rows(named=True):
        idx = sample(r["n_frames"], r["fps"], sampler, seed)
        clips.append(model.encode(read_clip(r, idx, size=model.frame_size)))
    scores = model.score(clips).astype(np.float64)
    y = np.array([labels.index(lb) for lb in rows["label"].to_list()])
    out: dict[str, Any] = {"split": split, "sampler": sampler, "n_clips": int(len(y))}
    for name, s in (("none", scores), ("estimated-prior", estimated_prior(scores, None))):
        pred = s.argmax(1)
        recall = {
            lb: float(np.mean(pred[y == c] == c)) for c, lb in enumerate(labels) if (y == c).any()
        }
        out[name] = {
            "uar": float(np.mean(list(recall.values()))),
            "war": float(np.mean(pred == y)),
            "recall": recall,
            "pred_share": {lb: float(np.mean(pred == c)) for c, lb in enumerate(labels)},
        }
    return out


# --------------------------------------------------------------------------- the command


def write_card(path: Path, cfg: PretrainConfig, info: dict[str, Any]) -> Path:
    """The model card: recipe, seed, steps, data statistics, timings and metrics."""
    ev = info.get("eval")
    lines = [
        f"# {ARCH}@{TAG}",
        "",
        "A tiny CLIP (open_clip, config `emobench/models/configs/emobench-tiny.json`) that",
        "emobench pre-trains itself on synthetic web data: generated faces (identities disjoint",
        "from the synth benchmark) with captions whose emotion words follow English word",
        "frequencies (`wordfreq`), captions without emotion words, and noisy captions biased",
        "toward frequent words. See `emobench/models/openclip/pretrain.py` for the recipe.",
        "",
        "Regenerate: `emobench pretrain synth-web --out DIR --seed "
        f"{cfg.seed}` (CPU, {info['seconds_total']:.0f} s here).",
        "",
        "## Recipe",
        "",
        "```json",
        json.dumps(asdict(cfg), indent=2),
        "```",
        "",
        f"- weights: `{WEIGHTS_NAME}` (float16 safetensors, {info['bytes'] / 1e6:.1f} MB, "
        f"sha256 prefix `{info['sha256']}`)",
        f"- steps: {cfg.steps} × batch {cfg.batch_size}; final loss {info['final_loss']:.3f}, "
        f"logit scale {info['logit_scale']:.1f}",
        f"- time: render {info['seconds_render']:.0f} s, train {info['seconds_train']:.0f} s "
        f"on {info['threads']} CPU threads",
        "",
        "## Web pool",
        "",
        "```json",
        json.dumps(info["pool"], indent=2),
        "```",
        "",
    ]
    if ev:
        lines += ["## Zero-shot on the synth quickstart test split", ""]
        lines += [f"Data: `{info.get('eval_root')}`, sampler `{ev['sampler']}`, mean pooling, "
                  f"{ev['n_clips']} clips.", ""]  # fmt: skip
        lines += ["| correction | UAR | WAR |", "|---|---|---|"]
        for name in ("none", "estimated-prior"):
            lines.append(f"| {name} | {ev[name]['uar']:.3f} | {ev[name]['war']:.3f} |")
        lines += [
            "",
            "| class | recall (none) | share of predictions (none) | recall (estimated-prior) |",
            "|---|---|---|---|",
        ]
        for lb in ev["none"]["recall"]:
            lines.append(
                f"| {lb} | {ev['none']['recall'][lb]:.3f} | {ev['none']['pred_share'][lb]:.3f} "
                f"| {ev['estimated-prior']['recall'][lb]:.3f} |"
            )
        lines.append("")
    lines += info.get("notes", [])
    path.write_text("\n".join(lines) + "\n")
    return path


def pretrain_synth_web(
    out: Path,
    cfg: PretrainConfig | None = None,
    eval_root: Path | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Render the web pool, train, write ``<out>/emobench-tiny-synth-web.safetensors`` and
    its card (with zero-shot metrics when ``eval_root`` holds a synth dataset)."""
    import hashlib

    import torch

    cfg = cfg or PretrainConfig()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainError(f"cannot create output folder {out}: {exc}") from None
    t0 = time.perf_counter()
    images, captions, pool = build_web_pool(cfg, progress)
    t1 = time.perf_counter()
    model, hist = train_clip(images, captions, cfg, progress)
    path = save_weights(
        model,
        out / WEIGHTS_NAME,
        {
            "recipe": json.dumps(asdict(cfg)),
            "preprocess": json.dumps(cfg.preprocess),
            "arch": ARCH,
            "tag": TAG,
        },
    )
    info: dict[str, Any] = {
        "pool": pool,
        "history": hist,
        "seconds_render": t1 - t0,
        "seconds_train": hist["seconds"],
        "seconds_total": time.perf_counter() - t0,
        "final_loss": hist["loss"][-1],
        "logit_scale": hist["logit_scale"][-1],
        "threads": torch.get_num_threads(),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
        "weights": str(path),
    }
    if eval_root is not None and (Path(eval_root) / "annotations.csv").is_file():
        info["eval"] = evaluate_zero_shot(path, eval_root)
        info["eval_root"] = str(eval_root)
    write_card(out / CARD_NAME, cfg, info)
    (out / "emobench-tiny-synth-web.json").write_text(
        json.dumps({k: v for k, v in info.items() if k != "history"}, indent=2, default=str) + "\n"
    )
    return info


__all__ = [
    "ARCH",
    "PretrainConfig",
    "PretrainError",
    "TAG",
    "WEB_STREAM",
    "batch_indices",
    "build_web_pool",
    "evaluate_zero_shot",
    "make_caption",
    "mention_probabilities",
    "pretrain_synth_web",
    "save_weights",
    "train_clip",
    "web_identity_rng",
    "word_frequencies",
]
