"""Options and request helpers of the ``hf:`` family (see :mod:`emobench.models.hf.adapter`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from emobench.chat.request import DEFAULT_INSTRUCTION, DEFAULT_QUESTION
from emobench.models.base import ClipInput
from emobench.settings import Bool, Float, PositiveInt, Seed, StrictModel
from emobench.video.frames import centre_crop

#: bump when the meaning of a cached entry changes
CACHE_VERSION = 1

#: Model calls made in this process (generate / forward batches), for tests and benchmarks.
MODEL_CALLS = {"generate": 0, "forward": 0}


class HFOptions(StrictModel):
    """``[models.options]`` of ``hf:<model>`` (see the module docstring)."""

    input: Literal["video", "images"] = "video"
    scoring: Literal["generate", "loglik"] = "generate"
    question: str = DEFAULT_QUESTION
    instruction: str = DEFAULT_INSTRUCTION
    option_order: Literal["fixed", "permuted"] = "fixed"
    #: prepended to each label to form the scored answer string (loglik)
    answer_prefix: str = ""
    max_new_tokens: PositiveInt = 8
    length_norm: Bool = False
    batch_size: PositiveInt = 4
    #: the throughput path (emobench.models.hf.pipeline): length bucketing over
    #: ``batch_size × bucket_batches`` clips per call, the processor one batch ahead in a
    #: thread; ``false``: the naive path (same outputs), for comparison
    pipeline: Bool = True
    bucket_batches: PositiveInt = 8
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device_map: str | None = None
    attn_implementation: str | None = None
    revision: str | None = None
    trust_remote_code: Bool = False
    min_pixels: PositiveInt | None = None
    max_pixels: PositiveInt | None = None
    size: dict[str, int] | None = None
    #: frame rate told to the processor for videos (None: the presented frames' own rate)
    fps: Annotated[Float, Field(gt=0)] | None = None
    #: decode side in pixels (None: the model folder's emobench.json, else the video's size)
    frame_size: Annotated[int, Field(ge=8, le=4096)] | None = None
    #: centre crop side in pixels of every frame shown to the model, 0: none (None: the
    #: model folder's emobench.json, else none)
    crop: Annotated[int, Field(ge=0, le=4096)] | None = None
    cache: Bool = True
    #: answer cache folder (default: ``<run cache>/hf-generations``)
    cache_dir: str | None = None
    seed: Seed = 0
    msce_describer: str | None = None
    #: how stage 1 shows a gap's frames to the describer: one video or images (default: the
    #: describer's own ``input``; image-only describers such as SmolVLM need "images")
    msce_describer_input: Literal["video", "images"] | None = None
    msce_describe_prompt: str | None = None
    msce_max_new_tokens: PositiveInt = 48
    gap_frames: PositiveInt = 4
    # --- fine-tuning (emobench.models.hf.finetune): "lora" trains LoRA adapters in fit()
    finetune: Literal["none", "lora"] = "none"
    lora_r: PositiveInt = 8
    lora_alpha: Annotated[Float, Field(gt=0)] = 16.0
    lora_dropout: Annotated[Float, Field(ge=0, lt=1)] = 0.05
    #: leaf names of the language model's linears to adapt (default: its attention and MLP
    #: projections, found under the language model only, never in the vision tower)
    lora_targets: Annotated[list[str], Field(min_length=1)] | None = None
    #: also adapt every linear of the vision tower's last N blocks
    lora_vision_blocks: Annotated[int, Field(ge=0, le=1024)] = 0
    #: K frames per training clip (TSN segment-random per epoch; segment centres for val)
    finetune_frames: PositiveInt = 8
    #: overrides of the run's [train] table for the fine-tuning
    finetune_epochs: PositiveInt | None = None
    finetune_crt_epochs: PositiveInt | None = None
    finetune_lr: Annotated[Float, Field(gt=0)] | None = None
    finetune_batch_size: PositiveInt | None = None
    finetune_grad_accum: PositiveInt = 1
    #: weight of the answer-token language-model loss added to the recipe's class loss
    finetune_lm_weight: Annotated[Float, Field(ge=0)] = 1.0
    #: decoupled-crt stage 2: LoRA of the last ``stage2_layers`` LM layers, or a delta on
    #: the LM-head rows of the label tokens
    decoupled_stage2: Literal["last-layers", "label-rows"] = "last-layers"
    stage2_layers: PositiveInt = 1

    @model_validator(mode="after")
    def _finetune_settings_need_lora(self) -> HFOptions:
        """A fine-tuning setting without ``finetune = "lora"`` would silently do nothing."""
        if self.finetune == "none":
            given = sorted(self.model_fields_set & FINETUNE_SETTINGS)
            if given:
                raise ValueError(f'{given[0]} needs finetune = "lora" (it is "none")')
        return self


#: The options that only mean something with ``finetune = "lora"``.
FINETUNE_SETTINGS = frozenset(
    name
    for name in HFOptions.model_fields
    if name.startswith(("lora_", "finetune_", "decoupled_", "stage2_"))
)


def crop_clip(clip: ClipInput, side: int | None) -> ClipInput:
    """``clip`` with its frames and gap frames centre-cropped to ``side`` pixels (frames
    no larger, and ``side`` 0 or None, unchanged)."""
    if not side:
        return clip
    from dataclasses import replace

    def cut(frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(centre_crop(frames, side))

    return replace(clip, frames=cut(clip.frames), between=tuple(cut(b) for b in clip.between))


def chat_inputs(
    processor: Any, content: list[dict[str, Any]], fps: float | None
) -> tuple[str, list[np.ndarray], list[np.ndarray], list[dict[str, Any]]]:
    """One user turn of content items (``{"type": "image"|"video"|"text", ...}``, in order)
    → its prompt (the chat template with the generation prompt, image/video placeholders
    where the items stand), its images, its videos and their metadata (told ``fps``, never
    re-sampled), in the order the processor expects them."""
    items = [
        {"type": "text", "text": c["text"]} if c["type"] == "text" else {"type": c["type"]}
        for c in content
    ]
    msgs = [{"role": "user", "content": items}]
    prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    images = [np.asarray(c["image"]) for c in content if c["type"] == "image"]
    videos = [np.asarray(c["video"]) for c in content if c["type"] == "video"]
    rate = float(fps or 1.0)
    metas = [
        {"fps": rate, "total_num_frames": len(v), "frames_indices": list(range(len(v)))}
        for v in videos
    ]
    return prompt, images, videos, metas
