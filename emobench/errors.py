"""User-facing errors: every expected failure ends as one clear line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class EmobenchError(Exception):
    """Base class for expected, user-facing errors (bad input, missing files, bad config)."""


class PretrainError(EmobenchError):
    """Bad pre-training settings or an output folder that cannot be written (the
    ``emobench pretrain`` commands)."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line for a pydantic error: ``<path>: <what is wrong> (got <value>)``, plus how
    many further errors there are."""
    errs = exc.errors(include_url=False)
    first = errs[0]
    loc = ".".join(str(x) for x in (*filter(None, prefix.split(".")), *first["loc"]))
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    if first["type"] not in ("value_error", "unknown_setting", "missing") and (
        got is None or isinstance(got, (str, int, float))
    ):
        text = repr(got)
        msg += f" (got {text if len(text) <= 40 else text[:37] + '...'})"
    more = f" (and {len(errs) - 1} more error(s))" if len(errs) > 1 else ""
    return f"{loc or '(top level)'}: {msg}{more}"


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
        from pydantic import ValidationError

        text = str(exc)
        if isinstance(exc, ValidationError):  # pydantic's multi-line table, as one line
            text = f"{exc.title}: {describe_validation_error(exc)}"
        msg = " ".join(text.split())
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(1) from None
    sys.stdout.flush()
