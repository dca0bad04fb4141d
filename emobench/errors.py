"""User-facing errors: every expected failure ends as one clear line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class EmobenchError(Exception):
    """Base class for expected, user-facing errors (bad input, missing files, bad config)."""


def _expected_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [EmobenchError, FileNotFoundError]
    from emobench.data.index import ClipIndexError
    from emobench.data.registry import UnknownDatasetError
    from emobench.labels import UnknownLabelError

    types += [ClipIndexError, UnknownDatasetError, UnknownLabelError]
    try:
        from pydantic import ValidationError

        types.append(ValidationError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def run_cli(body: Callable[[], None]) -> None:
    """Run a command body; print expected errors as one ``error: ...`` line and exit 1."""
    import typer

    try:
        body()
    except KeyboardInterrupt:
        typer.echo("interrupted; finished work is kept and a rerun resumes", err=True)
        raise typer.Exit(130) from None
    except _expected_types() as exc:
        msg = " ".join(str(exc).split())
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(1) from None
    sys.stdout.flush()
