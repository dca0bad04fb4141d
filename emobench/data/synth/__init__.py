"""``synth``: emobench's procedurally generated facial-expression video benchmark.

Stylised faces (:mod:`.faces`) driven by FACS action units (:mod:`.aus`) along per-clip
timelines (:mod:`.timeline`), with long-tailed class profiles (:mod:`.profiles`), rendered
and encoded to H.264 by :func:`.generate.generate` (CLI: ``emobench data generate synth``).
Ground truth is total: label, subject, onset/apex/offset, micro flag and per-frame AUs.

On-disk layout of a generated dataset ``<out>``::

    <out>/videos/<clip_id>.mp4   H.264 (libx264, yuv420p), size×size, cfg.fps
    <out>/annotations.csv        one row per (clip, fold); written last
    <out>/au_frames.parquet      clip_id, frame, AU01 … AU45 (Float32): the AUs rendered
    <out>/synth.json             generator version, the SynthConfig, counts, encoder
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
    import polars as pl

    path = root / ANNOTATIONS
    if not path.is_file():
        hint = (
            "its generation did not finish (rerun the same command to resume)"
            if (root / _PARTIAL).exists()
            else "generate one with `emobench data generate synth --out <folder>`"
        )
        raise SynthDatasetError(f"synth annotation file {path} not found; {hint}")
    try:
        df = pl.read_csv(
            path,
            schema_overrides={
                "clip_id": pl.Utf8,
                "subject": pl.Utf8,
                "onset": pl.Int64,
                "apex": pl.Int64,
                "offset": pl.Int64,
                "micro": pl.Boolean,
            },
        )
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise SynthDatasetError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise SynthDatasetError(f"{path} lacks column(s) {', '.join(missing)}")
    return df


@register_dataset("synth", "generated facial-expression videos with total ground truth")
def load_synth(root: Path, check_files: bool = True, **options: object) -> pl.DataFrame:
    """Read a generated synth dataset back as a clip index (absolute video paths).

    ``check_files`` verifies that every video exists. Unknown options are rejected.
    """
    from emobench.data.index import make_index

    if options:
        raise SynthDatasetError(f"synth loader: unknown option(s) {', '.join(sorted(options))}")
    root = Path(root).resolve()
    df = _read_annotations(root)
    rows = [
        {**r, "path": str(root / r["path"]), "media": "video"}
        for r in df.select(_REQUIRED).iter_rows(named=True)
    ]
    if check_files:
        for clip_id, path in dict((r["clip_id"], r["path"]) for r in rows).items():
            if not Path(path).is_file():
                raise SynthDatasetError(f"synth clip {clip_id}: video {path} not found")
    return make_index(rows)


def load_au_frames(root: Path) -> pl.DataFrame:
    """The per-frame AU table (``clip_id``, ``frame``, ``AU01`` … ``AU45``) of a dataset."""
    import polars as pl

    path = Path(root) / AU_FRAMES
    if not path.is_file():
        raise SynthDatasetError(f"synth AU table {path} not found")
    return pl.read_parquet(path)


__all__ = ["SynthDatasetError", "load_au_frames", "load_synth"]
