"""The rich progress bar every long emobench job shows: a label, the bar, done/total, an
optional per-task text field (a rate, a loss), elapsed time and ETA. rich is imported only
when a bar is made, so importing this module stays cheap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A long job's progress callback: ``progress(step, total, metrics)``; ``metrics`` may name
#: the ``phase`` and carry figures such as the ``loss`` (:class:`PhaseProgress` shows them).
ProgressFn = Callable[[int, int, dict[str, Any]], None]


def progress_bar(
    label: str = "[bold]{task.description}", field: str | None = None, **options: Any
) -> Any:
    """A ``rich.progress.Progress`` with emobench's columns.

    ``label`` is the first column's template; ``field`` names a per-task field shown after
    the counts (tasks must then be added with that keyword); ``options`` go to ``Progress``
    (``console``, ``transient``, ...).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if field is not None:
        columns.append(TextColumn(f"{{task.fields[{field}]}}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, **options)


class PhaseProgress:
    """A progress bar with one task per training phase, for ``progress(step, total,
    metrics)`` callbacks whose ``metrics["phase"]`` names the phase (``metrics["loss"]``,
    when given, is shown beside the counts). A phase's task appears when it first reports,
    labelled from ``labels`` (else ``default``). Use as a context manager; the instance is
    the callback."""

    def __init__(self, labels: dict[str, str], default: str = "working", **options: Any) -> None:
        self.labels = dict(labels)
        self.default = default
        self.bar = progress_bar(field="loss", **options)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> PhaseProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, step: int, total: int, metrics: dict[str, Any]) -> None:
        phase = str(metrics.get("phase", "train"))
        if phase not in self.tasks:
            label = self.labels.get(phase, self.default)
            self.tasks[phase] = self.bar.add_task(label, total=total, loss="")
        loss = f"loss {metrics['loss']:.3f}" if metrics.get("loss") is not None else ""
        self.bar.update(self.tasks[phase], completed=step, total=total, loss=loss)
