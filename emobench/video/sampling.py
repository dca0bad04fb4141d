"""Temporal samplers: which frames of a clip a model sees, as pure functions of the clip.

A sampler spec is a short string (``uniform:16``, ``fps:2``, ``dense``,
``segment-random:8``, ``window:4``) parsed into a :class:`SamplerSpec`; :func:`sample`
turns (clip length, fps, spec, seed, annotated window) into sorted int64 frame indices, and
:func:`apply_order` then optionally reorders them (``original``, ``shuffle``, ``reverse``)
for temporal-order ablations. Samplers and orders are registries keyed by name, so a new
sampler is one decorated function. Everything here is deterministic: randomness comes only
from ``numpy.random.Generator(PCG64)`` seeded by the caller's seed (plus a fixed per-purpose
salt, so that a sampler's draws and a shuffle's draws are independent streams).

Segment convention (shared by ``uniform``, ``fps``, ``window`` and ``segment-random``):
a span of ``n`` frames is cut into ``K`` equal segments; segment ``i`` covers
``[i*n/K, (i+1)*n/K)`` and its centre frame is ``floor((i + 0.5) * n / K)``, computed in
exact integer arithmetic as ``((2*i + 1) * n) // (2*K)``. This is the usual DFER test
protocol (e.g. 16 frames per clip). When ``K > n`` segments are shorter than a frame and
frames repeat; :func:`n_unique` reports how many distinct frames were actually seen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from emobench.errors import EmobenchError
from emobench.registry import Registry, suggest

Window = tuple[int, int]
ParamKind = Literal["count", "rate", "none"]

# Salts keep the sampler's and the order transform's random streams independent even when
# the caller passes the same seed to both.
_SALT_SAMPLER = 0x5A3
_SALT_ORDER = 0x0D3
# Re-draws tried when a shuffle reproduces the original order, before falling back to a
# rotation by one position (which always differs for a non-constant array).
_SHUFFLE_REDRAWS = 8


class SamplingError(EmobenchError):
    """A sampler cannot be applied to this clip (bad length, missing or invalid window)."""


class SamplerSpecError(SamplingError):
    """A sampler or order spec string is unknown or ill-formed."""


@dataclass(frozen=True)
class _SamplerEntry:
    """A registered sampler: its function, what its parameter means, and its usage form."""

    fn: Callable[[int, float, SamplerSpec, np.random.Generator, Window | None], np.ndarray]
    param: ParamKind
    usage: str


OrderFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]
#: Samplers and order transforms by name, in registration order.
SAMPLERS: Registry[_SamplerEntry] = Registry("sampler", error=SamplerSpecError, sort=False)
ORDERS: Registry[OrderFn] = Registry("frame order", error=SamplerSpecError, sort=False)


def _allowed_forms(kind: object = None) -> str:
    best = suggest(kind, SAMPLERS) if kind is not None else None
    hint = f"did you mean {best!r}? " if best is not None and best != kind else ""
    return hint + "allowed forms: " + ", ".join(entry.usage for entry in SAMPLERS.values())


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler spec: ``kind`` plus a frame count ``k`` or a rate ``fps``.

    ``str(spec)`` gives the canonical spec string, and ``parse_spec(str(spec)) == spec``.
    """

    kind: str
    k: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        entry = SAMPLERS.get(self.kind)
        if entry is None:
            raise SamplerSpecError(f"unknown sampler {self.kind!r}; {_allowed_forms(self.kind)}")
        want_k, want_fps = entry.param == "count", entry.param == "rate"
        k_ok = (self.k is None) if not want_k else _is_pos_int(self.k)
        fps_ok = (self.fps is None) if not want_fps else _is_pos_float(self.fps)
        if not (k_ok and fps_ok):
            raise SamplerSpecError(
                f"sampler {self.kind!r} got k={self.k!r}, fps={self.fps!r}; "
                f"expected the form {entry.usage}"
            )
        if want_fps:
            object.__setattr__(self, "fps", float(self.fps))  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.k is not None:
            return f"{self.kind}:{self.k}"
        if self.fps is not None:
            return f"{self.kind}:{_fmt_float(self.fps)}"
        return self.kind


def _is_pos_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and int(x) >= 1


def _is_pos_float(x: object) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, bool)
        and math.isfinite(float(x))
        and float(x) > 0
    )


