"""What ``hf:`` needs to know about each VLM architecture, as data: a registry, not branches.

Every architecture runs through the same code; an :class:`Arch` entry (looked up by the
model config's ``model_type``) says only where it differs:

* ``mixed_frames``: one processor call may hold videos of different frame counts (the
  Qwen family flattens patches and keeps a grid per video). Elsewhere the video processor
  stacks a batch's videos into one tensor, so a batch holds videos of one frame count
  (:func:`emobench.models.hf.batching.plan_batches` buckets by it).
* ``fps_kwarg``: the processor takes the video rate as one ``fps`` keyword per call
  (Qwen2.5-Omni; it ignores ``video_metadata`` and assumes 2 fps otherwise), so a batch
  holds one rate; other processors read each video's ``video_metadata``.
* ``own_video_size``: the processor overrides its video processor's saved size with a
  class default (Qwen2.5-Omni: at least 128 × 28 × 28 pixels per frame, so 112 px faces
  are upscaled to 336 px, 9× the tokens); the folder's own video processor size is passed
  instead, unless ``size`` / ``min_pixels`` / ``max_pixels`` options are given.
* ``trained_frames``: the frame count the released model was trained on, where its card or
  config fixes one (Video-LLaVA: 8); recorded in the cell and warned about beyond it.
* ``load_class`` / ``sub_config``: a folder that ``AutoModelForImageTextToText`` does not
  load: Qwen2.5-Omni as distributed (thinker + talker + token2wav, ``Qwen2_5OmniConfig``)
  loads its thinker alone (``Qwen2_5OmniThinkerForConditionalGeneration`` with the
  folder's ``thinker_config``; the talker's weights are not read) and answers in text.

Image-only architectures (no video processor: Gemma 3, Idefics3) need no entry: the
adapter sees that the processor has no video processor and shows frames as images.
An unknown architecture gets the safe defaults (one frame count per batch; rates through
``video_metadata``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arch:
    """How one architecture differs from the defaults (module docstring)."""

    name: str
    mixed_frames: bool = False
    fps_kwarg: bool = False
    own_video_size: bool = False
    trained_frames: int | None = None
    load_class: str | None = None
    sub_config: str | None = None
    #: known limits, for the README table and the cell record
    notes: str = ""


#: model_type → entry; the architectures tests/test_hf_arch.py runs
ARCHITECTURES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("qwen2_vl", mixed_frames=True),
        Arch("qwen2_5_vl", mixed_frames=True),
        Arch("qwen3_vl", mixed_frames=True),
        Arch("qwen2_5_omni_thinker", mixed_frames=True, fps_kwarg=True, own_video_size=True),
        Arch(
            "qwen2_5_omni",
            mixed_frames=True,
            fps_kwarg=True,
            own_video_size=True,
            load_class="Qwen2_5OmniThinkerForConditionalGeneration",
            sub_config="thinker_config",
            notes="text from the thinker; the talker (speech) is not loaded",
        ),
        Arch("video_llava", trained_frames=8, notes="trained on 8 frames"),
        Arch("llava_next_video"),
        Arch("llava_onevision"),
        Arch("internvl"),
        Arch("smolvlm"),
        Arch("idefics3", notes="images only"),
        Arch("gemma3", notes="images only"),
    )
}

DEFAULT = Arch("default")


def model_type(config: Any) -> str:
    """The ``model_type`` of a loaded model's or a folder's config ("" when absent)."""
    return str(getattr(config, "model_type", "") or "")


def arch_of(config: Any) -> Arch:
    """The registry entry of ``config``'s architecture (:data:`DEFAULT` when unknown)."""
    return ARCHITECTURES.get(model_type(config), DEFAULT)


def sub_configs(config: Any) -> list[Any]:
    """``config`` and the sub-configs that may hold the visual token ids (a thinker's)."""
    out = [config]
    for name in ("thinker_config", "text_config"):
        sub = getattr(config, name, None)
        if sub is not None:
            out.append(sub)
    return out
