"""The files of ``predictions:<file>``: the path pattern and its ``{dataset}``, ``{fold}``,
``{seed}`` placeholders, reading a table, the content digest that goes into every stamp
and the check of the model against the run's sweep (the family's ``inputs_digest`` and
``check_config`` hooks; see :mod:`emobench.models.predictions.adapter`)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from emobench.errors import EmobenchError
from emobench.labels import UnknownLabelError, canonical
from emobench.models.registry import split_name
from emobench.provenance import file_sha256
from emobench.settings import Bool, StrictModel

#: Placeholders a predictions path may hold.
PLACEHOLDERS = ("dataset", "fold", "seed")
#: Optional columns copied into the predictions table as they are.
PASSTHROUGH = {"raw_text": str, "context": str, "n_frames": int, "n_unique_frames": int}
SCORE_PREFIX = "score:"


class PredictionsFileError(EmobenchError):
    """A predictions file that cannot be imported (missing, unreadable, no needed column)."""


class PredictionsOptions(StrictModel):
    """``[models.options]`` of ``predictions:<file>`` (see the module docstring)."""

    base_dir: Path | None = Field(
        None, description="folder a relative path is taken from (default: the working folder)"
    )
    label_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="extra label names of the file → emobench label names (e.g. Happy = "
        '"happiness"), used before the built-in aliases',
    )
    role: Literal["vlm", "vision-only"] | None = Field(
        None,
        description="what made the predictions, for the report's findings: a VLM or a "
        "vision-only model (unset: the imported model is left out of the findings)",
    )
    trained: Bool = Field(
        False, description="the model was trained or fine-tuned on the dataset (not zero-shot)"
    )
    temporal: Bool = Field(
        False,
        description="the model reads frames in order (a temporal vision-only model such as "
        "MAE-DFER): the findings compare its shuffle sensitivity with the VLMs'",
    )
    order_invariant: Bool = Field(
        False,
        description="the model pools its frames (mean of frame embeddings, a bag of frames): "
        "shuffling cannot change its answers, so the frame-order finding shows it but does "
        "not count it as evidence",
    )
    scores: Literal["logits", "log-probabilities", "probabilities"] = Field(
        "logits",
        description="what the score:<label> columns hold; probabilities are turned into "
        "log-probabilities, so prior corrections act on logits",
    )

    @model_validator(mode="after")
    def _order_claims_agree(self) -> PredictionsOptions:
        if self.temporal and self.order_invariant:
            raise ValueError(
                "temporal = true and order_invariant = true contradict each other: a model "
                "that reads frames in order is not invariant to their order"
            )
        return self

    @field_validator("label_aliases")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        for key, target in v.items():
            if not key.strip():
                raise ValueError("label_aliases has an empty name")
            try:
                canonical(target)
            except UnknownLabelError as exc:
                raise ValueError(f"label_aliases.{key}: {exc}") from None
        return v


# --------------------------------------------------------------------------- paths


def placeholders(pattern: str) -> set[str]:
    """The ``{name}`` fields of a path; an unknown or positional field is one error line."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:  # an unmatched brace
        raise PredictionsFileError(f"predictions path {pattern!r}: {exc}") from None
    bad = sorted(fields - set(PLACEHOLDERS))
    if bad:
        raise PredictionsFileError(
            f"predictions path {pattern!r} has placeholder {{{bad[0]}}}; allowed: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        )
    return fields


def resolve_pattern(argument: str, base_dir: Path | None) -> str:
    """The absolute path pattern of ``predictions:<argument>``."""
    path = Path(argument).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()).expanduser() / path
    return str(path)


def file_for(pattern: str, dataset: str, fold: int, seed: int) -> Path:
    """The file of one (dataset, fold, seed)."""
    return Path(pattern.format(dataset=dataset, fold=fold, seed=seed))


def files_digest(adapter: str, options: dict[str, Any]) -> str:
    """A digest of every file the model's path pattern matches (names and SHA-256s).

    It goes into the cells (:attr:`emobench.runner.plan.Cell.inputs`) and so into every
    part's stamp: an edited, added or removed file makes the model's parts stale.
    """
    try:
        opts = PredictionsOptions.model_validate(options)
        pattern = resolve_pattern(split_name(adapter)[1], opts.base_dir)
        fields = placeholders(pattern)
    except (EmobenchError, ValueError):
        return "invalid"  # the run stops with its own error line
    # names relative to the pattern's fixed folder: the same files elsewhere, same digest
    root = os.path.dirname(pattern.split("{", 1)[0]) if fields else os.path.dirname(pattern)
    h = hashlib.sha256()
    for hit in sorted(glob.glob(_as_glob(pattern))):
        if Path(hit).is_file():
            h.update(f"{os.path.relpath(hit, root)}\0{file_sha256(Path(hit))}\n".encode())
    return h.hexdigest()[:16]


