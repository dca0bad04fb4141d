"""Contrastive VLMs (open_clip): the ``openclip:<arch>[@<weights>]`` model family and its
class prompts. The default ``emobench-tiny@synth-web`` is pre-trained by
:mod:`emobench.pretrain.synth_web` (``emobench pretrain synth-web``).

Submodules import torch/open_clip lazily; importing this package is cheap.
"""
