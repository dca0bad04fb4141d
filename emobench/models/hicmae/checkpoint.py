"""Reading HiCMAE checkpoints: the network's shape from tensor shapes, the class order of
a fine-tuned head, and loading the weights into :class:`~.network.HiCMAE`.

Two layouts are read (``.pth`` through :func:`emobench.models.videovit.read_state_dict`,
i.e. ``weights_only=True`` with only ``argparse.Namespace`` allowed, or ``.safetensors``):

* **fine-tuned** (the authors' ``run_class_finetuning_av.py`` or an emobench fine-tune):
  ``encoder.*`` (+ ``encoder_audio.*``, ``encoder_fusion.*``, ``audio_layer_weights``),
  ``video_layer_weights``, ``fc_norm``, ``head``. The head's input width says the
  modality: ``2 (D + D_a)`` audio-visual, ``D`` emobench's visual variant.
* **pre-trained** (the released VoxCeleb2 ``checkpoint-99.pth``): the encoders and the
  fusion blocks under the same names, plus decoders that fine-tuning drops; no head.

Read from the shapes: widths, depths, MLP width, patch and tubelet size, whether the
attention has q/v biases, the number of classes. Not stored (the position tables are fixed
sinusoids, attention heads leave no trace): heads (``D / 64``, as in every released size),
frame side (160), frames (16), spectrogram frames (256) and mel bins (128) come from the
released configuration unless options say otherwise.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from emobench.models.hicmae.network import HiCMAEConfig
from emobench.models.hicmae.options import HiCMAEError
from emobench.models.videovit import CheckpointError, StateDict, read_state_dict, strip_prefixes

_BLOCK = re.compile(r"^(encoder|encoder_audio|encoder_fusion)\.(blocks|blocks_audio)\.(\d+)\.")


def read_checkpoint(path: str, where: str) -> dict[str, Any]:
    """The checkpoint's tensors with a ``module.`` (DistributedDataParallel) prefix removed;
    every problem is one :class:`HiCMAEError` line naming ``where``."""

    try:
        state: StateDict = read_state_dict(path, where)
    except CheckpointError as exc:
        raise HiCMAEError(str(exc)) from None
    tensors = strip_prefixes(state.tensors, ("module.",))
    if "encoder.patch_embed.proj.weight" not in tensors:
        raise HiCMAEError(
            f"{where}: not a HiCMAE checkpoint (no encoder.patch_embed.proj.weight among "
            f"{len(tensors)} tensors)"
        )
    return tensors


def _count(tensors: dict[str, Any], module: str, blocks: str = "blocks") -> int:
    ids = {
        int(m.group(3))
        for k in tensors
        if (m := _BLOCK.match(k)) and m.group(1) == module and m.group(2) == blocks
    }
    return max(ids) + 1 if ids else 0


def head_modality(tensors: dict[str, Any]) -> str | None:
    """``audio-visual`` / ``visual`` for a fine-tuned head (by its input width), None for a
    pre-trained checkpoint (no head)."""
    head = tensors.get("head.weight")
    if head is None:
        return None
    dim = int(tensors["encoder.patch_embed.proj.weight"].shape[0])
    return "visual" if int(head.shape[1]) == dim else "audio-visual"


def config_from_tensors(
    tensors: dict[str, Any], modality: str, num_classes: int, where: str, **overrides: Any
) -> HiCMAEConfig:
    """The network's shape (module docstring); ``overrides`` (not None) replace defaults
    that the tensors cannot give (heads, frame side, frames, ...)."""
    emb = tensors["encoder.patch_embed.proj.weight"]  # (D, 3, tubelet, p, p)
    dim = int(emb.shape[0])
    fields: dict[str, Any] = {
        "num_classes": num_classes,
        "modality": modality,
        "dim": dim,
        "depth": _count(tensors, "encoder"),
        "heads": max(1, dim // 64),
        "tubelet": int(emb.shape[2]),
        "patch_size": int(emb.shape[3]),
        "qkv_bias": "encoder.blocks.0.attn.q_bias" in tensors,
    }
    fc1 = tensors.get("encoder.blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        fields["mlp_hidden"] = int(fc1.shape[0])
    if modality == "audio-visual":
        emb_a = tensors.get("encoder_audio.patch_embed.proj.weight")  # (D_a, 1, p, p)
        if emb_a is None:
            raise HiCMAEError(
                f"{where}: modality 'audio-visual' needs the audio encoder, and the "
                "checkpoint has none (encoder_audio.*)"
            )
        dim_a = int(emb_a.shape[0])
        fc1a = tensors.get("encoder_audio.blocks.0.mlp.fc1.weight")
        fields.update(
            dim_audio=dim_a,
            depth_audio=_count(tensors, "encoder_audio"),
            heads_audio=max(1, dim_a // 64),
            audio_patch=int(emb_a.shape[2]),
            fusion_depth=_count(tensors, "encoder_fusion"),
            fusion_heads=max(1, dim // 64),
            mlp_hidden_audio=int(fc1a.shape[0]) if fc1a is not None else 4 * dim_a,
        )
        if fields["fusion_depth"] == 0:
            raise HiCMAEError(f"{where}: the checkpoint has no fusion blocks (encoder_fusion.*)")
    if fields["depth"] == 0:
        raise HiCMAEError(f"{where}: the checkpoint has no encoder blocks (encoder.blocks.*)")
    cfg = HiCMAEConfig(**fields)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "heads" in given and "fusion_heads" not in given:
        given["fusion_heads"] = given["heads"]
    if "heads" in given and "heads_audio" not in given:
        given["heads_audio"] = given["heads"]
    cfg = replace(cfg, **given)
    for width, heads, what in ((cfg.dim, cfg.heads, "heads"), (cfg.dim_audio, cfg.heads_audio,
                               "heads (audio)")):  # fmt: skip
        if width % heads:
            raise HiCMAEError(f"{where}: width {width} is not divisible by {heads} {what}")
    return cfg


def load_weights(net: Any, tensors: dict[str, Any], pretrained: bool, where: str) -> list[str]:
    """Copy ``tensors`` into ``net``. A fine-tuned checkpoint must give every parameter of
    the network (strict); a pre-trained one every encoder and fusion parameter, the layer
    weights, ``fc_norm`` and ``head`` keeping their fresh initialisation. Returns the keys
    of the file the network does not use (decoders of a pre-training checkpoint)."""
    own = net.state_dict()
    fresh = ("video_layer_weights", "audio_layer_weights", "fc_norm.", "head.")
    need = [k for k in own if not (pretrained and k.startswith(fresh))]
    missing = [k for k in need if k not in tensors]
    if missing:
        raise HiCMAEError(
            f"{where}: the checkpoint lacks {len(missing)} tensors the network needs "
            f"(first: {missing[0]})"
        )
    for k in need:
        if tuple(tensors[k].shape) != tuple(own[k].shape):
            raise HiCMAEError(
                f"{where}: {k} has shape {tuple(tensors[k].shape)}, the network expects "
                f"{tuple(own[k].shape)} (check the options frame_size / num_frames / heads)"
            )
    net.load_state_dict({k: tensors[k] for k in need}, strict=False)
    return sorted(set(tensors) - set(own))


__all__ = [
    "HiCMAEError",
    "config_from_tensors",
    "head_modality",
    "load_weights",
    "read_checkpoint",
]
