"""The model card of ``emobench-tiny@synth-web``: recipe, web pool statistics, timings and
zero-shot metrics."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emobench.pretrain.reproducible import describe
from emobench.pretrain.synth_web.config import ARCH, TAG, WEIGHTS_NAME, PretrainConfig


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
        "toward frequent words. See `emobench/pretrain/synth_web/config.py` for the recipe.",
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
        f"on {info['threads']} CPU thread{'s' if info['threads'] != 1 else ''}",
        f"- arithmetic: {describe(info.get('cpu', {}))}",
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


__all__ = ["write_card"]
