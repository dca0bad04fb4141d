"""A tiny random VideoMAE video classifier for the ``hfvideo:`` tests and benchmark, built in
code (no download): config, random weights and a processor saved with ``save_pretrained``,
so ``hfvideo:<folder>`` loads it like a downloaded checkpoint. ~30k parameters, < 1 MB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: ImageNet mean/std, as real VideoMAE checkpoints use (not the processor class default)
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def build_videomae(
    folder: Path,
    *,
    image_size: int = 32,
    num_frames: int = 4,
    seed: int = 0,
    processor: bool = True,
    **config: Any,
) -> Path:
    """Write a random ``VideoMAEForVideoClassification`` (2 layers, width 32, patch 8,
    tubelet 2) and its ``VideoMAEImageProcessor`` (crop ``image_size``) to ``folder``;
    ``config`` overrides :class:`~transformers.VideoMAEConfig` fields (e.g. the
    VideoMAE-Base sizes in the benchmark)."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    settings = {
        "image_size": image_size,
        "patch_size": 8,
        "num_frames": num_frames,
        "tubelet_size": 2,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        **config,
    }
    torch.manual_seed(seed)
    model = VideoMAEForVideoClassification(VideoMAEConfig(**settings))
    folder = Path(folder)
    model.save_pretrained(folder)
    if processor:
        VideoMAEImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_mean=MEAN,
            image_std=STD,
        ).save_pretrained(folder)
    return folder
