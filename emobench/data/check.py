"""`emobench data check`: is a local dataset copy usable, and how long-tailed is it?

Per fold and split: clips per class in head → tail order (the fold's training counts,
:func:`emobench.metrics.head_to_tail`), the imbalance ratio (largest / smallest class of
that split, over the classes it has), each class's head / medium / tail group (the
``relative`` rule of :func:`emobench.metrics.class_groups` on the fold's training counts)
and frame-count statistics (min / median / max); then every problem the loader reported
(``load_dataset``: ``{"clip_id", "kind", "detail"}``; loaders without one report none).

A dataset is *unusable* (:attr:`CheckReport.unusable`, one line saying why) when it has no
clips, a split of the dataset (train and test always, val when it has one) is empty in
some fold, a fold's training split has fewer than
2 classes, or every clip has a problem.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import tomllib

from emobench.data import registry
from emobench.errors import EmobenchError
from emobench.metrics.groups import class_groups, head_to_tail

SPLIT_ORDER = ("train", "val", "test")


class DataCheckError(EmobenchError, ValueError):
    """A bad ``--option`` or ``--fold`` argument of ``emobench data check``."""


@dataclass(frozen=True)
class SplitSummary:
    """One split of one fold: clips per class (head → tail), ratio, frame statistics."""

    fold: int
    split: str
    n_clips: int
    counts: dict[str, int]  # present classes only, head → tail (the fold's training order)
    missing: list[str]  # classes of the fold absent from this split
    ratio: float | None  # largest / smallest present class; None without clips
    frames: tuple[int, float, int] | None  # min, median, max n_frames


@dataclass
class CheckReport:
    dataset: str
    root: str
    folds: dict[int, list[SplitSummary]]
    groups: dict[int, dict[str, str]]  # fold -> class -> head/medium/tail (training counts)
    order: dict[int, list[str]]  # fold -> classes head → tail
    problems: list[dict[str, Any]] = field(default_factory=list)
    n_clips: int = 0
    unusable: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document (fold keys as strings; counts head → tail)."""
        return {
            "dataset": self.dataset,
            "root": self.root,
            "folds": {
                str(fold): {
                    s.split: {"n_clips": s.n_clips, "counts": dict(s.counts)} for s in splits
                }
                for fold, splits in self.folds.items()
            },
            "problems": [
                {k: p.get(k) for k in ("clip_id", "kind", "detail")} for p in self.problems
            ],
        }


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings as loader options; a value is TOML when it parses as one
    value (``5``, ``true``, ``"x"``, ``[1, 2]``), else the text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataCheckError(f"--option {item!r}: expected key=value")
        try:
            parsed = tomllib.loads(f"v = {raw}")
            value = parsed["v"] if list(parsed) == ["v"] else raw.strip()
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key] = value
    return out


