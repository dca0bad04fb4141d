"""The whole ``emobench pretrain synth-vlm`` run: train on one torch thread, write the model
folder, measure it zero-shot when a synth dataset is given, write ``recipe.json`` and the
card."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emobench.errors import PretrainError
from emobench.io import atomic_write_text, to_json
from emobench.pretrain.reproducible import reproducible_cpu
from emobench.pretrain.synth_vlm.card import write_card
from emobench.pretrain.synth_vlm.config import PretrainConfig
from emobench.pretrain.synth_vlm.evaluate import evaluate_zero_shot
from emobench.pretrain.synth_vlm.folder import finish
from emobench.pretrain.synth_vlm.train import train
from emobench.progress import ProgressFn


def pretrain_synth_vlm(
    out: Path,
    cfg: PretrainConfig | None = None,
    eval_root: Path | None = None,
    eval_modes: tuple[str, ...] = ("generate", "loglik", "msce"),
    progress: ProgressFn | None = None,
    msce_limit: int | None = 100,
    spread: list[dict[str, Any]] | None = None,
    pinned_early: bool = False,
) -> dict[str, Any]:
    """Train, write the model folder ``out`` (``save_pretrained`` files, ``recipe.json``,
    card ``README.md``) and, when ``eval_root`` holds a synth dataset, measure zero-shot
    UAR/WAR on its test split for the card; ``spread``: other seeds' figures
    (:func:`.spread.load_spread`) for the card's seed spread. Returns what the card reports.
    Runs with pinned CPU arithmetic (:mod:`emobench.pretrain.reproducible`; ``pinned_early``:
    its environment was set before torch was loaded)."""
    cfg = cfg or PretrainConfig()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainError(f"cannot create output folder {out}: {exc}") from None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # one thread and pinned kernels: the same weights on any x86-64 CPU, and no spin-waiting
    with reproducible_cpu(pinned_early) as cpu:
        model, processor, hist = train(cfg, progress)
        info = finish(out, cfg, model, processor, hist, wall0, cpu0)
        info["cpu"] = cpu
        if eval_root is not None and (Path(eval_root) / "annotations.csv").is_file():
            plain = tuple(m for m in eval_modes if m != "msce")
            ev = evaluate_zero_shot(out, eval_root, modes=plain, progress=progress)
            if "msce" in eval_modes:  # MSCE describes every gap first: a subset keeps it short
                ms = evaluate_zero_shot(
                    out, eval_root, modes=("msce",), limit=msce_limit, progress=progress
                )
                ev["msce"] = {**ms["msce"], "n_clips": ms["n_clips"]}
            info["eval"] = ev
            info["eval_root"] = str(eval_root)
            info["spread"] = list(spread or [])
    atomic_write_text(out / "recipe.json", to_json({"config": asdict(cfg), **info}) + "\n")
    write_card(out / "README.md", cfg, info)
    return info


__all__ = ["pretrain_synth_vlm"]
