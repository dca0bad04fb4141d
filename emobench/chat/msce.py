"""MSCE, multi-stage context enrichment: describe each gap between keyframes, then ask.

A cell with enrichment ``msce`` or ``msce-text`` gives a clip model the sampler's K
keyframes (``ClipInput.frames``, in presentation order) and, for each of the K−1 gaps
between consecutive keyframes, the G in-between frames the engine decoded
(``ClipInput.between[i]``, from keyframe i towards keyframe i+1; see
:func:`emobench.runner.clip_scorer.clip_view` and
:func:`emobench.video.sampling.between_indices`).

- Stage 1 (the describer): for each gap, one user turn holding the gap's frames —
  keyframe i, its in-between frames, keyframe i+1, as images (or as one video with
  ``as_video``) — then the describe prompt (:data:`DEFAULT_DESCRIBE_PROMPT`). All gaps
  of a clip go to the describer in ONE batched ``chat`` call. Each answer is cleaned by
  :func:`clean_description` (reasoning blocks and surrounding whitespace removed; an
  empty answer becomes ``(no description)``).
- Stage 2 (the question): ``msce`` — one interleaved user content: keyframe 1,
  ``"Between these frames: <description 1>"``, keyframe 2, …, keyframe K; ``msce-text``
  — the descriptions only, no images: one text item of lines ``"Frame i → i+1: <d>"``
  (ending in a newline, so the question that follows starts a line).
  The adapter appends its question to these items.

:func:`msce_content` returns the stage-2 items, the context text stored with the
prediction (``ClipOutput.context``: the ``"Frame i → i+1: <d>"`` lines, the same for both
enrichments) and the number of descriptions generated (stage-1 prompts actually sent to
the describer: one per gap not found in the cache; ``chat`` itself is called at most once
per clip).

:class:`DescriptionCache` keeps stage-1 results keyed by content (describer identity,
prompt, how the frames are shown, and the frame bytes), one JSON file per key, so reruns
and sweeps (other orders, prior corrections, answer prompts) do not call the describer
again for a gap it has described.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emobench.io import write_json_atomic
from emobench.models.base import ClipInput

__all__ = [
    "BETWEEN_PREFIX",
    "DEFAULT_DESCRIBE_PROMPT",
    "NO_DESCRIPTION",
    "DescriptionCache",
    "clean_description",
    "context_text",
    "gap_content",
    "msce_content",
]

#: stage 1's default instruction, after the frames of one gap
DEFAULT_DESCRIBE_PROMPT = "Describe how the person's facial expression changes across these frames."
#: stage 2 (``msce``): the text item between two keyframes is this prefix + the description
BETWEEN_PREFIX = "Between these frames: "
#: what an empty description (after cleaning) becomes
NO_DESCRIPTION = "(no description)"

#: one user turn's content: ``{"type": "image"|"video"|"text", ...}`` items, in order
Content = list[dict[str, Any]]
#: the describer: one generated answer per user-turn content list (a batch)
Chat = Callable[[list[Content]], list[str]]

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def clean_description(text: str | None) -> str:
    """A describer's answer without reasoning and extra whitespace.

    ``<think>…</think>`` blocks are removed; text before a lone ``</think>`` (the opening
    tag was part of the prompt) and after a lone ``<think>`` (reasoning cut off by the
    token limit) is reasoning too. Runs of whitespace, newlines included, become one space
    (a description is one line of the context); other control characters are dropped.
    Empty → :data:`NO_DESCRIPTION`.
    """
    text = _THINK_BLOCK.sub(" ", text or "")
    low = text.lower()
    if "</think>" in low:
        text = text[low.rindex("</think>") + len("</think>") :]
    text = _THINK_OPEN.sub(" ", text)
    text = _SPACE.sub(" ", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()
    return text or NO_DESCRIPTION


def gap_content(
    clip: ClipInput,
    i: int,
    *,
    describe_prompt: str = DEFAULT_DESCRIBE_PROMPT,
    as_video: bool = False,
) -> Content:
    """Stage 1's user content for gap ``i``: keyframe i, the in-between frames, keyframe
    i+1 (images, or one ``(G+2, H, W, 3)`` video with ``as_video``), then the prompt."""
    frames = np.concatenate(
        [
            clip.frames[i : i + 1],
            _as_frames(clip.between[i], clip.frames),
            clip.frames[i + 1 : i + 2],
        ]
    )
    if as_video:
        visual: Content = [{"type": "video", "video": frames}]
    else:
        visual = [{"type": "image", "image": f} for f in frames]
    return [*visual, {"type": "text", "text": describe_prompt}]


def context_text(descriptions: Sequence[str]) -> str:
    """The descriptions as lines ``"Frame i → i+1: <d>"`` (1-based presented positions):
    ``msce-text``'s stage-2 text and the context stored with every MSCE prediction."""
    return "\n".join(f"Frame {i + 1} → {i + 2}: {d}" for i, d in enumerate(descriptions))


