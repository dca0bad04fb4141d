"""``openai:<model>``: any OpenAI-compatible chat-completions server as a clip model.

vLLM (``vllm serve``), SGLang, hosted APIs: a :class:`~emobench.models.base.ClipModel`
that sends each clip's sampled frames (already sampled and ordered by the engine) as
base64 ``image_url`` data URLs (``input = "images"``) or as one MP4 ``video_url`` part
(``input = "video"``, a vLLM/SGLang extension; a server that refuses it with 400/422 gets
the frames as images from then on, recorded as ``video_fallback``), then the same prompt
as ``hf:`` (question, options in ``fixed`` or per-clip ``permuted`` order, instruction).

* ``scoring = "generate"`` (default): the answer of ``max_tokens`` tokens at
  ``temperature`` (0), parsed by the engine.
* ``scoring = "loglik"``: one token with ``logprobs``/``top_logprobs``; each label scores
  the best log-probability among the first-token alternatives that begin it
  (:func:`~emobench.models.openai.options.label_scores`): an approximation of the label
  log-likelihood that ``hf:`` computes exactly (first token only; labels sharing a first
  token tie; labels outside the top-k share a floor). Needs a server that returns logprobs.

Requests run concurrently (``concurrency``, ``openai.AsyncOpenAI``), paced by
``requests_per_minute``; a 429, a 5xx, a timeout (``timeout``) or a dropped connection is
retried ``max_retries`` times after ``retry_backoff`` · 2^n seconds. The API key is read
from the environment variable named by ``api_key_env`` at fit and is written nowhere: a
server that echoes it (in an error body, as its model name, in an answer) has it replaced
by ``sk-…REDACTED`` wherever its text enters emobench (:mod:`.redact`).
Every answer is cached as one JSON file under ``<run cache>/openai-generations`` as soon as
it arrives, keyed by the model name, the generation settings and the content (texts, the
frames' bytes), so an interrupted run resumes without paying twice. ``msce``/``msce-text``
describe the gaps with the same server (:mod:`emobench.models.hf.msce`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.cache import content_digest
from emobench.chat.prompt import ChatPromptMixin, value_summary
from emobench.chat.request import Request
from emobench.errors import EmobenchError
from emobench.io import write_json_atomic
from emobench.models.base import ClipInput, ClipModel, ClipOutput, FitContext
from emobench.models.openai.options import (
    CACHE_VERSION,
    OpenAIOptions,
    image_url,
    label_scores,
    video_url,
)
from emobench.models.openai.redact import Redactor
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import FamilyRole

#: HTTP requests sent in this process (retries included), for tests.
REQUESTS = {"sent": 0}


@register_model(
    "openai",
    "an OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs), "
    "openai:<served model name>, options.base_url = http://host:port/v1",
    options=OpenAIOptions,
    kind="clip",
    gives_scores=lambda o: o.get("scoring", "generate") == "loglik",
    role=FamilyRole("vlm"),
)
def _create(argument: str, options: dict[str, Any]) -> OpenAIModel:
    return OpenAIModel(argument, options)


class OpenAIModel(ChatPromptMixin, ClipModel):
    """A chat-completions endpoint as a :class:`ClipModel` (module docstring)."""

    family = "openai"

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.name = argument
        self.opts: OpenAIOptions = parse_options(f"openai:{argument}", OpenAIOptions, options)
        self.batch_size = self.opts.batch_size
        self.gap_frames = self.opts.gap_frames
        self.frame_size = self.opts.frame_size
        self.labels: list[str] = []
        self._api_key: str | None = None
        self._redact = Redactor(None)
        self._cache_dir: Path | None = None
        self._video_ok = True
        self._next_slot = 0.0
        self.reset_stats()

    # ------------------------------------------------------------ setup

    def fit(self, ctx: FitContext) -> None:
        """Zero-shot: remember the labels, read the API key, choose the answer cache."""
        self.labels = list(ctx.labels)
        env = self.opts.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise EmobenchError(
                    f"openai:{self.name}: options.api_key_env names {env!r}, "
                    "which is not set in the environment"
                )
            self._api_key = key
            self._redact = Redactor(key)
        else:
            self._api_key = "EMPTY"  # local servers ignore it; the client needs one
        self._cache_dir = self._open_cache(ctx, self.opts.cache_dir, "openai-generations")

    # ------------------------------------------------------------ stats

    def reset_stats(self) -> None:
        self._stats: dict[str, Any] = {
            "frames": [],
            "fps": [],
            "requests": 0,
            "retries": 0,
            "cache_hits": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "server_models": set(),
            "describer_calls": 0,
            "prompt": None,
            "options": None,
            "orders": set(),
        }

    def describe(self) -> dict[str, Any]:
        s = self._stats
        o = self.opts
        info: dict[str, Any] = {
            "model": f"openai:{self.name}",
            "server_model": sorted(s["server_models"])[0]
            if len(s["server_models"]) == 1
            else sorted(s["server_models"]) or None,
            "base_url": o.base_url,
            "scoring": o.scoring,
            "input": o.input,
            "prompt": s["prompt"],
            "option_order": o.option_order,
            "options": s["options"],
            "distinct_option_orders": len(s["orders"]),
            "frames_per_clip": value_summary(s["frames"]),
            "fps": value_summary(s["fps"]),
            "requests": s["requests"],
            "retries": s["retries"],
            "cache_hits": s["cache_hits"],
            "cache_invalid": s.get("cache_invalid", 0),
            "usage": {
                "prompt_tokens": s["prompt_tokens"],
                "completion_tokens": s["completion_tokens"],
            },
            "temperature": o.temperature,
        }
        if o.scoring == "loglik":
            info["top_logprobs"] = o.top_logprobs
        else:
            info["max_tokens"] = o.max_tokens
        if o.input == "video":
            info["video_fallback"] = not self._video_ok
        if s["describer_calls"]:
            info["describer"] = "self"
            info["describer_calls"] = s["describer_calls"]
        return self._redact.value(info)

    # ------------------------------------------------------------ prompts

    def _describer_chat(self, fps: float) -> Any:
        return lambda contents: self.chat(contents, fps=fps)  # the same server

    def _gaps_as_video(self) -> bool:
        return self.opts.input == "video" and self._video_ok

    def chat(self, contents: list[list[dict[str, Any]]], fps: float | None = None) -> list[str]:
        """Answers (``msce_max_tokens``) to user turns given as content items: MSCE's
        describer primitive, sent to the same server and cached like every answer."""
        reqs = [Request(list(c), fps) for c in contents]
        return [e["text"] for e in self._answer(reqs, "generate", self.opts.msce_max_tokens)]

    # ------------------------------------------------------------ predict

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        if not self.labels or self._api_key is None:
            raise EmobenchError(f"openai:{self.name}: predict() before fit()")
        pairs = [self._clip_request(c) for c in clips]
        mode = self.opts.scoring
        max_tokens = 1 if mode == "loglik" else self.opts.max_tokens
        entries = self._answer([r for r, _ in pairs], mode, max_tokens)
        outs = []
        for e, (_, ctx) in zip(entries, pairs, strict=True):
            if mode == "loglik":
                scores = label_scores(e.get("top_logprobs") or [], self.labels)
                outs.append(ClipOutput(scores=scores, text=e["text"], context=ctx))
            else:
                outs.append(ClipOutput(text=e["text"], context=ctx))
        return outs

    # ------------------------------------------------------------ the answer cache

    def _key(self, req: Request, mode: str, max_tokens: int) -> str:
        o = self.opts
        head: dict[str, Any] = {
            "v": CACHE_VERSION,
            "family": "openai",
            "model": self.name,
            "mode": mode,
            "max_tokens": max_tokens,
            "temperature": o.temperature,
            "image": [o.image_format, o.jpeg_quality if o.image_format == "jpeg" else None],
        }
        if mode == "loglik":
            head["top_logprobs"] = o.top_logprobs
        items = content_digest(req)
        for item in items:
            if item[0] == "video":  # the frame rate reaches the server with a video
                item.append(None if req.fps is None else round(float(req.fps), 6))
        head["content"] = items
        return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()

    def _answer(self, reqs: list[Request], mode: str, max_tokens: int) -> list[dict[str, Any]]:
        """One cache entry per request (``text``, ``model``, ``usage``, ``top_logprobs``),
        asking the server for the missing ones (each stored as soon as it arrives)."""
        keys = [self._key(r, mode, max_tokens) for r in reqs]
        entries, missing = self._cached(keys)
        if missing:
            jobs = [(reqs[i], keys[i]) for i in missing]
            done = _run(self._send_all(jobs, mode, max_tokens))
            for i, e in zip(missing, done, strict=True):
                entries[i] = e
        entries = [self._redact.value(e) for e in entries]  # a cache written before redaction
        for e in entries:
            assert e is not None
            if e.get("model"):
                self._stats["server_models"].add(e["model"])
        return entries  # type: ignore[return-value]

    # ------------------------------------------------------------ requests

    def _messages(self, req: Request, as_video: bool) -> list[dict[str, Any]]:
        o = self.opts
        parts: list[dict[str, Any]] = []
        for c in req.content:
            if c["type"] == "text":
                parts.append({"type": "text", "text": c["text"]})
            elif c["type"] == "video" and as_video:
                url = video_url(np.asarray(c["video"]), req.fps or 1.0)
                parts.append({"type": "video_url", "video_url": {"url": url}})
            else:
                frames = [c["image"]] if c["type"] == "image" else list(c["video"])
                for f in frames:
                    url = image_url(np.asarray(f), o.image_format, o.jpeg_quality)
                    parts.append({"type": "image_url", "image_url": {"url": url}})
        return [{"role": "user", "content": parts}]

    async def _send_all(
        self, jobs: list[tuple[Request, str]], mode: str, max_tokens: int
    ) -> list[dict[str, Any]]:
        import openai

        client = openai.AsyncOpenAI(
            base_url=self.opts.base_url,
            api_key=self._api_key,
            max_retries=0,  # retried here: counted, with our back-off
            timeout=self.opts.timeout,
        )
        sem = asyncio.Semaphore(self.opts.concurrency)
        pace = asyncio.Lock()
        try:
            return list(
                await asyncio.gather(
                    *(self._one(client, sem, pace, r, k, mode, max_tokens) for r, k in jobs)
                )
            )
        finally:
            await client.close()

    async def _pace(self, lock: asyncio.Lock) -> None:
        rpm = self.opts.requests_per_minute
        if not rpm:
            return
        async with lock:
            now = time.monotonic()
            if self._next_slot > now:
                await asyncio.sleep(self._next_slot - now)
            self._next_slot = max(now, self._next_slot) + 60.0 / rpm

    async def _one(self, client, sem, pace, req, key, mode, max_tokens) -> dict[str, Any]:
        import openai

        o = self.opts
        name = f"openai:{self.name}"
        where = self._redact.text(o.base_url)
        has_video = any(c["type"] == "video" for c in req.content)
        async with sem:
            attempt = 0
            while True:
                as_video = has_video and self._video_ok
                kw: dict[str, Any] = {
                    "model": self.name,
                    "messages": self._messages(req, as_video),
                    "max_tokens": max_tokens,
                    "temperature": o.temperature,
                }
                if mode == "loglik":
                    kw["logprobs"] = True
                    kw["top_logprobs"] = o.top_logprobs
                await self._pace(pace)
                self._stats["requests"] += 1
                REQUESTS["sent"] += 1
                try:
                    resp = await client.chat.completions.create(**kw)
                    break
                except (
                    openai.RateLimitError,
                    openai.InternalServerError,
                    openai.APIConnectionError,
                ) as exc:  # APITimeoutError is one
                    what = _describe_error(exc)
                    if attempt >= o.max_retries:
                        raise EmobenchError(
                            f"{name}: {what} after {attempt + 1} attempts "
                            f"({where}; raise max_retries or timeout?)"
                        ) from None
                    self._stats["retries"] += 1
                    await asyncio.sleep(min(o.retry_backoff * 2**attempt, 60.0))
                    attempt += 1
                except openai.APIStatusError as exc:
                    if as_video and exc.status_code in (400, 415, 422):
                        self._video_ok = False  # the server takes no video: images from now on
                        continue
                    raise EmobenchError(
                        f"{name}: {_describe_error(exc)} ({where}): {self._said(exc)}"
                    ) from None
                except openai.APIError as exc:  # an answer the client could not read
                    raise EmobenchError(
                        f"{name}: {type(exc).__name__} ({where}): {self._said(exc)}"
                    ) from None
        entry = self._redact.value(_entry(resp, mode, name))
        entry["sent_as"] = "video" if as_video else "images"
        u = entry["usage"]
        self._stats["prompt_tokens"] += u.get("prompt_tokens") or 0
        self._stats["completion_tokens"] += u.get("completion_tokens") or 0
        path = self._cache_path(key)
        if path is not None:
            write_json_atomic(path, entry)
        return entry

    def _said(self, exc: Exception) -> str:
        """What the server said in an error, one line, the key redacted (before the cut,
        so that no part of it survives)."""
        return " ".join(self._redact.text(str(getattr(exc, "message", exc))).split())[:200]


def _entry(resp: Any, mode: str, name: str) -> dict[str, Any]:
    if not resp.choices:
        raise EmobenchError(f"{name}: the server answered without a choice")
    choice = resp.choices[0]
    usage = resp.usage
    entry: dict[str, Any] = {
        "text": (choice.message.content or "").strip(),
        "model": resp.model,
        "usage": {
            "prompt_tokens": getattr(usage, "prompt_tokens", None),
            "completion_tokens": getattr(usage, "completion_tokens", None),
        },
    }
    if mode == "loglik":
        content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
        if not content:
            raise EmobenchError(
                f'{name}: scoring = "loglik" needs logprobs, and the server returned none '
                '(use scoring = "generate")'
            )
        first = content[0]
        top = first.top_logprobs or []
        pairs = [[t.token, float(t.logprob)] for t in top] or [[first.token, first.logprob]]
        entry["top_logprobs"] = [[t, lp if np.isfinite(lp) else -1e4] for t, lp in pairs]
    return entry


def _describe_error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"the server answered {status}"
    return f"{type(exc).__name__} (no answer)"


def _run(coro: Any) -> Any:
    """Run ``coro`` to the end from synchronous code (in a worker thread when this
    thread already runs an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
