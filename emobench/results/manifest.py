"""Provenance: the run manifest (``manifest.json``), as built and as read back.

:func:`build_manifest` assembles the dict a run writes (versions, git commit, hardware,
datasets, cells, skipped clips); :class:`Manifest` is the typed view a reader uses, with
accessors such as :meth:`Manifest.labels` and :meth:`Manifest.train_counts` in place of
``.get()`` chains. The layout is described in :mod:`emobench.results`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from emobench import __version__
from emobench.data.index import class_counts, fingerprint
from emobench.errors import EmobenchError
from emobench.io import to_json
from emobench.labels import EMOTIONS

#: Packages whose versions the manifest records (those not installed are left out).
MANIFEST_PACKAGES: tuple[str, ...] = (
    "emobench",
    "numpy",
    "polars",
    "pyarrow",
    "scipy",
    "torch",
    "torchvision",
    "open_clip_torch",
    "transformers",
    "safetensors",
    "decord2",
    "av",
    "pillow",
    "pydantic",
    "wordfreq",
)


class ManifestError(EmobenchError):
    """A manifest whose fields do not have the documented types."""


def _mapping_or_empty(v: Any) -> Any:
    return v if isinstance(v, Mapping) else {}


class DatasetEntry(BaseModel):
    """One ``datasets[<name>]`` entry (see :func:`dataset_entry`); extra fields allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    fingerprint: str | None = None
    labels: list[str] = Field(default_factory=list)
    #: fold (as a string, as JSON keys are) -> label -> training clips; None = not recorded
    train_counts: dict[str, dict[str, int] | None] = Field(default_factory=dict)
    n_clips: int | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        return [str(x) for x in v] if isinstance(v, (list, tuple)) else []

    @field_validator("train_counts", mode="before")
    @classmethod
    def _train_counts(cls, v: Any) -> Any:
        v = _mapping_or_empty(v)
        return {str(f): c if isinstance(c, Mapping) else None for f, c in v.items()}


class Manifest(BaseModel):
    """The typed manifest of a run (``manifest.json``); see :mod:`emobench.results`.

    Extra top-level fields (a run adds ``cache``, ``timings_s``, ``decoding``, ``warnings``)
    are kept. Dict-style reads (``m["run_name"]``, ``m.get("datasets")``) return the JSON
    values as read, so code written for the dict keeps working; :meth:`as_dict` gives the
    whole dict. A malformed dataset entry, cell or skip record (not a JSON object) is
    ignored by the typed accessors, as the dict helpers always did.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    emobench_version: str | None = None
    created: str | None = None
    run_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    git_commit: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    seeds: Any = None
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    cells: list[dict[str, Any]] = Field(default_factory=list)
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("config", "versions", "hardware", mode="before")
    @classmethod
    def _objects(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, v: Any) -> Any:
        return {str(k): e for k, e in _mapping_or_empty(v).items() if isinstance(e, Mapping)}

    @field_validator("cells", "skipped", mode="before")
    @classmethod
    def _records(cls, v: Any) -> Any:
        return [x for x in v if isinstance(x, Mapping)] if isinstance(v, (list, tuple)) else []

    @classmethod
    def from_dict(cls, d: Manifest | Mapping[str, Any]) -> Manifest:
        """The typed view of a manifest dict (a :class:`Manifest` is returned as it is).

        Raises :class:`ManifestError` (one line, naming the field) on a wrong type.
        """
        if isinstance(d, Manifest):
            return d
        try:
            m = cls.model_validate(dict(d))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ManifestError(f"manifest field {where!r}: {err['msg']}") from exc
        m._raw = dict(d)
        return m

    # -- dict-style access (the JSON as read) -----------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (as read, or dumped when built in code)."""
        return self._raw or self.model_dump(mode="json")

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.as_dict()

    # -- typed accessors ----------------------------------------------------------------
    def dataset(self, name: str) -> DatasetEntry | None:
        """The ``datasets[name]`` entry, or None."""
        return self.datasets.get(name)

    def labels(self, dataset: str) -> list[str] | None:
        """A dataset's canonical labels in display order, or None when not recorded."""
        entry = self.datasets.get(dataset)
        return list(entry.labels) if entry is not None and entry.labels else None

    def train_counts(self, dataset: str, fold: int) -> dict[str, int] | None:
        """Training clips per label for one dataset and fold, or None when not recorded."""
        entry = self.datasets.get(dataset)
        counts = None if entry is None else entry.train_counts.get(str(fold))
        return None if counts is None else dict(counts)

    def train_counts_total(self, dataset: str) -> dict[str, int]:
        """Training clips per label for ``dataset``, summed over the recorded folds."""
        entry = self.datasets.get(dataset)
        totals: dict[str, int] = {}
        for counts in (entry.train_counts if entry is not None else {}).values():
            for label, n in (counts or {}).items():
                totals[label] = totals.get(label, 0) + n
        return totals

    def train_counts_mean(self, dataset: str) -> dict[str, float]:
        """Training clips per label for ``dataset``, averaged over the recorded folds.

        In k-fold cross-validation each clip trains in k - 1 folds, so the per-fold mean
        (not the sum) is what a table shows.
        """
        entry = self.datasets.get(dataset)
        n_folds = 0 if entry is None else len(entry.train_counts)
        if n_folds == 0:
            return {}
        return {k: v / n_folds for k, v in self.train_counts_total(dataset).items()}

    def cell_ids(self) -> list[str]:
        """The ``cell_id`` of each recorded cell, in manifest order (None where absent)."""
        return [c.get("cell_id") for c in self.cells]


