"""User-facing errors: every expected failure ends as one clear line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class EmobenchError(Exception):
    """Base class for expected, user-facing errors (bad input, missing files, bad config)."""


def _expected_types() -> tuple[type[BaseException], ...]:
    """Errors printed as one line: emobench's own (every module's error classes subclass
    :class:`EmobenchError`), a missing file, and pydantic validation of settings."""
    from pydantic import ValidationError

    return (EmobenchError, FileNotFoundError, ValidationError)


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
