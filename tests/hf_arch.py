"""Tiny random models of the eleven VLM architectures of the study, built in code (no download).

Each ``build_<arch>(folder)`` writes a folder ``hf:<folder>`` loads like a downloaded
checkpoint: a config with tiny sizes, random weights, a byte-level BPE tokenizer trained
here (:func:`hf_tiny._tokenizer`) with the architecture's special tokens, the processor
(image, and video where the architecture has one) and a chat template that puts each
image / video placeholder where its item stands. Every folder is well under 1 MB and builds
in about a second. :data:`BUILDERS` maps a short name to its builder; the Qwen2.5-VL and
Idefics3 (SmolVLM v1) builders are :mod:`hf_tiny`'s.

SmolVLM2's processor needs ``num2words`` to write a video's frame count in words; where the
package is missing, :func:`build_smolvlm2` gives the processor module a stand-in (digits),
since the test checks the plumbing, not the wording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hf_tiny import CORPUS, _tokenizer, build_qwen25_vl, build_smolvlm

#: one text layer pair, as small as the architectures allow
TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 2048,
}


def chat_template(image: str, video: str | None, *, bos: str = "", newline: bool = True) -> str:
    """A ChatML template whose image / video items render as ``image`` / ``video``."""
    vid = video if video is not None else image
    nl = "\n" if newline else ""
    return (
        bos + "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for c in message['content'] %}"
        f"{{% if c['type'] == 'image' %}}{image}{nl}"
        f"{{% elif c['type'] == 'video' %}}{vid}{nl}"
        "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def _tok(special: list[str], **attrs: str):
    """The test tokenizer with ``special`` tokens (``<|endoftext|>``, ``<|im_start|>``,
    ``<|im_end|>`` first) and named special-token attributes (``image_token`` ...)."""
    tok = _tokenizer(special)
    if attrs:
        tok = type(tok)(
            tokenizer_object=tok._tokenizer,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            padding_side="left",
            extra_special_tokens=attrs,
        )
    tok.eos_token = "<|im_end|>"
    return tok


def _ids(tok, names: list[str]) -> dict[str, int]:
    return {t: tok.convert_tokens_to_ids(t) for t in names}


def _text(tok, ids: dict[str, int], **extra):
    return {
        **TEXT,
        "vocab_size": len(tok),
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        **extra,
    }


def _save(model, processor, folder: Path, ids: dict[str, int], seed_model=None) -> Path:
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_qwen3_vl(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    special = [*CHATML, "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = _tok(special)
    ids = _ids(tok, special)
    config = Qwen3VLConfig(
        text_config=_text(
            tok,
            ids,
            head_dim=16,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        ),
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 32,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    size = {"shortest_edge": 32 * 32, "longest_edge": 64 * 64}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, merge_size=2, size=size),
        video_processor=Qwen3VLVideoProcessor(patch_size=16, merge_size=2, size=size),
        tokenizer=tok,
        chat_template=chat_template(
            "<|vision_start|><|image_pad|><|vision_end|>",
            "<|vision_start|><|video_pad|><|vision_end|>",
            newline=False,
        ),
    )
    return _save(model, processor, folder, ids)


OMNI_SPECIAL = [
    *CHATML,
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
]


def _omni_parts(seed: int):
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    tok = _tok(
        OMNI_SPECIAL,
        image_token="<|IMAGE|>",
        video_token="<|VIDEO|>",
        audio_token="<|AUDIO|>",
        vision_bos_token="<|vision_bos|>",
        vision_eos_token="<|vision_eos|>",
        audio_bos_token="<|audio_bos|>",
        audio_eos_token="<|audio_eos|>",
    )
    ids = _ids(tok, OMNI_SPECIAL)
    thinker = {
        "text_config": _text(
            tok,
            ids,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },
        ),
        "vision_config": {
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [0],
        },
        "audio_config": {
            "num_mel_bins": 16,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "d_model": 16,
            "output_dim": 32,
            "max_source_positions": 64,
            "n_window": 4,
        },
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "audio_token_index": ids["<|AUDIO|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
        "user_token_id": ids["<|im_start|>"],
    }
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        feature_extractor=WhisperFeatureExtractor(feature_size=16),
        tokenizer=tok,
        chat_template=chat_template(
            "<|vision_bos|><|IMAGE|><|vision_eos|>",
            "<|vision_bos|><|VIDEO|><|vision_eos|>",
            newline=False,
        ),
    )
    return tok, ids, thinker, processor


def build_qwen25_omni_thinker(folder: Path, seed: int = 0) -> Path:
    """A Qwen2.5-Omni thinker alone (``Qwen2_5OmniThinkerConfig``)."""
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    tok, ids, thinker, processor = _omni_parts(seed)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**thinker)).eval()
    return _save(model, processor, folder, ids)


def build_qwen25_omni(folder: Path, seed: int = 0) -> Path:
    """A full Qwen2.5-Omni folder as distributed: ``Qwen2_5OmniConfig`` with thinker,
    talker and token2wav (speech output on)."""
    import torch
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    tok, ids, thinker, processor = _omni_parts(seed)
    talker = {
        **TEXT,
        "vocab_size": 64,
        "embedding_size": 32,
        "head_dim": 16,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
        },
        "audio_token_index": ids["<|AUDIO|>"],
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
        "tts_codec_start_token_id": 60,
        "tts_codec_end_token_id": 61,
        "tts_codec_pad_token_id": 62,
        "tts_codec_mask_token_id": 63,
        "tts_text_start_token_id": ids["<|im_start|>"],
        "tts_text_end_token_id": ids["<|im_end|>"],
        "tts_text_pad_token_id": ids["<|endoftext|>"],
    }
    token2wav = {
        "dit_config": {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 16,
            "ff_mult": 1,
            "emb_dim": 16,
            "num_embeds": 64,
            "mel_dim": 16,
            "enc_emb_dim": 16,
            "enc_dim": 16,
            "enc_channels": [16, 16, 16, 16, 48],
            "enc_attention_channels": 8,
            "enc_se_channels": 8,
            "look_ahead_layers": [0],
            "look_backward_layers": [0],
        },
        "bigvgan_config": {
            "mel_dim": 16,
            "upsample_initial_channel": 16,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_rates": [2],
            "upsample_kernel_sizes": [4],
        },
    }
    config = Qwen2_5OmniConfig(
        thinker_config=thinker, talker_config=talker, token2wav_config=token2wav
    )
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


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
