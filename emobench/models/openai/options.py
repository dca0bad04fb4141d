"""Options and request encoding of the ``openai:`` family (see :mod:`.adapter`)."""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from emobench.chat.request import DEFAULT_INSTRUCTION, DEFAULT_QUESTION
from emobench.settings import Bool, Float, PositiveInt, Seed, StrictModel

#: bump when the meaning of a cached entry changes
CACHE_VERSION = 1


class OpenAIOptions(StrictModel):
    """``[models.options]`` of ``openai:<model>`` (see :mod:`emobench.models.openai.adapter`)."""

    #: the server's OpenAI-compatible root, e.g. ``http://127.0.0.1:8000/v1``
    base_url: str
    #: the NAME of the environment variable holding the API key (never the key itself);
    #: None: no key (local servers; the client sends a placeholder)
    api_key_env: str | None = None
    #: frames as a list of images, or as one video (a ``video_url`` part holding an MP4,
    #: a vLLM/SGLang extension; a server that refuses it gets images from then on)
    input: Literal["images", "video"] = "images"
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: Annotated[int, Field(ge=1, le=100, strict=True)] = 90
    scoring: Literal["generate", "loglik"] = "generate"
    question: str = DEFAULT_QUESTION
    instruction: str = DEFAULT_INSTRUCTION
    option_order: Literal["fixed", "permuted"] = "fixed"
    seed: Seed = 0
    max_tokens: PositiveInt = 8
    temperature: Annotated[Float, Field(ge=0)] = 0.0
    #: loglik: alternatives asked for at the first answer token (OpenAI allows up to 20)
    top_logprobs: Annotated[int, Field(ge=1, le=20, strict=True)] = 20
    #: requests in flight at once
    concurrency: PositiveInt = 4
    #: retries of one request after a 429, a 5xx, a timeout or a dropped connection
    max_retries: Annotated[int, Field(ge=0, strict=True)] = 5
    #: the first retry's wait in seconds; doubled on each further retry (at most 60 s)
    retry_backoff: Annotated[Float, Field(ge=0)] = 1.0
    #: seconds one request may take
    timeout: Annotated[Float, Field(gt=0)] = 120.0
    #: start at most this many requests per minute (None: no limit)
    requests_per_minute: PositiveInt | None = None
    #: clips per predict() call (the engine's batch)
    batch_size: PositiveInt = 16
    #: decode side in pixels (None: the video's own size)
    frame_size: Annotated[int, Field(ge=8, le=4096)] | None = None
    #: frame rate of videos sent (None: the presented frames' own rate)
    fps: Annotated[Float, Field(gt=0)] | None = None
    cache: Bool = True
    #: answer cache folder (default: ``<run cache>/openai-generations``)
    cache_dir: str | None = None
    msce_describe_prompt: str | None = None
    msce_max_tokens: PositiveInt = 48
    gap_frames: PositiveInt = 4


def image_url(frame: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> str:
    """One uint8 RGB frame as a base64 ``data:image/...`` URL."""
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    if fmt == "png":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=quality)
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode()}"


def video_url(frames: np.ndarray, fps: float) -> str:
    """uint8 RGB frames ``(T, H, W, 3)`` as a base64 ``data:video/mp4`` URL (H.264, or
    MPEG-4 part 2 where libx264 is missing; sides cropped to even numbers)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=Fraction(float(fps)).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return f"data:video/mp4;base64,{base64.b64encode(buf.getvalue()).decode()}"


def label_scores(top: list[list[Any]], labels: list[str]) -> np.ndarray:
    """Per-label scores from the first answer token's top log-probabilities.

    A label scores the highest log-probability among the returned tokens that begin it
    (``"Happ"`` for ``happiness``) or that it begins (``"sadness."``), compared without
    case and surrounding space; a label no returned token matches gets the lowest returned
    log-probability minus 1 (it is less likely than anything listed). An approximation of
    the label's log-likelihood: only the first token is seen, and labels that share it tie.
    """
    scores = np.full(len(labels), -np.inf)
    for tok, lp in top:
        t = str(tok).strip().lower()
        if not t:
            continue
        for j, lb in enumerate(labels):
            name = lb.lower()
            if name.startswith(t) or t.startswith(name):
                scores[j] = max(scores[j], float(lp))
    floor = (min(float(lp) for _, lp in top) if top else 0.0) - 1.0
    scores[~np.isfinite(scores)] = floor
    return scores
