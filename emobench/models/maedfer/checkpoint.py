"""Reading MAE-DFER's released checkpoints: which file, which tensors, which shapes.

* :func:`resolve_checkpoint`: ``{fold}`` in the argument is the fold number (one
  fine-tuned checkpoint per fold); a folder holds one checkpoint (``checkpoint-best.pth``
  preferred, else its only ``.pth`` / ``.pt`` / ``.safetensors`` file).
* :func:`released_tensors`: pre-training checkpoints keep the encoder under ``encoder.``
  (with a decoder, ``encoder_to_decoder``, ``mask_token`` and the encoder's final ``norm``
  that fine-tuning does not use): the prefix is removed and those are dropped, as the
  released fine-tuning does. ``backbone.`` and DDP's ``module.`` prefixes go too.
* :func:`infer_config`: depth, width, MLP width, patch, tubelet, region count, classes
  and the query/value bias are read from the tensor shapes. What shapes cannot tell comes
  from the options, else from the ``args`` the authors' save routine stores with the
  weights (``input_size``, ``num_frames``, ``lg_region_size``,
  ``lg_classify_token_type``, ``sampling_rate``), else from the released configuration
  (:data:`RELEASED`): 8 heads for width 512 (64 channels per head), 160 px, 16 frames,
  regions of 2 × 5 × 10 tokens, region-token pooling, every 4th frame at test time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emobench.models.videovit import CheckpointError, read_state_dict, strip_prefixes

#: the released fine-tuning configuration (scripts/*/finetune_*.sh of sunlicai/MAE-DFER)
RELEASED: dict[str, Any] = {
    "head_dim": 64,
    "image_size": 160,
    "frames": 16,
    "region_size": (2, 5, 10),
    "pooling": "region",
    "sampling_rate": 4,
}

_PREFIXES = ("module.", "encoder.", "backbone.")
_UNUSED = ("decoder.", "encoder_to_decoder.", "mask_token", "norm.", "pos_embed")
_FILES = (".pth", ".pt", ".bin", ".safetensors")
_BLOCK = re.compile(r"blocks\.(\d+)\.")
#: parameters a pre-trained (encoder-only) checkpoint lacks: fine-tuning starts them
HEAD_KEYS = ("fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias")


@dataclass
class Released:
    """A checkpoint's tensors in the fine-tuned layout and the shapes read from them."""

    tensors: dict[str, Any]
    path: Path
    args: dict[str, Any] = field(default_factory=dict)
    #: whether it has a classification head (a fine-tuned checkpoint) or not (pre-trained)
    has_head: bool = False


def resolve_checkpoint(argument: str, fold: int | None, where: str) -> Path:
    """The checkpoint file of ``argument`` for ``fold`` (module docstring)."""
    text = argument
    if "{fold}" in text:
        if fold is None:
            raise CheckpointError(f"{where}: '{{fold}}' in the path needs a fold")
        text = text.replace("{fold}", str(fold))
    path = Path(text).expanduser()
    if path.is_dir():
        best = path / "checkpoint-best.pth"
        if best.is_file():
            return best
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _FILES)
        if len(found) != 1:
            what = "no checkpoint file" if not found else f"{len(found)} checkpoint files"
            raise CheckpointError(
                f"{where}: {what} in {path} (expected checkpoint-best.pth or exactly one "
                f"{'/'.join(_FILES)} file)"
            )
        return found[0]
    if not path.is_file():
        raise CheckpointError(f"{where}: checkpoint not found: {path}")
    return path


def missing_folds(argument: str, folds: range = range(1, 6)) -> list[int] | None:
    """For a ``{fold}`` pattern, the folds in ``folds`` that have no checkpoint (None when
    the argument has no ``{fold}``)."""
    if "{fold}" not in argument:
        return None
    return [f for f in folds if not Path(argument.replace("{fold}", str(f))).expanduser().exists()]


def released_tensors(path: Path, where: str) -> Released:
    """The tensors of ``path`` in the fine-tuned layout (module docstring)."""
    sd = read_state_dict(path, where)
    tensors = strip_prefixes(sd.tensors, _PREFIXES)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(_UNUSED)}
    if "patch_embed.proj.weight" not in tensors or "lg_region_tokens" not in tensors:
        raise CheckpointError(
            f"{where}: {path.name} is not an MAE-DFER (LGI-Former) checkpoint: it has no "
            "patch_embed.proj.weight / lg_region_tokens"
        )
    return Released(tensors, path, sd.args, has_head="head.weight" in tensors)


def _from(options: dict[str, Any], args: dict[str, Any], key: str, arg_key: str) -> Any:
    if options.get(key) is not None:
        return options[key]
    if args.get(arg_key) is not None:
        return args[arg_key]
    return RELEASED[key]