def load_with_problems(
    name: str, root: str | Path, options: Mapping[str, Any] | None = None
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """``load_dataset(name, root, **options)`` where the registry has it, else the plain
    clip index with no problems."""

    load_dataset = getattr(registry, "load_dataset", None)
    if load_dataset is not None:
        index, problems = load_dataset(name, root, **dict(options or {}))
        return index, [dict(p) for p in problems]
    return registry.load_index(name, root, **dict(options or {})), []


def _split_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _counts(sub: pl.DataFrame) -> dict[str, int]:
    g = sub.group_by("label").len()
    return dict(zip(g["label"].to_list(), g["len"].to_list(), strict=True))


def check_index(
    index: pl.DataFrame,
    problems: Sequence[Mapping[str, Any]] = (),
    *,
    dataset: str = "dataset",
    root: str = "",
    fold: int | None = None,
) -> CheckReport:
    """Summarise a clip index (and the loader's problems) and decide whether it is usable.

    ``fold``: only that fold (a :class:`DataCheckError` when the index has no such fold).
    """
    problems = [dict(p) for p in problems]
    all_folds = sorted(index["fold"].unique().to_list()) if index.height else []
    if fold is not None:
        if fold not in all_folds:
            have = ", ".join(map(str, all_folds)) or "none"
            raise DataCheckError(f"{dataset} has no fold {fold} (folds: {have})")
        index = index.filter(pl.col("fold") == fold)
    folds_present = [fold] if fold is not None else all_folds
    # every fold needs a training and a test split; a validation split is optional
    splits_all = sorted(set(index["split"].to_list()) | {"train", "test"}, key=_split_key)
    report = CheckReport(dataset, root, {}, {}, {}, problems, index["clip_id"].n_unique())
    reasons: list[str] = []
    for f in folds_present:
        sub = index.filter(pl.col("fold") == f)
        train = _counts(sub.filter(pl.col("split") == "train"))
        labels = sorted(set(sub["label"].to_list()))
        first = next((s for s in splits_all if s in set(sub["split"].to_list())), None)
        ref = train or (_counts(sub.filter(pl.col("split") == first)) if first else {})
        order = head_to_tail(labels, ref)
        groups, _ = class_groups(train)
        report.order[f] = order
        report.groups[f] = groups
        summaries = []
        for split in splits_all:
            part = sub.filter(pl.col("split") == split)
            counts = _counts(part)
            present = [lab for lab in order if counts.get(lab, 0) > 0]
            n_frames = part["n_frames"].to_list()
            summaries.append(
                SplitSummary(
                    fold=f,
                    split=split,
                    n_clips=part.height,
                    counts={lab: counts[lab] for lab in present},
                    missing=[lab for lab in order if lab not in counts],
                    ratio=(max(counts.values()) / min(counts.values()) if counts else None),
                    frames=(
                        (min(n_frames), float(statistics.median(n_frames)), max(n_frames))
                        if n_frames
                        else None
                    ),
                )
            )
            where = f"fold {f}" if len(all_folds) > 1 else "the dataset"
            if part.height == 0:
                reasons.append(f"the {split} split is empty in {where}")
            elif split == "train" and len(counts) < 2:
                reasons.append(
                    f"the training split of {where} has {len(counts)} class "
                    f"({', '.join(counts)}); at least 2 are needed"
                )
        report.folds[f] = summaries
    # loaders drop clips whose media are missing and list them as problems; a clip still in
    # the index with a problem (other than a note) counts as problematic too
    bad_ids = {
        str(p["clip_id"])
        for p in problems
        if p.get("clip_id") is not None and p.get("kind") != "note"
    }
    ids = set(index["clip_id"].to_list())
    if index.height == 0 and bad_ids:
        report.unusable = f"every clip has a problem ({len(bad_ids)} clip(s), listed above)"
    elif index.height == 0:
        report.unusable = "no clips"
    elif ids <= bad_ids:
        report.unusable = f"every clip has a problem ({len(ids)} clip(s), listed above)"
    elif reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        report.unusable = reasons[0] + more
    return report


def check_dataset(
    name: str,
    root: str | Path,
    *,
    fold: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> CheckReport:
    """Load dataset ``name`` from ``root`` (with loader ``options``) and check it."""
    index, problems = load_with_problems(name, root, options)
    return check_index(index, problems, dataset=name, root=str(root), fold=fold)


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.1f}"


def _fmt_frames(fr: tuple[int, float, int] | None) -> str:
    if fr is None:
        return "-"
    lo, med, hi = fr
    return f"{lo} / {med:g} / {hi}"


def report_renderables(report: CheckReport) -> list:
    """Rich tables and lines for the terminal (rich imported lazily)."""
    from rich.table import Table
    from rich.text import Text

    out: list = []
    multi = len(report.folds) > 1 or any(f != 1 for f in report.folds)
    for f, splits in report.folds.items():
        suffix = f", fold {f}" if multi else ""
        t = Table(title=f"{report.dataset} at {report.root}: clips per class{suffix}")
        t.add_column("class")
        t.add_column("group")
        for s in splits:
            t.add_column(s.split, justify="right")
        groups = report.groups.get(f, {})
        for lab in report.order.get(f, []):
            t.add_row(lab, groups.get(lab, "-"), *(str(s.counts.get(lab, 0)) for s in splits))
        t.add_section()
        t.add_row("clips", "", *(str(s.n_clips) for s in splits))
        t.add_row("imbalance (max/min)", "", *(_fmt_ratio(s.ratio) for s in splits))
        t.add_row("frames min / median / max", "", *(_fmt_frames(s.frames) for s in splits))
        out.append(t)
    for f, splits in report.folds.items():
        for s in splits:
            if s.missing:
                where = f"fold {f} {s.split}" if multi else s.split
                out.append(Text(f"no {', '.join(s.missing)} clips in {where}", style="yellow"))
    if report.problems:
        t = Table(title=f"{len(report.problems)} problem(s)")
        for col in ("clip", "kind", "detail"):
            t.add_column(col)
        for p in report.problems:
            t.add_row(str(p.get("clip_id")), str(p.get("kind")), str(p.get("detail")))
        out.append(t)
    else:
        out.append(Text("no problems found"))
    if report.unusable:
        out.append(Text(f"unusable: {report.unusable}", style="bold red"))
    else:
        out.append(Text(f"usable: {report.n_clips} clips", style="green"))
    return out


__all__ = [
    "CheckReport",
    "DataCheckError",
    "SplitSummary",
    "check_dataset",
    "check_index",
    "load_with_problems",
    "parse_options",
    "report_renderables",
]
