"""The whole ``emobench pretrain synth-web`` run: render the web pool, train, write the
weights, the card (with zero-shot metrics when a synth dataset is given) and the run's
figures as JSON."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emobench.errors import PretrainError
from emobench.pretrain.reproducible import reproducible_cpu
from emobench.pretrain.synth_web.card import write_card
from emobench.pretrain.synth_web.config import ARCH, CARD_NAME, TAG, WEIGHTS_NAME, PretrainConfig
from emobench.pretrain.synth_web.evaluate import evaluate_zero_shot
from emobench.pretrain.synth_web.train import save_weights, train_clip
from emobench.pretrain.synth_web.webpool import build_web_pool
from emobench.progress import ProgressFn


def pretrain_synth_web(
    out: Path,
    cfg: PretrainConfig | None = None,
    eval_root: Path | None = None,
    progress: ProgressFn | None = None,
    pinned_early: bool = False,
) -> dict[str, Any]:
    """Render the web pool, train, write ``<out>/emobench-tiny-synth-web.safetensors`` and
    its card (with zero-shot metrics when ``eval_root`` holds a synth dataset). Training runs
    with pinned CPU arithmetic (:mod:`emobench.pretrain.reproducible`; ``pinned_early``: its
    environment was set before torch was loaded)."""
    cfg = cfg or PretrainConfig()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainError(f"cannot create output folder {out}: {exc}") from None
    t0 = time.perf_counter()
    images, captions, pool = build_web_pool(cfg, progress)
    t1 = time.perf_counter()
    with reproducible_cpu(pinned_early) as cpu:
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
        "threads": cpu["threads"],
        "cpu": cpu,
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


__all__ = ["pretrain_synth_web"]
