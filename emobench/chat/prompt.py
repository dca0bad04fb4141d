"""What every chat-style clip model shares (``hf:`` and ``openai:``): the prompt, each clip's
request (visual items or MSCE's enriched content, then the question), the per-cell prompt
records and the content-keyed answer cache.

:class:`ChatPromptMixin` expects ``self.opts`` (``question``, ``instruction``,
``option_order``, ``seed``, ``input``, ``cache``, ``cache_dir``, ``fps``), ``self.labels``
and a ``self._stats`` dict with ``prompt``, ``options``, ``orders``, ``frames``, ``fps``,
``describer_calls`` and ``cache_hits``.

An answer-cache entry is checked when read (:func:`answer_problem`): one that is not what
the model writes (not an object, ``text`` not a string, ``scores`` not one finite number per
label, ...) is recomputed, counted in the cell record (``cache_invalid``) and warned about
once per model (through the ``ctx.warn`` of :meth:`ChatPromptMixin._open_cache`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.cache import answer_cache_dir, answer_problem
from emobench.chat.msce import msce_content
from emobench.chat.request import Request, clip_permutation, effective_fps
from emobench.models.base import ClipInput, FitContext


def value_summary(values: Sequence[float]) -> dict[str, float] | None:
    """``{"mean", "min", "max"}`` of per-clip counts for a cell record (None when empty)."""
    if not len(values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 3), "min": float(a.min()), "max": float(a.max())}


class ChatPromptMixin:
    """Prompt building, prompt records and answer-cache reads (see the module docstring)."""

    #: the registry family (``hf``, ``openai``): error lines name ``<family>:<model>``
    family: str
    name: str
    opts: Any
    labels: list[str]
    _stats: dict[str, Any]
    _cache_dir: Path | None
    #: where an invalid cache entry is reported (``ctx.warn``; see :meth:`_open_cache`)
    _cache_warn: Callable[[str], None] | None = None
    _cache_warned: bool = False

    def _open_cache(self, ctx: FitContext, option: str | None, name: str) -> Path:
        """The answer cache folder (:func:`answer_cache_dir`); an invalid entry read from
        it later is reported through ``ctx.warn`` (the first one of this model)."""
        self._cache_warn = ctx.warn
        return answer_cache_dir(ctx, option, name)

    def clip_options(self, clip_id: str) -> list[str]:
        """The label set in the order this clip's prompt lists it."""
        if self.opts.option_order == "fixed":
            return list(self.labels)
        perm = clip_permutation(clip_id, len(self.labels), self.opts.seed)
        return [self.labels[i] for i in perm]

    def prompt_text(self, options: list[str]) -> str:
        """Question, options and answer instruction (the text after the visual items)."""
        o = self.opts
        return f"{o.question}\nOptions: {', '.join(options)}.\n{o.instruction}"

    def _clip_request(self, clip: ClipInput) -> tuple[Request, str | None]:
        """One clip's request (its visual items, then the question) and, for ``msce`` /
        ``msce-text``, the motion descriptions sent (``context``). ``msce-dense`` is a plain,
        denser clip. The adapter supplies :meth:`_prepare_clip` and :meth:`_msce_items`."""
        clip = self._prepare_clip(clip)
        options = self.clip_options(clip.clip_id)
        text = self.prompt_text(options)
        fps = self.opts.fps or effective_fps(clip)
        context = None
        if clip.enrichment in ("msce", "msce-text"):
            items, context, calls = self._msce_items(clip, fps)
            self._stats["describer_calls"] += int(calls)
        else:
            items = self._visual_items(clip.frames)
        self._note_prompt(text, options, len(clip.frames))
        if any(c["type"] == "video" for c in items):  # the rate only matters with videos
            self._stats["fps"].append(fps)
        return Request([*items, {"type": "text", "text": text}], fps), context

    def _prepare_clip(self, clip: ClipInput) -> ClipInput:
        """The clip as the model is shown it (e.g. cropped); default: unchanged."""
        return clip

    def _msce_items(self, clip: ClipInput, fps: float) -> tuple[list[dict[str, Any]], str, int]:
        """MSCE stage 2's content items, the descriptions and the describer calls made:
        each gap described through :meth:`_describer_chat`, shown as a video or not as
        :meth:`_gaps_as_video` says."""
        kw: dict[str, Any] = {"text_only": clip.enrichment == "msce-text"}
        if self.opts.msce_describe_prompt is not None:
            kw["describe_prompt"] = self.opts.msce_describe_prompt
        kw["as_video"] = self._gaps_as_video()
        items, context, calls = msce_content(clip, self._describer_chat(fps), **kw)
        return list(items), context, calls

    def _describer_chat(self, fps: float) -> Callable[[list[list[dict[str, Any]]]], list[str]]:
        """MSCE stage 1: answers to a batch of gap contents (the adapter's describer)."""
        raise NotImplementedError

    def _gaps_as_video(self) -> bool:
        """Whether stage 1 shows a gap's frames as one video (else as images)."""
        raise NotImplementedError

    def _visual_items(self, frames: np.ndarray) -> list[dict[str, Any]]:
        if self.opts.input == "video":
            return [{"type": "video", "video": frames}]
        return [{"type": "image", "image": f} for f in frames]

    def _note_prompt(self, text: str, options: list[str], n_frames: int) -> None:
        """Record a clip's prompt, option order and frame count for the cell record."""
        s = self._stats
        if s["prompt"] is None:
            s["prompt"], s["options"] = text, options
        s["orders"].add(tuple(options))
        s["frames"].append(n_frames)

    def _cache_path(self, key: str) -> Path | None:
        if not self.opts.cache or self._cache_dir is None:
            return None
        return self._cache_dir / key[:2] / f"{key}.json"

    def _cached(
        self, keys: list[str], required: Sequence[str] = ("text",)
    ) -> tuple[list[dict[str, Any] | None], list[int]]:
        """The cached answer of each key (None when absent, unreadable or not an answer
        with the ``required`` keys: :func:`answer_problem`) and the positions still to
        compute; hits and invalid entries are counted in the cell record."""
        entries: list[dict[str, Any] | None] = [None] * len(keys)
        missing = []
        for i, k in enumerate(keys):
            path = self._cache_path(k)
            if path is not None and path.is_file():
                try:
                    entry = json.loads(path.read_text())
                    why = answer_problem(entry, len(self.labels), required)
                except (OSError, ValueError):
                    entry, why = None, "is not readable JSON"
                if why is None:
                    entries[i] = entry
                    self._stats["cache_hits"] += 1
                    continue
                self._invalid_entry(path, why)
            missing.append(i)
        return entries, missing

    def _invalid_entry(self, path: Path, why: str) -> None:
        """Count an invalid cache entry (it is recomputed and rewritten); warn of the first."""
        self._stats["cache_invalid"] = self._stats.get("cache_invalid", 0) + 1
        if self._cache_warn is not None and not self._cache_warned:
            self._cache_warned = True
            self._cache_warn(
                f"{self.family}:{self.name}: answer cache entry {path} {why}: recomputed (any "
                "further invalid entry is recomputed too, counted as cache_invalid per cell)"
            )
