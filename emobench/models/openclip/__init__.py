"""Contrastive VLMs (open_clip): the ``openclip:<arch>[@<weights>]`` model family, class
prompts, and the synthetic web pre-training of the default ``emobench-tiny@synth-web``.

Submodules import torch/open_clip lazily; importing this package is cheap.
"""
