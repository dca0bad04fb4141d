"""``emobench-tiny-vlm``: a tiny generative VLM (Qwen2.5-VL architecture) that emobench
pre-trains itself on synthetic web data and ships as a Hugging Face model folder
(``emobench/models/weights/emobench-tiny-vlm``) for the ``hf:`` family.

Modules: :mod:`.build` (config, tokenizer, processor, chat template), :mod:`.corpus` (the
synthetic web examples), :mod:`.pretrain` (training, saving, card, zero-shot evaluation),
:mod:`.cli` (``emobench pretrain synth-vlm``). None is named ``adapter.py``: this is not a
model family, its output is loaded by ``hf:``.
"""