def _fmt_float(x: float) -> str:
    """Shortest exact text for a float, without a trailing ``.0`` (``5.0`` -> ``5``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


_SPEC_RE = re.compile(r"^\s*([a-z][a-z0-9_-]*)\s*(?::\s*([^\s:]+)\s*)?$")


def parse_spec(spec: str | SamplerSpec) -> SamplerSpec:
    """Parse a sampler spec string such as ``uniform:16`` or ``fps:2.5``.

    Raises :class:`SamplerSpecError` naming the spec and the allowed forms.
    """
    if isinstance(spec, SamplerSpec):
        return spec
    if not isinstance(spec, str):
        raise SamplerSpecError(f"sampler spec must be a string, got {spec!r}; {_allowed_forms()}")
    m = _SPEC_RE.match(spec.lower())
    entry = SAMPLERS.get(m.group(1)) if m else None
    if m is None or entry is None:
        kind = m.group(1) if m else spec
        raise SamplerSpecError(f"unknown sampler spec {spec!r}; {_allowed_forms(kind)}")
    kind, arg = m.group(1), m.group(2)
    bad = SamplerSpecError(
        f"ill-formed sampler spec {spec!r}; expected the form {entry.usage} "
        "(K a positive integer, F a positive number); " + _allowed_forms()
    )
    if entry.param == "none":
        if arg is not None:
            raise bad
        return SamplerSpec(kind)
    if arg is None:
        raise bad
    try:
        if entry.param == "count":
            if not arg.isdigit():
                raise ValueError(arg)
            return SamplerSpec(kind, k=int(arg))
        return SamplerSpec(kind, fps=float(arg))
    except (ValueError, SamplerSpecError):
        raise bad from None


def register_sampler(
    name: str, param: ParamKind, usage: str
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator: add a sampler ``fn(n_frames, fps, spec, rng, window) -> indices``."""

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        SAMPLERS.add(name, _SamplerEntry(fn=fn, param=param, usage=usage))
        return fn

    return deco


def register_order(name: str) -> Callable[[OrderFn], OrderFn]:
    """Decorator: add an order transform ``fn(indices, rng) -> reordered indices``."""
    return ORDERS.register(name)


def between_indices(a: int, b: int, g: int) -> np.ndarray:
    """Up to ``g`` frame indices evenly spaced strictly between ``a`` and ``b``, from ``a``
    towards ``b`` (descending when ``b < a``): MSCE's in-between frames of one gap.

    Fewer when the gap holds fewer frames; none for adjacent or equal frames.
    """
    a, b, g = int(a), int(b), int(g)
    inner = abs(b - a) - 1
    if inner <= 0 or g <= 0:
        return np.empty(0, dtype=np.int64)
    n = min(g, inner)
    steps = np.rint(np.arange(1, n + 1) * (abs(b - a) / (n + 1))).astype(np.int64)
    steps = np.unique(np.clip(steps, 1, abs(b - a) - 1))
    return (a + np.sign(b - a) * steps).astype(np.int64)


