"""Writing the trained model as a Hugging Face model folder that ``hf:`` loads: the
``save_pretrained`` files, the preprocessing note, and the figures the card reports."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from emobench.io import atomic_write_text, to_json
from emobench.models.hf.loading import PREPROCESS_FILE
from emobench.pretrain.synth_vlm.config import PretrainConfig
from emobench.pretrain.synth_vlm.corpus import Corpus


def save_folder(model: Any, processor: Any, out: Path) -> list[Path]:
    """``save_pretrained`` of model (float32 safetensors) and processor into ``out``,
    written to a temporary sibling folder first and moved in file by file, so a failed
    save never leaves a half-written model behind."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        model.save_pretrained(tmp)
        processor.tokenizer.padding_side = "left"
        processor.save_pretrained(tmp)
        for p in sorted(Path(tmp).iterdir()):
            target = out / p.name
            shutil.move(str(p), str(target))
            written.append(target)
    return written


def finish(
    out: Path,
    cfg: PretrainConfig,
    model: Any,
    processor: Any,
    hist: dict,
    wall0: float,
    cpu0: float,
) -> dict[str, Any]:
    """Save the folder; the training figures the card reports."""
    import torch

    info: dict[str, Any] = {
        "history": hist,
        "seconds_wall": time.perf_counter() - wall0,
        "seconds_cpu": time.process_time() - cpu0,
        "final_loss": hist["loss"][-1],
        "first_loss": hist["loss"][0],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "torch": torch.__version__,
    }
    save_folder(model, processor, out)
    # how hf: shows benchmark frames to it: decoded at the render size, the face crop
    pre = {"frame_size": cfg.corpus.frame_size, "crop": cfg.corpus.crop}
    atomic_write_text(out / PREPROCESS_FILE, to_json({"preprocess": pre}) + "\n")
    weights = out / "model.safetensors"
    info["bytes"] = weights.stat().st_size
    info["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    info["caption_stats"] = Corpus(cfg.corpus).caption_stats(11000)
    return info


__all__ = ["finish", "save_folder"]
