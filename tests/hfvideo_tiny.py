"""Tiny random video classifiers for the ``hfvideo:`` tests and benchmark, built in code (no
download): config, random weights and (for VideoMAE) a processor saved with
``save_pretrained``, so ``hfvideo:<folder>`` loads them like downloaded checkpoints.
32 px, 4 frames, width 32, 2 layers: ~30-80k parameters, < 1 MB each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: ImageNet mean/std, as real VideoMAE checkpoints use (not the processor class default)
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

_WIDTH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}

#: architecture → (config class, model class, tiny config fields)
TINY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "videomae": (
        "VideoMAEConfig",
        "VideoMAEForVideoClassification",
        {"image_size": 32, "patch_size": 8, "num_frames": 4, "tubelet_size": 2,
         "intermediate_size": 64, **_WIDTH},
    ),
    "timesformer": (
        "TimesformerConfig",
        "TimesformerForVideoClassification",
        {"image_size": 32, "patch_size": 8, "num_frames": 4, "intermediate_size": 64, **_WIDTH},
    ),
    "vivit": (
        "VivitConfig",
        "VivitForVideoClassification",
        {"image_size": 32, "num_frames": 4, "tubelet_size": [2, 8, 8], "intermediate_size": 64,
         **_WIDTH},
    ),
    "vjepa2": (
        "VJEPA2Config",
        "VJEPA2ForVideoClassification",
        {"crop_size": 32, "patch_size": 8, "frames_per_clip": 4, "num_pooler_layers": 1,
         "pred_hidden_size": 32, "pred_num_attention_heads": 2, "pred_num_hidden_layers": 1,
         **_WIDTH},
    ),
}  # fmt: skip


def build_classifier(folder: Path, arch: str, seed: int = 0, **config: Any) -> Path:
    """Write a random tiny ``arch`` video classifier (:data:`TINY`) to ``folder``, without a
    processor; ``config`` overrides config fields."""
    import torch
    import transformers

    config_cls, model_cls, fields = TINY[arch]
    torch.manual_seed(seed)
    cfg = getattr(transformers, config_cls)(**{**fields, **config})
    model = getattr(transformers, model_cls)(cfg)
    folder = Path(folder)
    model.save_pretrained(folder)
    return folder


def build_videomae(
    folder: Path, *, image_size: int = 32, seed: int = 0, processor: bool = True, **config: Any
) -> Path:
    """A random tiny ``VideoMAEForVideoClassification`` (patch 8, tubelet 2, 4 frames) and
    its ``VideoMAEImageProcessor`` (crop ``image_size``, ImageNet mean/std) in ``folder``;
    ``config`` overrides :class:`~transformers.VideoMAEConfig` fields."""
    from transformers import VideoMAEImageProcessor

    folder = build_classifier(folder, "videomae", seed, image_size=image_size, **config)
    if processor:
        VideoMAEImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_mean=MEAN,
            image_std=STD,
        ).save_pretrained(folder)
    return folder
