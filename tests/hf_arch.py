"""Tiny random models of the eleven VLM architectures of the study, built in code (no download).

Each ``build_<arch>(folder)`` writes a folder ``hf:<folder>`` loads like a downloaded
checkpoint: a config with tiny sizes, random weights, a byte-level BPE tokenizer trained
here (:func:`hf_tiny._tokenizer`) with the architecture's special tokens, the processor
(image, and video where the architecture has one) and a chat template that puts each
image / video placeholder where its item stands. Every folder is well under 1 MB and builds
in about a second. :data:`BUILDERS` maps a short name to its builder; the Qwen2.5-VL and
Idefics3 (SmolVLM v1) builders are :mod:`hf_tiny`'s, the Qwen3-VL and Omni ones
:mod:`hf_arch_qwen`'s.

SmolVLM2's processor needs ``num2words`` to write a video's frame count in words; where the
package is missing, :func:`build_smolvlm2` gives the processor module a stand-in (digits),
since the test checks the plumbing, not the wording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hf_arch_qwen import build_qwen3_vl, build_qwen25_omni, build_qwen25_omni_thinker
from hf_tiny import (
    CHATML,
    CORPUS,
    _ids,
    _save,
    _text,
    _tok,
    build_qwen25_vl,
    build_smolvlm,
    chat_template,
)


def _clip_vision(image_size: int = 28, patch: int = 14, layers: int = 2) -> dict:
    return {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": patch,
        "projection_dim": 32,
    }


def _siglip_vision(image_size: int = 28, patch: int = 14, layers: int = 1) -> dict:
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": patch,
    }


LLAVA_SPECIAL = [*CHATML, "<image>", "<video>"]


def build_video_llava(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        VideoLlavaConfig,
        VideoLlavaForConditionalGeneration,
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    tok = _tok(LLAVA_SPECIAL)
    ids = _ids(tok, LLAVA_SPECIAL)
    side = {"shortest_edge": 28}
    crop = {"height": 28, "width": 28}
    config = VideoLlavaConfig(
        vision_config=_clip_vision(),
        text_config={**_text(tok, ids), "model_type": "llama"},
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_seq_length=4,
        video_seq_length=8 * 5,
    )
    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(config).eval()
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(size=side, crop_size=crop),
        video_processor=VideoLlavaVideoProcessor(size=side, crop_size=crop),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("<image>", "<video>"),
    )
    return _save(model, processor, folder, ids)


def build_llava_next_video(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    tok = _tok(LLAVA_SPECIAL)
    ids = _ids(tok, LLAVA_SPECIAL)
    side = {"shortest_edge": 28}
    crop = {"height": 28, "width": 28}
    pinpoints = [[28, 28], [28, 56], [56, 28]]
    config = LlavaNextVideoConfig(
        vision_config=_clip_vision(),
        text_config={**_text(tok, ids), "model_type": "llama"},
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=pinpoints,
        image_seq_length=4,
        video_seq_length=1,
    )
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(config).eval()
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size=side, crop_size=crop),
        image_processor=LlavaNextImageProcessor(
            size=side, crop_size=crop, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("<image>", "<video>"),
    )
    return _save(model, processor, folder, ids)


def build_llava_onevision(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tok = _tok(LLAVA_SPECIAL)
    ids = _ids(tok, LLAVA_SPECIAL)
    size = {"height": 28, "width": 28}
    pinpoints = [[28, 28], [28, 56], [56, 28], [56, 56]]
    config = LlavaOnevisionConfig(
        vision_config=_siglip_vision(),
        text_config={**_text(tok, ids), "model_type": "qwen2"},
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tok,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        chat_template=chat_template("<image>", "<video>"),
    )
    return _save(model, processor, folder, ids)


INTERNVL_SPECIAL = [*CHATML, "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def build_internvl(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    tok = _tok(
        INTERNVL_SPECIAL,
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
    )
    ids = _ids(tok, INTERNVL_SPECIAL)
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": [28, 28],
            "patch_size": [14, 14],
        },
        text_config={**_text(tok, ids), "model_type": "qwen2"},
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=1,
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    size = {"height": 28, "width": 28}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tok,
        image_seq_length=1,
        chat_template=chat_template("<IMG_CONTEXT>", "<video>"),
    )
    return _save(model, processor, folder, ids)


GEMMA_SPECIAL = [*CHATML, "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def build_gemma3(folder: Path, seed: int = 0) -> Path:
    """Gemma 3 (images only: no video processor); 4 soft tokens per image here (256 in
    the released config)."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    tok = _tok(
        GEMMA_SPECIAL,
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    ids = _ids(tok, GEMMA_SPECIAL)
    config = Gemma3Config(
        text_config={
            **_text(tok, ids),
            "head_dim": 16,
            "sliding_window": 64,
            "layer_types": ["sliding_attention", "full_attention"],
        },
        vision_config=_siglip_vision(image_size=56, patch=14),
        mm_tokens_per_image=4,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": 56, "width": 56}),
        tokenizer=tok,
        image_seq_length=4,
        chat_template=chat_template("<start_of_image>", None),
    )
    return _save(model, processor, folder, ids)


SMOL2_SPECIAL = [
    *CHATML,
    "<end_of_utterance>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<row_1_col_1>",
    "<video>",
]


def _num2words_stand_in() -> None:
    from transformers.models.smolvlm import processing_smolvlm as mod

    if getattr(mod, "num2words", None) is None:
        mod.num2words = str


def build_smolvlm2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    _num2words_stand_in()
    tok = _tok(SMOL2_SPECIAL)
    ids = _ids(tok, SMOL2_SPECIAL)
    tok.add_special_tokens({"additional_special_tokens": SMOL2_SPECIAL[3:]})
    config = SmolVLMConfig(
        text_config={**_text(tok, ids), "model_type": "llama"},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        image_token_id=ids["<image>"],
        scale_factor=2,
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    size = {"longest_edge": 32}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size=size, max_image_size=size, do_image_splitting=False
        ),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tok,
        image_seq_len=4,
        chat_template=chat_template("<image>", "<video>"),
    )
    return _save(model, processor, folder, ids)


#: short name → builder, in the order of the issue's list
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "qwen2_5_vl": build_qwen25_vl,
    "qwen3_vl": build_qwen3_vl,
    "qwen2_5_omni_thinker": build_qwen25_omni_thinker,
    "qwen2_5_omni": build_qwen25_omni,
    "video_llava": build_video_llava,
    "llava_next_video": build_llava_next_video,
    "llava_onevision": build_llava_onevision,
    "internvl": build_internvl,
    "gemma3": build_gemma3,
    "smolvlm2": build_smolvlm2,
    "idefics3": build_smolvlm,
}

__all__ = ["BUILDERS", "CORPUS", "chat_template"]
