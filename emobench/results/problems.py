"""The dataset problems a run recorded (``manifest.json``), summarised for people.

A loader reports each clip it left out or corrected as ``{"clip_id", "kind", "detail"}``
(:mod:`emobench.data.loading`, :mod:`emobench.data.micro`); a run keeps them under
``datasets[<name>].problems``. The end of ``emobench run`` and the report say how many
clips were excluded and why from these records (:func:`exclusion_line`,
:func:`excluded_clips`), so that a dataset with deleted media or unreadable annotations
does not pass for a complete one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Kinds whose clips a loader always leaves out (of the index, or of one fold's split).
EXCLUDING = ("missing-media", "unknown-label", "two-splits")
#: Clips named in one line before "…".
SHOWN = 3


def printable(text: Any) -> str:
    """``text`` as a string any console or UTF-8 file takes (undecodable bytes of a file
    name, kept as surrogates, written as ``\\udcxx``)."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _problems(entry: Any) -> list[Mapping[str, Any]]:
    """A manifest dataset entry's problem records (none when it has no valid list)."""
    raw = entry.get("problems") if isinstance(entry, Mapping) else None
    return [p for p in raw if isinstance(p, Mapping)] if isinstance(raw, list) else []


def excludes(problem: Mapping[str, Any]) -> bool:
    """Whether a problem record stands for a clip left out of the run."""
    if problem.get("clip_id") is None:
        return False
    kind, detail = str(problem.get("kind")), str(problem.get("detail") or "")
    return kind in EXCLUDING or "excluded" in detail


def excluded_clips(entry: Any) -> list[dict[str, str]]:
    """One record per excluded clip (its first problem): ``clip_id``, ``kind``,
    ``detail``, as printable strings, in the order the loader found them."""
    seen: set[str] = set()
    out = []
    for p in _problems(entry):
        cid = printable(p.get("clip_id"))
        if excludes(p) and cid not in seen:
            seen.add(cid)
            kind, detail = printable(p.get("kind")), printable(p.get("detail") or "")
            out.append({"clip_id": cid, "kind": kind, "detail": detail})
    return out


def exclusion_line(dataset: str, entry: Any, examples: bool = True) -> str | None:
    """One line: how many clips of ``dataset`` were excluded, by kind, with the first few
    clips and why (``examples``; None when none was). Other problems (corrected frame
    counts, kept duplicates) are counted at the end."""
    clips = excluded_clips(entry)
    others = [p for p in _problems(entry) if p.get("clip_id") is not None and not excludes(p)]
    if not clips and not others:
        return None
    parts = []
    if clips:
        by_kind = ", ".join(f"{n} {k}" for k, n in counts(clips).items())
        shown = "; ".join(f"{c['clip_id']}: {c['detail']}" for c in clips[:SHOWN])
        more = "; …" if len(clips) > SHOWN else ""
        said = f"{by_kind}: {shown}{more}" if examples else by_kind
        parts.append(f"{len(clips)} clip(s) excluded ({said})")
    if others:
        kinds = counts([{"kind": printable(p.get("kind"))} for p in others])
        parts.append(
            f"{len(others)} other problem(s) corrected or kept "
            f"({', '.join(f'{n} {k}' for k, n in kinds.items())})"
        )
    return f"{printable(dataset)}: {'; '.join(parts)}; all listed in manifest.json"


def exclusion_lines(datasets: Mapping[str, Any]) -> list[str]:
    """:func:`exclusion_line` of each dataset that has one, in order."""
    lines = (exclusion_line(name, entry) for name, entry in datasets.items())
    return [line for line in lines if line]


def counts(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Records per ``kind``, in order of first appearance."""
    out: dict[str, int] = {}
    for c in entries:
        out[c["kind"]] = out.get(c["kind"], 0) + 1
    return out
