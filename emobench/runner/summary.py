"""What a run reports back (:class:`RunSummary`), its one folder error, and the small
records the engine writes (skip lists, loader problems, decoding counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError
from emobench.runner.distributed import Rank
from emobench.runner.plan import Cell
from emobench.video.frames import decode_stats, reset_decode_stats


class OutputFolderError(EmobenchError):
    """The results folder cannot be used (a file, not writable, disk full)."""


@dataclass
class RunSummary:
    out: Path
    cells: int
    parts_total: int
    parts_done_before: int
    parts_computed: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    #: this process's place in a launch (rank 0 of 1 for a single process)
    rank: Rank = field(default_factory=Rank)
    #: False on ranks > 0 (rank 0 merges and finalises the folder)
    finalized: bool = True


#: One unit of work: the pending cells of a group on one fold.
Unit = tuple[list[Cell], int]


def problem_entry(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's record of a loader's problems: the list and a count per kind."""
    if not problems:
        return {}
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[str(p.get("kind"))] = kinds.get(str(p.get("kind")), 0) + 1
    return {"problems": problems, "problem_counts": kinds}


def decoded_counts() -> dict[str, Any]:
    """What the frame sources decoded in this process, by backend, with fallbacks."""
    return decode_stats().as_dict()


def reset_decoded_counts() -> None:
    reset_decode_stats()


def bad_list(bad: dict[str, str], cell: Cell, fold: int) -> list[dict[str, Any]]:
    return [
        {"cell_id": cell.cell_id, "fold": fold, "clip_id": cid, "reason": reason}
        for cid, reason in sorted(bad.items())
    ]
