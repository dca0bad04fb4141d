"""Tiny random Qwen3-VL and Qwen2.5-Omni (thinker alone, and the full folder as distributed)
for the ``hf:`` architecture tests: see :mod:`hf_arch`."""

from __future__ import annotations

from pathlib import Path

from hf_tiny import CHATML, TEXT, _ids, _save, _text, _tok, chat_template


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
