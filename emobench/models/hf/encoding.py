"""One processor call of the ``hf:`` family: requests → the model's left-padded batch.

Each request's items become one user message whose image / video placeholders the chat
template renders in order (:func:`emobench.models.hf.options.chat_inputs`); the arrays go
to the processor in the same order, never re-sampled (``do_sample_frames = False``).
What differs between architectures comes from :mod:`emobench.models.hf.architectures`:

* a processor without a video processor (Gemma 3, Idefics3) is shown a video's frames as
  images, in order (recorded per answer as ``input = "images"``) rather than silently
  dropping them;
* the folder's own video size where the processor would override it (Qwen2.5-Omni);
* the frame rate reaches the processor the way it honours it: one ``fps`` keyword for the
  call (Qwen2.5-Omni; the batch holds one rate, :mod:`~emobench.models.hf.batching`) or
  each video's ``video_metadata``;
* a request whose visual items reach the model as 0 visual tokens stops the run with one
  error line: a model never answers without its frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError
from emobench.models.hf.architectures import arch_of
from emobench.models.hf.options import chat_inputs
from emobench.models.hf.tokens import visual_stats

if TYPE_CHECKING:
    from emobench.chat.request import Request


def has_video_processor(processor: Any) -> bool:
    """Whether ``processor`` encodes videos (else frames must go as images)."""
    return getattr(processor, "video_processor", None) is not None


def as_images(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``content`` with every video item replaced by its frames as image items, in order."""
    out: list[dict[str, Any]] = []
    for c in content:
        if c["type"] == "video":
            out += [{"type": "image", "image": f} for f in c["video"]]
        else:
            out.append(c)
    return out


def shown_content(processor: Any, req: Request) -> tuple[list[dict[str, Any]], str]:
    """The items the processor is given for ``req`` and how frames are shown
    (``"video"``, ``"images"`` or ``"text"``)."""
    kinds = {c["type"] for c in req.content}
    if "video" in kinds and not has_video_processor(processor):
        return as_images(req.content), "images"
    return req.content, "video" if "video" in kinds else "images" if "image" in kinds else "text"


def encode_batch(
    model: Any, processor: Any, reqs: list[Request], processor_kwargs: dict[str, Any], name: str
) -> tuple[Any, list[dict[str, Any]]]:
    """The processor's batch for ``reqs`` (left-padded, on the CPU) and per request its
    ``visual_tokens``, ``pixels`` (per frame) and ``input`` (how frames were shown)."""
    arch = arch_of(getattr(model, "config", None))
    texts, images, videos, metas, contents, shown = [], [], [], [], [], []
    rates = set()
    for r in reqs:
        content, how = shown_content(processor, r)
        prompt, imgs, vids, ms = chat_inputs(processor, content, r.fps)
        texts.append(prompt)
        images.append(imgs)
        videos += vids
        metas += ms
        contents.append(content)
        shown.append(how)
        if vids:
            rates.add(float(r.fps or 1.0))
    kw: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
    kw.update(processor_kwargs)
    if any(images):
        kw["images"] = images
    if videos:
        kw["videos"] = videos
        kw["do_sample_frames"] = False
        if arch.fps_kwarg:
            if len(rates) > 1:  # batching.plan_batches keeps one rate per batch here
                raise EmobenchError(f"hf:{name}: one processor call got videos at rates {rates}")
            kw["fps"] = rates.pop()
        else:
            kw["video_metadata"] = metas
        vp = getattr(processor, "video_processor", None)
        if vp is not None and hasattr(vp, "cap_pixels_per_frame"):
            kw["cap_pixels_per_frame"] = True
        pixel_opts = {"size", "min_pixels", "max_pixels"} & set(processor_kwargs)
        if arch.own_video_size and vp is not None and not pixel_opts:
            size = {k: v for k, v in dict(getattr(vp, "size", None) or {}).items() if v}
            if size:
                kw["videos_kwargs"] = {"size": size}
    enc = processor(**kw)
    stats = visual_stats(enc, contents, model, processor)
    for s, how, content in zip(stats, shown, contents, strict=True):
        s["input"] = how
        if how != "text" and s["visual_tokens"] == 0:
            raise EmobenchError(
                f"hf:{name}: the processor turned {_items(content)} into 0 visual tokens "
                "(the model would answer without its frames); check the model's processor "
                "files and the input option"
            )
    return enc, stats


def _items(content: list[dict[str, Any]]) -> str:
    n_img = sum(c["type"] == "image" for c in content)
    n_vid = sum(c["type"] == "video" for c in content)
    return ", ".join(
        p for p in (f"{n_img} image(s)" if n_img else "", f"{n_vid} video(s)" if n_vid else "") if p
    )
