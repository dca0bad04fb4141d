"""The rich progress bar every long emobench job shows: a label, the bar, done/total, an
optional per-task text field (a rate, a loss), elapsed time and ETA. rich is imported only
when a bar is made, so importing this module stays cheap."""

from __future__ import annotations

from typing import Any


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
