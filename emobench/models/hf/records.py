"""The ``hf:`` cell record's account of what the model was shown.

Every answer (computed or read from the cache) carries ``visual_tokens``, ``pixels`` (per
frame) and ``input`` (``video`` / ``images`` / ``text``: how the frames reached the
processor, :mod:`emobench.models.hf.encoding`). :func:`note_answers` files them by role —
the classifier's answers and MSCE's describer's apart — so a cell's ``visual_tokens``
counts what the classifier saw and ``describer_visual_tokens`` what the describer saw.
:func:`cell_extras` adds the architecture, how frames were shown and, where the released
model fixes one, the frame count it was trained on; :func:`check_frames` warns once per
model when a cell shows more frames than that.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from emobench.chat.prompt import value_summary
from emobench.models.hf.architectures import ARCHITECTURES, DEFAULT, Arch

if TYPE_CHECKING:
    from emobench.models.hf.protocol import RecordedModel as HFModel


def note_answers(stats: dict[str, Any], role: str, entries: list[dict[str, Any]]) -> None:
    """File each answer's visual tokens, pixels per frame and input form under ``role``
    (``"classifier"``: the cell's own keys; ``"describer"``: ``stats["describer"]``)."""
    bin_ = stats if role == "classifier" else stats["describer"]
    shown = stats["input_shown"] if role == "classifier" else stats["describer"]["input"]
    for e in entries:
        if e.get("visual_tokens") is not None and e.get("input") != "text":
            bin_["visual_tokens"].append(e["visual_tokens"])
        bin_["pixels"] += list(e.get("pixels", []))
        if e.get("input"):
            shown.add(e["input"])


def folder_arch(m: HFModel) -> tuple[str, Arch]:
    """The model folder's ``model_type`` (read from its config.json, no model loaded) and
    its registry entry."""
    try:
        cfg = json.loads((m.folder / "config.json").read_text())
        name = str(cfg.get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        name = ""
    return name, ARCHITECTURES.get(name, DEFAULT)


def _shown(values: set[str]) -> str | None:
    kinds = sorted(values - {"text"}) or sorted(values)
    return "+".join(kinds) if kinds else None


def cell_extras(m: HFModel) -> dict[str, Any]:
    """The architecture, how frames reached the processor (``images`` for a video option
    on an image-only model) and the trained frame count where known."""
    name, arch = folder_arch(m)
    out: dict[str, Any] = {
        "architecture": name or None,
        "input_shown": _shown(m._stats["input_shown"]),
    }
    if arch.trained_frames is not None:
        out["trained_frames"] = arch.trained_frames
    return out


def describer_record(m: HFModel) -> dict[str, Any]:
    """MSCE's describer's visual tokens, pixels per frame and input form (its own record
    when ``msce_describer`` names another model, else this model's describer calls)."""
    d = (m.describer or m)._stats["describer"]
    return {
        "describer_visual_tokens": value_summary(d["visual_tokens"]),
        "describer_pixels_per_frame": value_summary(d["pixels"]),
        "describer_input_shown": _shown(d["input"]),
    }


def check_frames(m: HFModel, frames: list[int]) -> None:
    """Warn (once per model) when clips show more frames than the released model was
    trained on (:attr:`Arch.trained_frames`)."""
    if not frames or getattr(m, "_frames_warned", False):
        return
    name, arch = folder_arch(m)
    limit = arch.trained_frames
    if limit is None or max(frames) <= limit:
        return
    m._frames_warned = True
    warn = getattr(m, "_warn", None)
    if warn is not None:
        warn(
            f"hf:{m.name}: {name} was trained on {limit} frames per video; this cell shows "
            f"up to {max(frames)} (recorded as trained_frames in the cell record)"
        )


def cell_record(m: HFModel) -> dict[str, Any]:
    """The cell record of an ``hf:`` model: what it was shown, how, and what it computed."""
    s = m._stats
    summary = value_summary
    info: dict[str, Any] = {
        "model": f"hf:{m.name}",
        "model_hash": m._hash,
        "scoring": m.opts.scoring,
        "input": m.opts.input,
        "frame_size": m.frame_size,
        "crop": m.crop or None,
        "prompt": s["prompt"],
        "option_order": m.opts.option_order,
        "options": s["options"],
        "distinct_option_orders": len(s["orders"]),
        "frames_per_clip": summary(s["frames"]),
        "pixels_per_frame": summary(s["pixels"]),
        "fps": summary(s["fps"]),
        "visual_tokens": summary(s["visual_tokens"]),
        **cell_extras(m),
        "model_calls": s["model_calls"],
        "cache_hits": s["cache_hits"],
        "cache_invalid": s.get("cache_invalid", 0),
        "processor": m._processor_kwargs(),
        "pipeline": m.opts.pipeline,
        "attn_implementation": m._attn_implementation(),
        "padding_fraction": _fraction(s["pad_tokens"], s["tokens"]),
        "padding_fraction_unbucketed": _fraction(
            s["unbucketed_pad_tokens"], s["unbucketed_tokens"]
        ),
        "prefetch_peak": s["prefetch_peak"],
        "processor_wait_s": round(s["processor_wait_s"], 3),
    }
    if m._adapter is not None:
        o = m.opts
        info["finetune"] = {
            "method": "lora",
            "adapter": m._adapter.fingerprint,
            "folder": m._adapter.folder.name,
            "trained_now": m._adapter.trained_now,
            "lora_r": o.lora_r,
            "lora_alpha": o.lora_alpha,
            "lora_dropout": o.lora_dropout,
            "lora_targets": o.lora_targets or "language-model attention + MLP projections",
            "lora_vision_blocks": o.lora_vision_blocks,
            "finetune_frames": o.finetune_frames,
            "decoupled_stage2": o.decoupled_stage2,
            "training": m._adapter.summary,
        }
    if m.opts.scoring == "loglik":
        info["length_norm"] = m.opts.length_norm
        info["answers"] = [m.opts.answer_prefix + lb for lb in m.labels]
    else:
        info["max_new_tokens"] = m.opts.max_new_tokens
    if s["describer_calls"] or m.describer is not None:
        info["describer"] = f"hf:{m.describer.name}" if m.describer else "self"
        info["describer_calls"] = s["describer_calls"]
        info.update(describer_record(m))
        if m.describer is not None:
            d = m.describer._stats
            info["describer_model_calls"] = d["model_calls"]
            info["describer_cache_hits"] = d["cache_hits"]
    return info


def _fraction(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