def infer_config(
    rel: Released, options: dict[str, Any], num_classes: int | None, where: str
) -> Any:
    """The :class:`~emobench.models.maedfer.network.LGIConfig` of ``rel`` (module
    docstring). ``options``: ``heads``, ``image_size``, ``frames``, ``region_size``,
    ``pooling``, ``drop_path`` (None: not given). ``num_classes``: the head size when the
    checkpoint has none (pre-trained) or when fine-tuning replaces it."""
    # lazy: pulls in torch
    from emobench.models.maedfer.network import POOLING, LGIConfig

    t = rel.tensors
    dim, _, tubelet, patch, _ = tuple(t["patch_embed.proj.weight"].shape)
    depth = 1 + max((int(m.group(1)) for k in t if (m := _BLOCK.match(k))), default=-1)
    if depth == 0:
        raise CheckpointError(f"{where}: {rel.path.name} has no LGI-Former blocks")
    hidden = int(t["blocks.0.mlp.fc1.weight"].shape[0])
    heads = options.get("heads") or max(1, dim // RELEASED["head_dim"])
    image = int(_from(options, rel.args, "image_size", "input_size"))
    frames = int(_from(options, rel.args, "frames", "num_frames"))
    region = tuple(int(v) for v in _from(options, rel.args, "region_size", "lg_region_size"))
    pooling = str(_from(options, rel.args, "pooling", "lg_classify_token_type"))
    classes = num_classes if num_classes is not None else int(t["head.weight"].shape[0])
    if dim % heads:
        raise CheckpointError(f"{where}: width {dim} is not divisible by {heads} heads")
    if pooling not in POOLING:
        raise CheckpointError(f"{where}: pooling {pooling!r} is not one of {list(POOLING)}")
    if image % patch or frames % tubelet or len(region) != 3:
        raise CheckpointError(
            f"{where}: {frames} frames × {image} px do not split into tubelets of "
            f"{tubelet} × {patch} × {patch} (or region_size is not 3 numbers)"
        )
    cfg = LGIConfig(
        dim=int(dim), depth=depth, heads=int(heads), mlp_hidden=hidden, patch=int(patch),
        tubelet=int(tubelet), image_size=image, frames=frames, region_size=region,  # type: ignore[arg-type]
        num_classes=int(classes), qkv_bias="blocks.0.first_attn.q_bias" in t,
        pooling=pooling, drop_path=float(options.get("drop_path") or 0.0),
    )  # fmt: skip
    stored = int(t["lg_region_tokens"].shape[0])
    n_regions = cfg.regions[0] * cfg.regions[1] * cfg.regions[2]
    if any(g % r for g, r in zip(cfg.grid, region, strict=True)) or n_regions != stored:
        raise CheckpointError(
            f"{where}: region_size {list(region)} on a {list(cfg.grid)} token grid gives "
            f"{n_regions} regions, the checkpoint has {stored} region tokens: set "
            "options.region_size (and image_size / frames) to the checkpoint's"
        )
    return cfg


def sampling_rate(rel: Released, option: int | None) -> int:
    """The test protocol's frame step: the option, else the checkpoint's ``args``
    (``sampling_rate``: 4 for DFEW and MAFW, 1 for FERV39k), else 4."""
    if option is not None:
        return int(option)
    return int(rel.args.get("sampling_rate") or RELEASED["sampling_rate"])


def load_network(rel: Released, cfg: Any, where: str, pretrained: bool) -> Any:
    """An :class:`LGIFormer` of ``cfg`` with ``rel``'s weights (CPU, fp32, eval mode).
    ``pretrained``: the head (and ``fc_norm``) may be absent or of another size and is
    left for fine-tuning to initialise; otherwise every tensor must match."""
    import torch

    # lazy: pulls in torch
    from emobench.models.maedfer.network import LGIFormer

    net = LGIFormer(cfg)
    tensors = dict(rel.tensors)
    if pretrained:
        own = net.state_dict()
        for k in HEAD_KEYS:
            if k in tensors and tensors[k].shape != own[k].shape:
                del tensors[k]
    try:
        result = net.load_state_dict(tensors, strict=not pretrained)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        reason = " ".join(" ".join(first[1:3]).split())[:240] if len(first) > 1 else str(exc)
        raise CheckpointError(f"{where}: {rel.path.name} does not fit: {reason}") from None
    if pretrained:
        missing = [k for k in result.missing_keys if k not in HEAD_KEYS]
        if missing or result.unexpected_keys:
            odd = (missing or result.unexpected_keys)[:3]
            raise CheckpointError(
                f"{where}: {rel.path.name} does not fit the encoder: "
                f"{'missing' if missing else 'unexpected'} {odd}"
            )
    return net.to(torch.float32).eval()


__all__ = [
    "HEAD_KEYS",
    "RELEASED",
    "Released",
    "infer_config",
    "load_network",
    "missing_folds",
    "released_tensors",
    "resolve_checkpoint",
    "sampling_rate",
]
