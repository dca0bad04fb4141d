"""The architecture of ``emobench-tiny-vlm``: a tiny Qwen2.5-VL, its tokenizer and processor.

Everything is built in code, from a config (no download): a byte-level BPE tokenizer
trained here (``tokenizers``) on the pre-training corpus's texts, Qwen2.5-VL's special
tokens and chat template, and ``Qwen2_5_VLProcessor`` with image and video processors whose
pixel budget turns each pair of 112 px benchmark frames into a handful of visual tokens.
The result is a standard Hugging Face model folder (``save_pretrained``) that the ``hf:``
family loads with ``AutoProcessor`` / ``AutoModelForImageTextToText`` like any download.

Why Qwen2.5-VL: it takes videos natively (temporal patches of 2 frames, 3-D rope), which
is what the ``hf:`` family's video input and MSCE's gap videos exercise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Qwen2.5-VL's special tokens (the ones its chat template and processor use).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen2.5-VL's chat template, as the released checkpoints ship it (default system turn,
#: image / video placeholders in content order, optional "Picture n:" ids).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class ArchConfig:
    """Sizes of the tiny Qwen2.5-VL (defaults: the shipped model)."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 320
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_hidden: int = 64
    vision_intermediate: int = 192
    vision_depth: int = 2
    vision_heads: int = 2
    patch_size: int = 14
    #: the processors' pixel budget per frame: every frame (the 64 px face crop the model
    #: is used with) becomes 84 px, 6 × 6 patches, 3 × 3 tokens per temporal patch (2
    #: frames) after the 2 × 2 merge
    min_pixels: int = 84 * 84
    max_pixels: int = 84 * 84
    max_positions: int = 4096

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with Qwen2.5-VL's special tokens, as
    a ``PreTrainedTokenizerFast`` (left padding, ``<|endoftext|>`` pad, ``<|im_end|>`` eos).

    Byte-level: any text encodes (unseen words split into bytes), so prompts a user writes
    never fail; the corpus's own words (questions, options, answers) take few tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
        additional_special_tokens=list(SPECIAL_TOKENS[1:2] + SPECIAL_TOKENS[3:]),
    )


def build_processor(tokenizer: Any, arch: ArchConfig) -> Any:
    """Qwen2.5-VL's processor around ``tokenizer`` with the tiny model's pixel budget."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    pixels = {
        "min_pixels": arch.min_pixels,
        "max_pixels": arch.max_pixels,
        "patch_size": arch.patch_size,
        "merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        # frames are already within the pixel budget: no per-frame cap to apply (saying so
        # also keeps transformers from warning about it on every run)
        video_processor=Qwen2VLVideoProcessor(
            **pixels, do_sample_frames=False, cap_pixels_per_frame=False
        ),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer: Any, arch: ArchConfig, seed: int) -> Any:
    """A freshly initialised tiny ``Qwen2_5_VLForConditionalGeneration`` (seeded)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    half = arch.head_dim // 2  # mrope sections (temporal, height, width) sum to head_dim / 2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": arch.hidden_size,
            "intermediate_size": arch.intermediate_size,
            "num_hidden_layers": arch.num_layers,
            "num_attention_heads": arch.num_heads,
            "num_key_value_heads": arch.num_kv_heads,
            "max_position_embeddings": arch.max_positions,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": section,
            },
            "tie_word_embeddings": True,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": arch.vision_depth,
            "hidden_size": arch.vision_hidden,
            "intermediate_size": arch.vision_intermediate,
            "num_heads": arch.vision_heads,
            "patch_size": arch.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": arch.patch_size * 8,
            "out_hidden_size": arch.hidden_size,
            "fullatt_block_indexes": list(range(arch.vision_depth)),
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id = ids["<|im_end|>"]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.bos_token_id = ids["<|endoftext|>"]
    gen.do_sample = False
    return model


__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "ArchConfig",
    "build_model",
    "build_processor",
    "train_tokenizer",
]
