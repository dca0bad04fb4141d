"""Atomic file writes: a reader never sees half a file, an interrupted write leaves the old one.

Every writer here goes through a temporary file in the target's folder (so the rename stays on
one file system), which is flushed and fsynced, given the target's mode (0o644 for a new file),
renamed over the target with :func:`os.replace` (atomic on POSIX), and the folder fsynced so
the rename survives a crash. On any error, ``KeyboardInterrupt`` included, the temporary file
is removed and the target keeps its old content. Missing parent folders are created. A write
that fails for a system reason (disk full, over ``ulimit -f``, no permission), whether the
writer says so with an ``OSError`` or with its own error carrying an OS error (safetensors'
and polars' ``... (os error 27)``), is an :class:`AtomicWriteError`: one line naming the file.

- :func:`atomic_open` yields a binary file object (for writers that take one);
- :func:`atomic_path` yields a temporary path (for writers that need a file name, e.g.
  ``safetensors.torch.save_file`` or ``polars.DataFrame.write_csv``);
- :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`write_json_atomic` and
  :func:`write_parquet_atomic` write one value.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from emobench.errors import EmobenchError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "AtomicWriteError",
    "JsonValueError",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "to_json",
    "write_json_atomic",
    "write_parquet_atomic",
]

PathLike = str | os.PathLike[str]


class JsonValueError(EmobenchError, ValueError):
    """A value cannot be written as JSON (NaN/inf, or a type JSON does not hold)."""


class AtomicWriteError(EmobenchError, OSError):
    """A file could not be written for a system reason (disk full, file too large, no
    permission); the target keeps its old content and no temporary file is left. An
    ``OSError`` too (``errno``, ``strerror`` and ``filename`` set), for callers that catch
    those; its text is one line: ``cannot write <file>: <reason>``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


#: How Rust libraries (safetensors, polars) show an operating-system error in their own
#: exceptions: ``... File too large (os error 27)``.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _write_failure(exc: BaseException, target: Path) -> AtomicWriteError | None:
    """The :class:`AtomicWriteError` for a writer's exception that is a system failure
    (an ``OSError``, or a library error naming an OS error), else None (a bug: re-raised)."""
    if isinstance(exc, AtomicWriteError):
        return None
    if isinstance(exc, OSError):
        code = exc.errno
    else:
        found = _OS_ERROR.search(str(exc))
        if found is None:
            return None
        code = int(found.group(1))
    reason = os.strerror(code) if code else (getattr(exc, "strerror", None) or str(exc))
    if code == errno.EFBIG:
        reason += " (over the file size limit: see ulimit -f)"
    err = AtomicWriteError(f"cannot write {target}: {reason}")
    err.errno, err.strerror, err.filename = code, reason, str(target)
    return err


def _fsync_dir(folder: Path) -> None:
    """Persist a rename by fsyncing its folder (best effort; not possible everywhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: PathLike) -> Iterator[tuple[int, Path]]:
    """Yield (open fd, path) of a temp file beside ``path``; it replaces ``path`` on success.

    The caller writes and fsyncs the temp file (and closes the fd) inside the block; then
    it gets ``path``'s mode (0o644 for a new file) and is renamed over ``path``, and the
    folder is fsynced. On any error the temp file is removed.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:  # e.g. a read-only folder
        raise _write_failure(exc, target) or exc from exc
    try:
        yield fd, Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        failure = _write_failure(exc, target)
        if failure is not None:
            raise failure from exc
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only when the block ends without error."""
    with _replacing(path) as (fd, _), os.fdopen(fd, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; the block writes it, then it replaces ``path``.

    For writers that take a file name. The temp file exists (empty) when the block starts;
    the writer may overwrite it. After the block it is fsynced and renamed over ``path``.
    """
    with _replacing(path) as (fd, tmp):
        os.close(fd)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (never a half-written file)."""
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any) -> str:
    """Serialise ``obj`` as indented JSON (paths, dates, numpy values allowed; no NaN).

    Raises :class:`JsonValueError` (one line) for a value JSON cannot hold.
    """
    try:
        return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise JsonValueError(f"cannot write JSON: {exc}") from exc


def write_json_atomic(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically; NaN/inf are refused."""
    try:
        text = to_json(obj)
    except JsonValueError as exc:
        raise JsonValueError(f"{path}: {exc}") from exc
    atomic_write_text(path, text)


def write_parquet_atomic(path: PathLike, df: pl.DataFrame) -> None:
    """Write ``df`` as Parquet (zstd) to ``path`` atomically."""
    with atomic_open(path) as fh:
        df.write_parquet(fh, compression="zstd")
