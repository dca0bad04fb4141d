"""Tiny random generative VLMs for the ``hf:`` tests and benchmark, built in code (no download).

:func:`build_qwen25_vl` and :func:`build_smolvlm` write a model folder (config, random
weights, a byte-level BPE tokenizer trained here with the ``tokenizers`` library, the
processor and a chat template) that ``hf:<folder>`` loads like a downloaded checkpoint.
Each builds in well under a second and saves well under 1 MB.
"""

from __future__ import annotations

from pathlib import Path

#: Words the tokenizer is trained on (prompt, labels, answers), so they take few tokens.
CORPUS = [
    "What is the emotional state of the person in this video?",
    "Describe what changes in the face between these frames.",
    "Options: anger, disgust, fear, happiness, neutral, sadness, surprise, contempt.",
    "Answer with one word from the options.",
    "happiness sadness anger fear surprise disgust neutral contempt happy sad angry",
    "system user assistant The person looks",
]

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

#: Qwen2.5-VL's chat template (the parts emobench uses): text, image and video items.
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SMOL_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<row_1_col_1>",
]

SMOL_TEMPLATE = (
    "<|im_start|>{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %} {{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _tokenizer(special: list[str], vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on :data:`CORPUS`, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=special[2] if special[0] == "<|endoftext|>" else special[0],
        pad_token="<|endoftext|>",
        padding_side="left",
    )


def build_qwen25_vl(folder: Path, seed: int = 0) -> Path:
    """A tiny random Qwen2.5-VL (2 text layers, 1 vision block) in ``folder``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _tokenizer(QWEN_SPECIAL)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    head_dim = 16
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],  # sums to head_dim / 2
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
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
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    assert config.text_config.hidden_size // config.text_config.num_attention_heads == head_dim
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=tok,
        chat_template=QWEN_TEMPLATE,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_smolvlm(folder: Path, seed: int = 0) -> Path:
    """A tiny random SmolVLM (v1: the Idefics3 architecture and processor; SmolVLM2's
    processor needs ``num2words``) in ``folder``; images only."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tok = _tokenizer(SMOL_SPECIAL)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SMOL_SPECIAL}
    tok.add_special_tokens({"additional_special_tokens": SMOL_SPECIAL[1:]})
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "bos_token_id": ids["<|im_start|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
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
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    size = {"longest_edge": 32}
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            size=size, max_image_size=size, do_image_splitting=False
        ),
        tokenizer=tok,
        chat_template=SMOL_TEMPLATE,
        image_seq_len=4,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --- shared by the builders of hf_arch.py / hf_arch_qwen.py (ChatML tokenizers)

#: text sizes shared by the tiny architectures (hf_arch.py, hf_arch_qwen.py)
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


def _save(model, processor, folder: Path, ids: dict[str, int]) -> Path:
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