def segment_centres(n: int | np.ndarray, k: int) -> np.ndarray:
    """Centre frame of each of ``k`` equal segments of ``n`` frames: ``floor((i+.5)*n/k)``.

    ``n`` is one clip length (→ ``(k,)`` indices) or an array of lengths, e.g. a training
    batch's ``(B,)`` (→ ``(B, k)``): the same integer arithmetic either way.
    """
    n = np.asarray(n, dtype=np.int64)[..., None]
    i = np.arange(k, dtype=np.int64)
    return np.minimum(((2 * i + 1) * n) // (2 * k), n - 1)


def segment_random(n: int | np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random frame in each of ``k`` equal segments of ``n`` frames.

    Segment ``i`` is ``[floor(i*n/k), floor((i+1)*n/k))``; when ``k > n`` a segment can be
    empty and then yields its start frame, so frames repeat as in ``uniform``. ``n`` is one
    clip length (→ ``(k,)``) or an array of lengths (→ ``(B, k)``, TSN sampling of a training
    batch); the draws come from ``rng`` in row-major order.
    """
    n = np.asarray(n, dtype=np.int64)[..., None]
    bounds = (np.arange(k + 1, dtype=np.int64) * n) // k
    start = bounds[..., :-1]
    width = np.maximum(bounds[..., 1:] - start, 1)
    return np.minimum(start + rng.integers(0, width), n - 1)


# --- samplers ---------------------------------------------------------------------------


@register_sampler("uniform", "count", "uniform:K")
def _uniform(
    n_frames: int, fps: float, spec: SamplerSpec, rng: np.random.Generator, window: Window | None
) -> np.ndarray:
    """Centres of K equal segments of the whole clip (the common DFER test protocol)."""
    assert spec.k is not None
    return segment_centres(n_frames, spec.k)


@register_sampler("fps", "rate", "fps:F")
def _fps(
    n_frames: int, fps: float, spec: SamplerSpec, rng: np.random.Generator, window: Window | None
) -> np.ndarray:
    """F frames per second of video: K = max(1, round-half-up(n/fps*F)) capped at n."""
    assert spec.fps is not None
    if not _is_pos_float(fps):
        raise SamplingError(f"sampler {spec} needs the clip's fps > 0, got {fps!r}")
    k = int(math.floor(n_frames / float(fps) * spec.fps + 0.5))
    k = min(max(1, k), n_frames)
    return segment_centres(n_frames, k)


@register_sampler("dense", "none", "dense")
def _dense(
    n_frames: int, fps: float, spec: SamplerSpec, rng: np.random.Generator, window: Window | None
) -> np.ndarray:
    """Every frame of the clip."""
    return np.arange(n_frames, dtype=np.int64)


@register_sampler("segment-random", "count", "segment-random:K")
def _segment_random(
    n_frames: int, fps: float, spec: SamplerSpec, rng: np.random.Generator, window: Window | None
) -> np.ndarray:
    """One uniformly random frame per equal segment (TSN-style training augmentation; see
    :func:`segment_random`)."""
    assert spec.k is not None
    return segment_random(n_frames, spec.k, rng)


@register_sampler("window", "count", "window:K")
def _window(
    n_frames: int, fps: float, spec: SamplerSpec, rng: np.random.Generator, window: Window | None
) -> np.ndarray:
    """Centres of K equal segments of the annotated onset..offset window (inclusive)."""
    assert spec.k is not None
    if window is None:
        raise SamplingError(
            f"sampler {spec} needs an onset/offset window, but the clip has none "
            "(use uniform:K for clips without annotated windows)"
        )
    onset, offset = window
    return onset + segment_centres(offset - onset + 1, spec.k)


# --- order transforms -------------------------------------------------------------------


@register_order("original")
def _original(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep the sampled (ascending) order."""
    return indices.copy()


@register_order("reverse")
def _reverse(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Play the frames backwards."""
    return indices[::-1].copy()


@register_order("shuffle")
def _shuffle(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded random permutation that never equals the original order.

    If a draw reproduces the input (always possible, likely for K = 2 or many repeated
    frames) it is re-drawn up to ``_SHUFFLE_REDRAWS`` times, then rotated by one position,
    which differs from the input whenever the input is not constant. A constant input (one
    frame, or one frame repeated) has no other order and is returned unchanged.
    """
    if indices.size < 2 or np.all(indices == indices[0]):
        return indices.copy()
    for _ in range(_SHUFFLE_REDRAWS):
        out = indices[rng.permutation(indices.size)]
        if not np.array_equal(out, indices):
            return out
    return np.roll(indices, 1)


# --- public API -------------------------------------------------------------------------


def _rng(seed: int, salt: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SamplingError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.Generator(np.random.PCG64([int(seed), salt]))


def _check_window(window: Sequence[int] | None, n_frames: int) -> Window | None:
    if window is None:
        return None
    try:
        onset, offset = (int(w) for w in window)
    except (TypeError, ValueError):
        raise SamplingError(f"window must be (onset, offset) integers, got {window!r}") from None
    if not 0 <= onset <= offset < n_frames:
        raise SamplingError(
            f"window ({onset}, {offset}) is not a valid 0-based inclusive range inside a "
            f"{n_frames}-frame clip"
        )
    return onset, offset


def sample(
    n_frames: int,
    fps: float,
    spec: str | SamplerSpec,
    seed: int = 0,
    window: tuple[int, int] | None = None,
) -> np.ndarray:
    """Frame indices (int64, ascending, possibly repeated) that ``spec`` picks from a clip.

    ``window`` is the annotated (onset, offset) frame range, 0-based and inclusive; only
    ``window:K`` requires it. Raises :class:`SamplerSpecError` for a bad spec and
    :class:`SamplingError` for a clip the sampler cannot handle.
    """
    parsed = parse_spec(spec)
    if not _is_pos_int(n_frames):
        raise SamplingError(f"clip must have at least one frame, got n_frames={n_frames!r}")
    n_frames = int(n_frames)
    win = _check_window(window, n_frames)
    rng = _rng(seed, _SALT_SAMPLER)
    out = SAMPLERS[parsed.kind].fn(n_frames, fps, parsed, rng, win)
    return np.asarray(out, dtype=np.int64)


def apply_order(indices: np.ndarray, order: str, seed: int = 0) -> np.ndarray:
    """Reorder sampled indices by a named order transform (``original``/``shuffle``/``reverse``)."""
    fn = ORDERS.get(order.strip().lower()) if isinstance(order, str) else None
    if fn is None:
        raise SamplerSpecError(ORDERS.message(order))
    arr = np.asarray(indices, dtype=np.int64)
    return fn(arr, _rng(seed, _SALT_ORDER))


def n_unique(indices: np.ndarray | Sequence[int]) -> int:
    """How many distinct frames a sampling actually contains (< K when frames repeat)."""
    return int(np.unique(np.asarray(indices, dtype=np.int64)).size)


def window_hit(indices: np.ndarray | Sequence[int], onset: int | None, offset: int | None) -> int:
    """How many sampled frames fall inside [onset, offset] (inclusive); 0 without a window."""
    if onset is None or offset is None:
        return 0
    arr = np.asarray(indices, dtype=np.int64)
    return int(np.count_nonzero((arr >= onset) & (arr <= offset)))


def union_indices(
    n_frames: int,
    fps: float,
    specs: Iterable[str | SamplerSpec],
    seed: int = 0,
    window: tuple[int, int] | None = None,
) -> np.ndarray:
    """Sorted unique union of the frames that several specs pick from one clip.

    A sweep decodes/encodes this set once per clip, then each spec gathers its frames.
    """
    parts = [sample(n_frames, fps, s, seed=seed, window=window) for s in specs]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))
