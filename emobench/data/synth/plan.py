"""Planning a synth generation: which clip gets which label, subject, split and seed.

Cheap and done in the main process before rendering; each clip's random generator derives
from ``(seed, clip number)`` and each subject's identity from ``(seed, subject number)``,
so the output does not depend on the number of workers or their order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emobench.data.synth.config import SynthConfig
from emobench.data.synth.profiles import class_counts, largest_remainder, parse_profile


@dataclass(frozen=True)
class ClipPlan:
    """What one clip will be, decided before rendering (cheap, in the main process)."""

    number: int
    clip_id: str
    label: str
    subject: int
    micro: bool
    split: str | None  # one-split mode: "train" or "test"
    test_fold: int | None  # 5-fold mode: the one fold whose test split holds this clip


def subject_id(subject: int) -> str:
    """The subject's id in the annotation table, e.g. ``s0007``."""
    return f"s{subject:04d}"


def subject_rng(seed: int, subject: int) -> np.random.Generator:
    """The generator of a subject's identity (shared by all of that subject's clips)."""
    return np.random.default_rng([seed, 1, subject])


def clip_rng(seed: int, number: int) -> np.random.Generator:
    """The generator of one clip: duration, timeline, nuisances and sensor noise."""
    return np.random.default_rng([seed, 0, number])


def _micro_counts(counts: dict[str, int], share: float, total: int) -> dict[str, int]:
    """Micro clips per class: ``share`` of ``total``, spread over the expressive classes in
    proportion to their sizes (neutral clips have nothing to flash)."""
    expressive = {c: n for c, n in counts.items() if c != "neutral"}
    m = min(round(share * total), sum(expressive.values()))
    if not expressive or m == 0:
        return {c: 0 for c in counts}
    per = largest_remainder({c: float(n) for c, n in expressive.items()}, m, minimum=0)
    return {c: per.get(c, 0) for c in counts}


def _group(
    counts: dict[str, int], subjects: list[int], share: float, rng: np.random.Generator
) -> list[tuple[str, int, bool]]:
    """Labels, subjects and micro flags for one group of clips, in random order.

    Clips are laid out class by class and dealt to subjects in turn, so that every subject
    gets a mix of classes; micro clips are a per-class share of the expressive classes.
    """
    total = sum(counts.values())
    micro = _micro_counts(counts, share, total)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    clips: list[tuple[str, int, bool]] = []
    for label, n in counts.items():
        flags = np.zeros(n, dtype=bool)
        flags[rng.permutation(n)[: micro[label]]] = True
        for f in flags:
            clips.append((label, order[len(clips) % len(order)], bool(f)))
    return [clips[i] for i in rng.permutation(len(clips))]


def make_plan(cfg: SynthConfig) -> list[ClipPlan]:
    """Decide label, subject, split/fold and micro flag of every clip (deterministic)."""
    rng = np.random.default_rng([cfg.seed, 2])
    prof = parse_profile(cfg.profile)
    n_train_s, n_test_s = cfg.n_train_subjects, cfg.n_test_subjects
    if cfg.folds == 1:
        test_profile = parse_profile("uniform:" + ",".join(prof.classes))
        test_counts = class_counts(
            prof if cfg.test_split == "natural" else test_profile, cfg.n_test
        )
        groups = [
            ("train", class_counts(prof, cfg.n_train), list(range(n_train_s))),
            ("test", test_counts, list(range(n_train_s, n_train_s + n_test_s))),
        ]
    else:
        everyone = list(range(n_train_s + n_test_s))
        groups = [(None, class_counts(prof, cfg.n_train + cfg.n_test), everyone)]
    fold_of: dict[int, int] = {}
    if cfg.folds == 5:  # subjects dealt to 5 folds: a fold's test subjects never train it
        subjects = groups[0][2]
        for rank, i in enumerate(rng.permutation(len(subjects))):
            fold_of[subjects[i]] = rank % 5 + 1
    total = cfg.n_train + cfg.n_test
    width = max(5, len(str(total - 1)))
    plan: list[ClipPlan] = []
    for split, counts, subjects in groups:
        for label, subject, micro in _group(counts, subjects, cfg.micro_share, rng):
            number = len(plan)
            plan.append(
                ClipPlan(
                    number=number,
                    clip_id=f"synth_{number:0{width}d}",
                    label=label,
                    subject=subject,
                    micro=micro,
                    split=split,
                    test_fold=fold_of.get(subject),
                )
            )
    return plan
