"""The answer cache every chat backend keeps: where it lives, the content-keyed form of a
request, and the check an entry passes when read (:func:`answer_problem`; an entry that
fails it is recomputed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.request import Request, array_digest
from emobench.models.base import FitContext


def answer_cache_dir(ctx: FitContext, option: str | None, name: str) -> Path:
    """The answer cache folder: the ``cache_dir`` option, else ``<run cache>/<name>``, else
    ``~/.cache/emobench/<name>``."""
    if option:
        return Path(option).expanduser()
    if ctx.cache_dir is not None:
        return Path(ctx.cache_dir) / name
    return Path("~/.cache/emobench").expanduser() / name


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, int) and not isinstance(x, bool))


def answer_problem(entry: Any, n_labels: int, required: Sequence[str] = ("text",)) -> str | None:
    """Why a cached answer is not one the model writes, or None: an object with the
    ``required`` keys; ``text`` a string, ``scores`` ``n_labels`` finite numbers, and what
    else a model records (``visual_tokens``, ``pixels``, ``model``, ``usage``,
    ``top_logprobs``) of its type."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    missing = [k for k in required if k not in entry]
    if missing:
        return f"has no {missing[0]!r}"
    checks = {
        "text": lambda v: isinstance(v, str),
        "scores": lambda v: isinstance(v, list) and len(v) == n_labels and all(map(_number, v)),
        "visual_tokens": _int_or_none,
        "pixels": lambda v: isinstance(v, list) and all(map(_number, v)),
        "model": lambda v: v is None or isinstance(v, str),
        "usage": lambda v: isinstance(v, dict) and all(map(_int_or_none, v.values())),
        "top_logprobs": lambda v: (
            isinstance(v, list)
            and all(isinstance(p, list) and len(p) == 2 and _number(p[1]) for p in v)
        ),
    }
    for key, ok in checks.items():
        if key in entry and not ok(entry[key]):
            return f"has a {key!r} of the wrong type or length"
    return None


def content_digest(req: Request) -> list[list[Any]]:
    """The cache-key form of a request's content: texts as they are, frames by digest."""
    items: list[list[Any]] = []
    for c in req.content:
        if c["type"] == "text":
            items.append(["text", c["text"]])
        else:
            items.append([c["type"], array_digest(np.asarray(c[c["type"]]))])
    return items
