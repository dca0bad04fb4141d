"""The run folder: a run's manifest, predictions and metrics as plain files.

Every write goes through :mod:`emobench.io` (atomic); every read error is one line naming the
file (:class:`RunFolderError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from emobench.errors import EmobenchError
from emobench.io import write_json_atomic, write_parquet_atomic
from emobench.results.schema import (
    PREDICTION_REQUIRED,
    ResultsError,
    validate_metrics,
    validate_predictions,
)

if TYPE_CHECKING:
    from emobench.results.manifest import Manifest

MANIFEST_FILE = "manifest.json"
PREDICTIONS_FILE = "predictions.parquet"
METRICS_FILE = "metrics.parquet"
REPORT_DIR = "report"


class RunFolderError(EmobenchError):
    """A run folder is missing, incomplete or holds a malformed file."""


# ----------------------------------------------------------------------------------------
# run folder


@dataclass(frozen=True)
class RunFolder:
    """A run's folder of results; every write is atomic, every read error one line."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    def _missing(self, name: str) -> RunFolderError:
        return RunFolderError(f"{self.path}: {name} is missing")

    def read_manifest(self) -> dict[str, Any]:
        """The manifest as a dict; raises :class:`RunFolderError` if missing or malformed."""
        p = self.manifest_path
        if not p.is_file():
            raise self._missing(MANIFEST_FILE)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{self.path}: {MANIFEST_FILE} cannot be read ({exc})") from exc
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunFolderError(
                f"{self.path}: {MANIFEST_FILE} is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from exc
        if not isinstance(obj, dict):
            raise RunFolderError(
                f"{self.path}: {MANIFEST_FILE} is not a JSON object (found {type(obj).__name__})"
            )
        for key, kind in (("datasets", dict), ("cells", list), ("skipped", list)):
            if key in obj and not isinstance(obj[key], kind):
                raise RunFolderError(
                    f"{self.path}: {MANIFEST_FILE} field {key!r} should be a "
                    f"{'JSON object' if kind is dict else 'list'}"
                )
        return obj

    def manifest(self) -> Manifest:
        """The typed manifest (:class:`~emobench.results.manifest.Manifest`), read once.

        Raises :class:`RunFolderError` when the file is missing or malformed, or a field
        has the wrong type. :meth:`write_manifest` drops the cached copy.
        """
        # lazy: the submodule imports this package, not initialised yet
        from emobench.results.manifest import Manifest, ManifestError

        cached = self.__dict__.get("_manifest")
        if cached is None:
            try:
                cached = Manifest.from_dict(self.read_manifest())
            except ManifestError as exc:
                raise RunFolderError(f"{self.path}: {MANIFEST_FILE}: {exc}") from exc
            self.__dict__["_manifest"] = cached
        return cached

    def _read_parquet(self, p: Path) -> pl.DataFrame:
        if not p.is_file():
            raise self._missing(p.name)
        try:
            return pl.read_parquet(p, glob=False)
        except Exception as exc:  # polars/pyarrow raise several types for bad files
            msg = " ".join(str(exc).split())[:200]
            raise RunFolderError(
                f"{self.path}: {p.name} is not a readable Parquet file ({msg})"
            ) from exc

    def read_predictions(self) -> pl.DataFrame:
        """The validated predictions table."""
        df = self._read_parquet(self.predictions_path)
        try:
            return validate_predictions(df)
        except ResultsError as exc:
            raise RunFolderError(f"{self.path}: {PREDICTIONS_FILE}: {exc}") from exc

    def read_metrics(self) -> pl.DataFrame:
        """The validated metrics table."""
        df = self._read_parquet(self.metrics_path)
        try:
            return validate_metrics(df)
        except ResultsError as exc:
            raise RunFolderError(f"{self.path}: {METRICS_FILE}: {exc}") from exc

    def write_manifest(self, d: Manifest | Mapping[str, Any]) -> None:
        self.__dict__.pop("_manifest", None)
        as_dict = getattr(d, "as_dict", None)
        write_json_atomic(self.manifest_path, as_dict() if callable(as_dict) else dict(d))

    def write_predictions(self, df: pl.DataFrame) -> None:
        write_parquet_atomic(self.predictions_path, validate_predictions(df))

    def write_metrics(self, df: pl.DataFrame) -> None:
        write_parquet_atomic(self.metrics_path, validate_metrics(df))


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """Open an existing run folder, checking that its manifest and predictions are sound.

    Raises :class:`RunFolderError` naming exactly what is missing or malformed, e.g.
    ``results/x: manifest.json is not valid JSON (line 3: ...)``.
    """
    run = RunFolder(Path(path))
    if not run.path.exists():
        raise RunFolderError(f"{run.path}: no such run folder")
    if not run.path.is_dir():
        raise RunFolderError(f"{run.path}: is not a folder")
    missing = [n for n in (MANIFEST_FILE, PREDICTIONS_FILE) if not (run.path / n).is_file()]
    if missing:
        raise RunFolderError(f"{run.path}: {' and '.join(missing)} missing")
    run.read_manifest()
    try:
        with open(run.predictions_path, "rb") as fh:  # a path would be read as a glob
            schema = pl.read_parquet_schema(fh)
    except Exception as exc:  # polars/pyarrow raise several types for bad files
        msg = " ".join(str(exc).split())[:200]
        raise RunFolderError(
            f"{run.path}: {PREDICTIONS_FILE} is not a readable Parquet file ({msg})"
        ) from exc
    lacking = [c for c in PREDICTION_REQUIRED if c not in schema]
    if lacking:
        raise RunFolderError(
            f"{run.path}: {PREDICTIONS_FILE} lacks required column(s): {', '.join(lacking)}"
        )
    return run
