"""``emobench pretrain synth-vlm``: ``emobench-tiny-vlm``, a tiny generative VLM (Qwen2.5-VL
architecture) that emobench pre-trains itself on synthetic web data and ships as a Hugging
Face model folder (``emobench/models/weights/emobench-tiny-vlm``) for the ``hf:`` family.

Modules: :mod:`.config` (the recipe), :mod:`.build` (architecture, tokenizer, processor,
chat template), :mod:`.corpus` (the synthetic web examples) with :mod:`.descriptions` (what
a face shows, in words) and :mod:`.prompts` (the user turns), :mod:`.batches` (processor
batches with answer labels), :mod:`.distill` (stage 1: the tiny CLIP's eyes),
:mod:`.train` (stage 2 and the run), :mod:`.folder` (the saved model folder),
:mod:`.evaluate` (zero-shot through ``hf:``), :mod:`.spread` (other seeds' runs),
:mod:`.card` (the model card), :mod:`.command` (the whole run), :mod:`.cli` (the Typer
command). This is not a model family: its output is loaded by ``hf:``.
"""