def read_table(path: Path) -> Any:
    """Read a predictions file into a polars table; any problem is one line naming the file.

    CSV cells are read as text (clip ids such as ``00012`` keep their zeros); the file must
    have ``clip_id`` and a ``pred`` or at least one ``score:<label>`` column.
    """
    import polars as pl

    if not path.is_file():
        raise PredictionsFileError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            table = pl.read_csv(path, infer_schema_length=0, separator=sep, glob=False)
        elif suffix in (".parquet", ".pq"):
            table = pl.read_parquet(path, glob=False)
        else:
            raise PredictionsFileError(
                f"predictions file {path}: unknown format {suffix or '(no suffix)'!r}; "
                "use .csv, .tsv or .parquet"
            )
    except PredictionsFileError:
        raise
    except Exception as exc:  # polars raises several types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictionsFileError(f"predictions file {path} cannot be read: {first}") from None
    if "clip_id" not in table.columns:
        raise PredictionsFileError(f"predictions file {path} has no clip_id column")
    if "pred" not in table.columns and not any(c.startswith(SCORE_PREFIX) for c in table.columns):
        raise PredictionsFileError(
            f"predictions file {path} has neither a pred column nor score:<label> columns"
        )
    return table.with_columns(pl.col("clip_id").cast(pl.Utf8).str.strip_chars())


def file_columns(path: Path) -> list[str]:
    """The column names of a predictions file (read without its rows), or [] if unreadable."""
    import polars as pl

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            with open(path, "rb") as fh:  # a path would be read as a glob
                return list(pl.read_parquet_schema(fh))
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        return pl.read_csv(path, n_rows=0, separator=sep, glob=False).columns
    except Exception:  # an unreadable file is reported when the run reads it
        return []


# --------------------------------------------------------------------------- config check


def check_config(
    where: str,
    adapter: str,
    options: dict[str, Any],
    axes: dict[str, list[Any]],
    datasets: list[str],
) -> str | None:
    """Why a ``predictions:`` model does not fit the run's sweep, or None.

    Imported predictions were made with one sampler, frame order, enrichment and
    re-balancing: each axis (``axes``: name → the model's values after its overrides) must
    have one value, which is recorded as the setting the other code used. Several seeds
    need a ``{seed}`` placeholder (or a ``seed`` column) and several datasets a
    ``{dataset}`` placeholder (or a ``dataset`` column): the same rows are not imported twice.
    A prior correction needs ``score:<label>`` columns (checked on the first file found;
    a file that appears later is checked when the run reads it).
    """
    for axis in ("sampler", "order", "enrichment", "rebalancing"):
        values = axes[axis]
        if len(values) != 1:
            return (
                f"{where} ({adapter}) imports predictions made with one {axis}: give exactly "
                f"one ({where}.{axis} = [{values[0]!r}]), not a sweep over "
                f"{len(values)} ({', '.join(map(str, values))})"
            )
    try:
        opts = PredictionsOptions.model_validate(options)
        pattern = resolve_pattern(split_name(adapter)[1], opts.base_dir)
        fields = placeholders(pattern)
    except (EmobenchError, ValueError) as exc:
        return f"{where} ({adapter}): {' '.join(str(exc).split())}"
    for name, values in (("seed", axes["seeds"]), ("dataset", datasets)):
        if len(values) > 1 and name not in fields:
            some = _some_file(pattern, datasets[0], axes["seeds"][0])
            if some is None or name not in file_columns(some):
                return (
                    f"{where} ({adapter}): the run has {len(values)} {name}s; put a "
                    f"{{{name}}} placeholder in the path or a {name} column in the file"
                )
    priors = [p for p in axes.get("prior_correction", []) if p != "none"]
    some = _some_file(pattern, datasets[0], axes["seeds"][0]) if priors else None
    columns = file_columns(some) if some is not None else []
    if columns and not any(c.startswith(SCORE_PREFIX) for c in columns):
        return (
            f"{where} ({adapter}): prior correction {priors[0]!r} needs scores, and {some} "
            "has no score:<label> columns"
        )
    return None


def _some_file(pattern: str, dataset: str, seed: int) -> Path | None:
    """One existing file of the pattern (the first fold found), to read its columns."""
    hits = sorted(glob.glob(_as_glob(pattern, dataset=dataset, seed=seed)))
    return Path(hits[0]) if hits else None


def _as_glob(pattern: str, **known: Any) -> str:
    """A glob of a path pattern: ``known`` placeholders filled in, the others ``*``."""

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in known:
            return glob.escape(m.group(0).format(**known))
        return "*"

    out, pos = [], 0
    for m in _FIELD.finditer(pattern):
        out += [glob.escape(pattern[pos : m.start()]), fill(m)]
        pos = m.end()
    return "".join([*out, glob.escape(pattern[pos:])])


_FIELD = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")(?:![rsa])?(?::[^{}]*)?\}")