def msce_content(
    clip: ClipInput,
    chat: Chat,
    *,
    text_only: bool,
    describe_prompt: str = DEFAULT_DESCRIBE_PROMPT,
    as_video: bool = False,
    cache: DescriptionCache | None = None,
    describer_id: str = "",
) -> tuple[Content, str, int]:
    """Stage-2 content items (before the question), the context text, and the number of
    descriptions generated.

    ``chat`` answers a batch of user-turn contents, one string each; all of this clip's
    gaps that are not in ``cache`` go to it in one call (none when every gap is cached or
    the clip has a single keyframe). ``describer_id`` names the describer (model, weights,
    generation settings) in the cache key: two describers never share descriptions.
    ``text_only``: ``msce-text`` (descriptions only) instead of ``msce`` (interleaved).
    """
    k = len(clip.frames)
    n_gaps = max(k - 1, 0)
    if len(clip.between) != n_gaps:
        raise ValueError(
            f"clip {clip.clip_id}: MSCE needs the in-between frames of each of the {n_gaps} "
            f"gaps between its {k} keyframes, got {len(clip.between)} "
            f"(enrichment {clip.enrichment!r})"
        )
    contents = [
        gap_content(clip, i, describe_prompt=describe_prompt, as_video=as_video)
        for i in range(n_gaps)
    ]
    keys = [
        DescriptionCache.key(describer_id, describe_prompt, c) if cache is not None else ""
        for c in contents
    ]
    descriptions: list[str | None] = [cache.get(key) if cache is not None else None for key in keys]
    todo = [i for i, d in enumerate(descriptions) if d is None]
    if todo:
        answers = list(chat([contents[i] for i in todo]))
        if len(answers) != len(todo):
            raise ValueError(
                f"the MSCE describer returned {len(answers)} answers for {len(todo)} gaps"
            )
        for i, raw in zip(todo, answers, strict=True):
            descriptions[i] = clean_description(raw)
            if cache is not None:
                cache.put(
                    keys[i],
                    descriptions[i],
                    raw=raw,
                    describer_id=describer_id,
                    prompt=describe_prompt,
                )
    done = [d or NO_DESCRIPTION for d in descriptions]
    context = context_text(done)
    if text_only:
        # a newline ends the lines: chat templates join a turn's text items as they are
        items: Content = [{"type": "text", "text": context + "\n"}] if context else []
    else:
        items = []
        for i in range(k):
            items.append({"type": "image", "image": clip.frames[i]})
            if i < n_gaps:
                items.append({"type": "text", "text": BETWEEN_PREFIX + done[i]})
    return items, context, len(todo)


class DescriptionCache:
    """Stage-1 descriptions on disk: ``<root>/<key[:2]>/<key>.json``, written atomically.

    The key (:meth:`key`) hashes the describer's identity, the prompt and every item of
    the stage-1 content (type, and the frames' dtype, shape and bytes, or the text), so a
    gap shown by another sampler, order or run with the same frames is a hit, and any
    change of frames, frame size, prompt, image/video form or describer is a miss.
    An unreadable entry counts as a miss (and is overwritten by the next put).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @staticmethod
    def key(describer_id: str, prompt: str, content: Content) -> str:
        h = hashlib.sha256()
        h.update(b"emobench-msce-v1\0")
        for part in (describer_id, prompt):
            h.update(part.encode("utf-8") + b"\0")
        for item in content:
            kind = str(item["type"])
            h.update(kind.encode() + b"\0")
            value = item[kind]
            if isinstance(value, np.ndarray):
                arr = np.ascontiguousarray(value)
                h.update(f"{arr.dtype.str}{arr.shape}".encode() + b"\0")
                h.update(arr.tobytes())
            else:
                h.update(str(value).encode("utf-8") + b"\0")
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The cached description for ``key``, or None."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        text = entry.get("description") if isinstance(entry, dict) else None
        return text if isinstance(text, str) and text else None

    def put(self, key: str, description: str, **info: Any) -> None:
        """Store ``description`` (and ``info``: raw answer, describer, prompt) under ``key``."""

        write_json_atomic(self.path(key), {"description": description, **info})


def _as_frames(between: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``between`` as ``(G, H, W, 3)`` frames (an empty gap as zero frames of ``like``'s shape)."""
    arr = np.asarray(between)
    if arr.size == 0:
        return np.empty((0, *like.shape[1:]), dtype=like.dtype)
    return arr
