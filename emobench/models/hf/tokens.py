"""What each ``hf:`` request showed the model: visual tokens and pixels per frame.

Counted from what the processor produced, the same way for every architecture:

* **visual tokens**: the positions of the request's prompt holding one of the ids the
  model replaces with vision features: the config's ``image_token_id`` /
  ``image_token_index`` and ``video_token_id`` / ``video_token_index`` (of the config or
  its thinker / text config), else the processor's. The model's ids, not the processor's
  markers: Gemma 3's processor calls its begin-of-image token ``image_token_id``, but the
  model fills ``mm_tokens_per_image`` soft tokens (256 in the released model) per image.
* **pixels per frame**: the pixels the vision tower encodes for one frame (every tile or
  crop of it, padding excluded), from the processor's tensors:
  a Qwen-style grid (``image_grid_thw`` / ``video_grid_thw``: h × w patches per frame);
  ``pixel_values_videos`` of shape (videos, frames, C, H, W); a ``pixel_attention_mask``
  (Idefics3 / SmolVLM: the real pixels of each request's tiles); 5-D image tiles
  (LLaVA-NeXT / OneVision: the non-padding tiles of each image); flat 4-D tiles over the
  batch (InternVL, Gemma 3, Video-LLaVA: shared out by the request's visual tokens, a
  fixed number per tile).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emobench.models.hf.architectures import sub_configs


def visual_token_ids(model: Any, processor: Any) -> dict[str, list[int]]:
    """The token ids the model replaces with vision features, by kind (``image``,
    ``video``; module docstring)."""
    ids: dict[str, list[int]] = {"image": [], "video": []}
    config = getattr(model, "config", None)
    for cfg in sub_configs(config) if config is not None else []:
        for kind in ids:
            for name in (f"{kind}_token_id", f"{kind}_token_index"):
                v = getattr(cfg, name, None)
                if isinstance(v, int) and v >= 0 and v not in ids[kind]:
                    ids[kind].append(v)
        if ids["image"] or ids["video"]:
            return ids
    for kind in ids:  # a model config without the ids: the processor's
        tid = getattr(processor, f"{kind}_token_id", None)
        if tid is None and getattr(processor, f"{kind}_token", None):
            tid = processor.tokenizer.convert_tokens_to_ids(getattr(processor, f"{kind}_token"))
        if isinstance(tid, int) and tid >= 0:
            ids[kind].append(tid)
    return ids


def count_visual_tokens(input_ids: Any, ids: list[int]) -> np.ndarray:
    """Per row of ``input_ids``, how many positions hold one of ``ids``."""
    out = np.zeros(input_ids.shape[0], dtype=np.int64)
    for tid in sorted(set(ids)):
        out += (input_ids == tid).sum(dim=1).cpu().numpy()
    return out


def _frames(content: list[dict[str, Any]]) -> int:
    return sum(
        1 if c["type"] == "image" else len(c["video"])
        for c in content
        if c["type"] in ("image", "video")
    )


def pixels_per_frame(
    enc: Any, contents: list[list[dict[str, Any]]], processor: Any, ids: dict[str, list[int]]
) -> list[list[int]]:
    """Per request, the pixels the vision tower encodes per frame (one entry per image or
    video: module docstring); ``ids`` are the visual token ids by kind."""
    n = len(contents)
    out: list[list[int]] = [[] for _ in range(n)]
    owners = {
        kind: [i for i, c in enumerate(contents) for it in c if it["type"] == kind]
        for kind in ("image", "video")
    }
    done = set()
    for kind, grid_key, sub in (
        ("image", "image_grid_thw", "image_processor"),
        ("video", "video_grid_thw", "video_processor"),
    ):
        grid = enc.get(grid_key)
        if grid is not None and len(grid) == len(owners[kind]):
            patch = int(getattr(getattr(processor, sub, None), "patch_size", 14) or 14)
            for owner, (_, h, w) in zip(owners[kind], grid.tolist(), strict=True):
                out[owner].append(int(h * w * patch * patch))
            done.add(kind)
    vids = enc.get("pixel_values_videos")
    video_5d = vids is not None and vids.ndim == 5 and vids.shape[0] == len(owners["video"])
    if "video" not in done and video_5d:
        for owner in owners["video"]:
            out[owner].append(int(vids.shape[-1] * vids.shape[-2]))
        done.add("video")
    pix = enc.get("pixel_values", enc.get("pixel_values_images"))
    rest = [k for k in ("image", "video") if k not in done and owners[k]]
    if pix is None or not rest:
        return out
    side = int(pix.shape[-1] * pix.shape[-2])
    real = _frames_left(contents, rest)
    mask = enc.get("pixel_attention_mask")
    if mask is not None and mask.shape[0] == n:  # Idefics3 / SmolVLM: tiles per request
        for i in range(n):
            if real[i]:
                out[i].append(int(mask[i].sum()) // real[i])
    elif pix.ndim == 5 and "image" in rest and pix.shape[0] == len(owners["image"]):
        tiles = pix.flatten(2).abs().amax(-1) > 0  # padding tiles are all zero
        for owner, t in zip(owners["image"], tiles.sum(-1).tolist(), strict=True):
            out[owner].append(int(t) * side)
    elif pix.ndim == 4:  # flat tiles, a fixed number of tokens each
        own = [t for k in rest for t in ids[k]]  # InternVL's frames use its image token
        vis = count_visual_tokens(enc["input_ids"], own or ids["image"] + ids["video"])
        if not vis.sum():
            return out
        per_tile = vis.sum() / pix.shape[0]
        for i in range(n):
            if real[i] and vis[i]:
                out[i].append(int(round(vis[i] / per_tile)) * side // real[i])
    return out


def _frames_left(contents: list[list[dict[str, Any]]], kinds: list[str]) -> list[int]:
    """Per request, the frames of its items of ``kinds``."""
    return [_frames([it for it in c if it["type"] in kinds]) for c in contents]


def visual_stats(
    enc: Any, contents: list[list[dict[str, Any]]], model: Any, processor: Any
) -> list[dict[str, Any]]:
    """Per request: ``visual_tokens`` (int) and ``pixels`` (pixels per frame, one entry
    per image or video), from the processor's batch ``enc``."""
    ids = visual_token_ids(model, processor)
    vis = count_visual_tokens(enc["input_ids"], ids["image"] + ids["video"])
    pixels = pixels_per_frame(enc, contents, processor, ids)
    return [{"visual_tokens": int(v), "pixels": p} for v, p in zip(vis, pixels, strict=True)]