def manifest_labels(manifest: Manifest | Mapping[str, Any], dataset: str) -> list[str] | None:
    """A dataset's canonical labels in display order from the manifest, or None."""
    return Manifest.from_dict(manifest).labels(dataset)


def manifest_train_counts(
    manifest: Manifest | Mapping[str, Any], dataset: str, fold: int
) -> dict[str, int] | None:
    """Training clips per label for one dataset and fold from the manifest, or None."""
    return Manifest.from_dict(manifest).train_counts(dataset, fold)


def dataset_entry(index: pl.DataFrame, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The manifest's ``datasets[name]`` entry for a validated clip index.

    ``labels`` gives the display order; by default the labels present, in canonical order.
    """

    if labels is None:
        present = set(index["label"].unique().to_list())
        labels = [e for e in EMOTIONS if e in present]
    folds = sorted(index["fold"].unique().to_list())
    return {
        "fingerprint": fingerprint(index),
        "labels": list(labels),
        "train_counts": {str(f): class_counts(index, split="train", fold=f) for f in folds},
        "n_clips": int(index["clip_id"].n_unique()),
    }


def package_versions(packages: Sequence[str] = MANIFEST_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(repo_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit of ``repo_dir`` (default: emobench's source), or None."""
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[1]
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = res.stdout.strip()
    return commit if res.returncode == 0 and commit else None


def hardware_info() -> dict[str, Any]:
    """Platform, Python, CPU count and, when torch is already loaded, its device.

    torch is not imported here (slow); a run that uses it has loaded it already.
    """
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                n = torch.cuda.device_count()
                info["torch_device"] = "cuda"
                info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(n)]
                info["cuda_version"] = torch.version.cuda
            else:
                info["torch_device"] = "cpu"
            info["torch_threads"] = torch.get_num_threads()
        except Exception:  # a broken CUDA setup must not stop the manifest
            info["torch_device"] = "unknown"
    return info


def build_manifest(
    *,
    run_name: str,
    config: Mapping[str, Any],
    datasets: Mapping[str, Mapping[str, Any]] | None = None,
    cells: Sequence[Mapping[str, Any]] = (),
    skipped: Sequence[Mapping[str, Any]] = (),
    seeds: Any = None,
    packages: Sequence[str] = MANIFEST_PACKAGES,
    repo_dir: str | os.PathLike[str] | None = None,
    created: _dt.datetime | None = None,
) -> dict[str, Any]:
    """Assemble a manifest dict (see the module docstring) with versions, git and hardware.

    ``datasets`` maps a dataset name to its entry (see :func:`dataset_entry`). The result
    is JSON-ready (checked), so a bad value fails here rather than at write time.
    """

    when = created or _dt.datetime.now(_dt.timezone.utc)
    manifest: dict[str, Any] = {
        "emobench_version": __version__,
        "created": when.isoformat(timespec="seconds"),
        "run_name": run_name,
        "config": dict(config),
        "git_commit": git_commit(repo_dir),
        "versions": package_versions(packages),
        "hardware": hardware_info(),
        "seeds": seeds,
        "datasets": {k: dict(v) for k, v in (datasets or {}).items()},
        "cells": [dict(c) for c in cells],
        "skipped": [dict(s) for s in skipped],
    }
    # Round-trip through JSON so the dict holds plain JSON values (no numpy, no Path).
    return json.loads(to_json(manifest))
