"""Which of a dataset's alternative media folders to read (MAFW clips / frames / faces,
CASME II raw / cropped images).

Copies of one dataset differ in what they ship: MAFW as videos, as frame folders or with
user-extracted faces; CASME II with ``CASME2_RAW_selected/``, the full ``CASME2-RAW/`` or
only ``Cropped/``. A loader option (``media``, ``images``) names the choice; its default
``auto`` takes the first folder that exists, in the loader's order of preference, and says
which one it took (and how to take another) when several exist. A named choice whose folder
is missing is an error that lists the folders that do exist and the option naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError

#: The option value that picks the first existing folder.
AUTO = "auto"


@dataclass(frozen=True)
class FolderChoice:
    """The chosen option value, its folder, and a note when other choices existed too."""

    value: str
    folder: Path
    note: str | None = None


def _hint(option: str, value: str) -> str:
    return (
        f"--option {option}={value} (emobench data check), "
        f'options = {{ {option} = "{value}" }} in a run config'
    )


def choose_folder(
    dataset: str,
    root: Path,
    option: str,
    value: str,
    choices: Mapping[str, Sequence[str]],
    *,
    error: type[EmobenchError] = EmobenchError,
) -> FolderChoice:
    """The folder under ``root`` that option ``option = value`` selects.

    ``choices`` maps each option value to its candidate folders (relative to ``root``, the
    first existing one wins), in order of preference. ``value`` ``auto`` takes the first
    value whose folder exists; a note names the option when several exist. Raises ``error``
    (one line) for an unknown value, when no folder exists, or when the named one is absent.
    """
    if value != AUTO and value not in choices:
        allowed = ", ".join((AUTO, *choices))
        raise error(f"{dataset}: unknown {option} option {value!r}; allowed: {allowed}")
    present: dict[str, str] = {}  # option value -> its existing folder, relative to root
    for name, folders in choices.items():
        found = next((f for f in folders if (root / f).is_dir()), None)
        if found is not None:
            present[name] = found
    shown = {name: ", ".join(f"{f}/" for f in fs) for name, fs in choices.items()}
    if value != AUTO:
        if value in present:
            return FolderChoice(value, root / present[value])
        where = f"no {shown[value]} under {root}"
        if not present:
            raise error(f"{dataset}: {option} = {value}: {where}, nor any other media folder")
        other = next(iter(present))
        listed = ", ".join(f"{present[n]}/ ({option}={n})" for n in present)
        raise error(
            f"{dataset}: {option} = {value}: {where}; found {listed}: use {_hint(option, other)}"
        )
    if not present:
        looked = "; ".join(f"{shown[n]} ({option}={n})" for n in choices)
        raise error(f"{dataset}: no media folder under {root}: looked for {looked}")
    chosen, *others = present
    note = None
    if others:
        also = ", ".join(f"{present[n]}/ ({option}={n})" for n in others)
        note = (
            f"{option}: using {present[chosen]}/ ({option}={chosen}); also present: {also}; "
            f"to use another, pass {_hint(option, others[0])}"
        )
    return FolderChoice(chosen, root / present[chosen], note)


def with_choice_note(problems: list[dict[str, Any]], note: str | None) -> list[dict[str, Any]]:
    """A loader's problems plus a choice note: a ``note`` problem flagged ``warn``, which a
    run also prints as a warning (:func:`emobench.runner.datasets.prepare_dataset`)."""
    if note is None:
        return problems
    return [*problems, {"clip_id": None, "kind": "note", "detail": note, "warn": True}]


__all__ = ["AUTO", "FolderChoice", "choose_folder", "with_choice_note"]
