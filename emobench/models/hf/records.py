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

from emobench.models.chat import value_summary
from emobench.models.hf.architectures import ARCHITECTURES, DEFAULT, Arch

if TYPE_CHECKING:
    from emobench.models.hf.adapter import HFModel


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
