"""``synth``: emobench's procedurally generated facial-expression video benchmark.

Stylised faces (:mod:`.faces`) driven by FACS action units (:mod:`.aus`) along per-clip
timelines (:mod:`.timeline`), with long-tailed class profiles (:mod:`.profiles`), rendered
and encoded to H.264 by :func:`.generate.generate` (CLI: ``emobench data generate synth``).
Ground truth is total: label, subject, onset/apex/offset, micro flag and per-frame AUs.

On-disk layout of a generated dataset ``<out>``::

    <out>/videos/<clip_id>.mp4   H.264 (libx264, yuv420p), size×size, cfg.fps; with
                                 cfg.audio tone/silence also a 16 kHz FLAC track (:mod:`.audio`)
    <out>/annotations.csv        one row per (clip, fold); written last
    <out>/au_frames.parquet      clip_id, frame, AU01 … AU45 (Float32): the AUs rendered
    <out>/synth.json             generator version, the SynthConfig (``audio`` only when not
                                 none), counts, encoder, and ``audio`` (codec, rate) with a track
    <out>/.synth-partial.json    only while a generation is unfinished

``annotations.csv`` columns: ``clip_id``, ``path`` (relative to ``<out>``), ``label``
(canonical name), ``split`` (train/test), ``fold`` (1; or 1–5 in 5-fold mode, where each
clip is in the test split of exactly one fold), ``subject`` (``s0000`` …), ``n_frames``,
``fps``, ``onset``/``apex``/``offset`` (0-based frames, offset inclusive; empty for
neutral clips), ``micro`` (true/false), ``intensity`` (0.4–1.0), ``distractor`` (class of
the weak background expression, or empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from emobench.data.registry import register_dataset
from emobench.errors import EmobenchError

if TYPE_CHECKING:
    import polars as pl

# polars and the clip-index module are imported inside the functions: importing this
# package (as `emobench --help` does through the CLI) must stay cheap.

ANNOTATIONS = "annotations.csv"
MANIFEST = "synth.json"
AU_FRAMES = "au_frames.parquet"
_PARTIAL = ".synth-partial.json"

_REQUIRED = (
    "clip_id",
    "path",
    "label",
    "split",
    "fold",
    "subject",
    "n_frames",
    "fps",
    "onset",
    "apex",
    "offset",
    "micro",
)


class SynthDatasetError(EmobenchError):
    """A synth dataset folder is missing, unfinished or malformed."""


def _read_annotations(root: Path) -> pl.DataFrame:
    """The annotation table as text columns (typed by :func:`load_synth`)."""
    import polars as pl

    path = root / ANNOTATIONS
    if not path.is_file():
        hint = (
            "its generation did not finish (rerun the same command to resume)"
            if (root / _PARTIAL).exists()
            else "generate one with `emobench data generate synth --out <folder>`"
        )
        raise SynthDatasetError(f"synth annotation file {path} not found; {hint}")
    try:  # all text: the clip index names the first cell that is not a number
        df = pl.read_csv(path, infer_schema=False, glob=False)
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise SynthDatasetError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise SynthDatasetError(f"{path} lacks column(s) {', '.join(missing)}")
    if df.height == 0:
        raise SynthDatasetError(f"{path} lists no clips")
    return df


def dataset_classes(root: Path) -> tuple[str, ...] | None:
    """The classes of the synth dataset in ``root``, from its ``synth.json`` (the class
    profile it was generated with); None when there is no ``synth.json``."""
    import json

    # lazy: the submodule imports this package, not initialised yet
    from emobench.data.synth.profiles import parse_profile

    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        profile = json.loads(path.read_text())["config"]["profile"]
        return parse_profile(str(profile)).classes
    except (OSError, ValueError, KeyError, TypeError, EmobenchError) as exc:
        raise SynthDatasetError(
            f"cannot read the class profile (config.profile) from {path}: {exc}"
        ) from None


def prepare_synth(root: Path, options: dict[str, object] | None) -> str | None:
    """The ``prepare`` hook: generate the set under ``root`` with ``options`` (the
    generator's :class:`~emobench.data.synth.generate.SynthConfig` fields) unless it is
    there. Returns a one-line warning when an existing set was generated with other
    settings (it is used as it is), else None."""
    # lazy: the submodule imports this package, not initialised yet
    from emobench.data.synth.generate import SynthConfig, generate, manifest_drift

    cfg = SynthConfig(**(options or {}))
    root = Path(root)
    if (root / ANNOTATIONS).is_file():
        return manifest_drift(cfg, root)
    generate(cfg, root)
    return None


@register_dataset(
    "synth", "generated facial-expression videos with total ground truth", prepare=prepare_synth
)
def load_synth(root: Path, check_files: bool = False, **options: object) -> pl.DataFrame:
    """Read a generated synth dataset back as a clip index (absolute video paths).

    Labels must be classes of the dataset (``synth.json``'s class profile; every canonical
    emotion name when there is no ``synth.json``). A missing video is kept: the run skips
    that clip as a "missing file", counts it and lists it in the manifest (``check_files``
    makes it an error here instead). Unknown options are rejected. Every problem with the
    annotations is one :class:`SynthDatasetError` line naming the file, column and clip.
    """
    # lazy: pulls in polars; kept off `emobench --help`
    from emobench.data.index import ClipIndexError, make_index

    if options:
        raise SynthDatasetError(f"synth loader: unknown option(s) {', '.join(sorted(options))}")
    root = Path(root).resolve()
    df = _read_annotations(root)
    classes = dataset_classes(root)
    rows = [
        {**r, "path": None if r["path"] is None else str(root / r["path"]), "media": "video"}
        for r in df.select(_REQUIRED).iter_rows(named=True)
    ]
    try:
        index = make_index(rows, classes)
    except ClipIndexError as exc:
        raise SynthDatasetError(f"{root / ANNOTATIONS}: {exc.detail}") from None
    if check_files:
        for clip_id, path in zip(index["clip_id"], index["path"], strict=True):
            if not Path(path).is_file():
                raise SynthDatasetError(f"synth clip {clip_id}: video {path} not found")
    return index


def load_au_frames(root: Path) -> pl.DataFrame:
    """The per-frame AU table (``clip_id``, ``frame``, ``AU01`` … ``AU45``) of a dataset."""
    import polars as pl

    path = Path(root) / AU_FRAMES
    if not path.is_file():
        raise SynthDatasetError(f"synth AU table {path} not found")
    return pl.read_parquet(path, glob=False)


__all__ = ["SynthDatasetError", "dataset_classes", "load_au_frames", "load_synth"]
