"""Generate the synth benchmark: plan the clips, render and encode them, write the tables.

:class:`SynthConfig` holds every setting that changes the output; :func:`generate` writes
the on-disk layout documented in :mod:`emobench.data.synth`. Each clip's random generator
derives from ``(seed, clip number)`` and each subject's identity from ``(seed, subject
number)``, so the output does not depend on the number of workers or on the order in which
they finish. Videos are H.264 (``libx264``, ``yuv420p``, one encoder thread, fixed options),
which makes the decoded frames reproducible for a given library build.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from emobench.data.synth.audio import audio_info, base_pitch, clip_track
from emobench.data.synth.aus import AU_COLUMNS
from emobench.data.synth.config import (
    OMITTED_AT,
    X264_PRESETS,
    X264_SPEED_PARAMS,
    SynthConfig,
    X264Preset,
)
from emobench.data.synth.encode import _encoder_info, encode_h264, x264_cpu_params
from emobench.data.synth.faces import render_frames, render_yuv420p, sample_identity
from emobench.data.synth.plan import (
    ClipPlan,
    clip_rng,
    make_plan,
    subject_id,
    subject_rng,
)
from emobench.data.synth.timeline import make_timeline
from emobench.errors import EmobenchError
from emobench.io import atomic_path
from emobench.lifecycle import die_with_parent
from emobench.progress import progress_bar
from emobench.video.frames import FrameReadError, VideoFrameSource

__all__ = [
    "X264_PRESETS",
    "X264_SPEED_PARAMS",
    "ClipPlan",
    "SynthConfig",
    "X264Preset",
    "clip_rng",
    "encode_h264",
    "generate",
    "make_plan",
    "manifest_drift",
    "subject_id",
    "subject_rng",
    "x264_cpu_params",
]

if TYPE_CHECKING:
    from emobench.data.synth.timeline import ClipTimeline

#: Bumped whenever a change alters generated clips or tables for the same config.
GENERATOR_VERSION = "2"  # 2: x264 instruction sets fixed (identical bytes on every CPU)

#: Names inside a generated dataset folder.
ANNOTATIONS = "annotations.csv"
AU_FRAMES = "au_frames.parquet"
MANIFEST = "synth.json"
VIDEOS = "videos"
PARTIAL = ".synth-partial.json"  # present while a generation is unfinished

#: Columns of ``annotations.csv``, in order.
ANNOTATION_SCHEMA: dict[str, pl.DataType] = {
    "clip_id": pl.Utf8,
    "path": pl.Utf8,
    "label": pl.Utf8,
    "split": pl.Utf8,
    "fold": pl.Int64,
    "subject": pl.Utf8,
    "n_frames": pl.Int64,
    "fps": pl.Float64,
    "onset": pl.Int64,
    "apex": pl.Int64,
    "offset": pl.Int64,
    "micro": pl.Boolean,
    "intensity": pl.Float64,
    "distractor": pl.Utf8,
}

# ----------------------------------------------------------------------------- workers


def _distractors(cfg: SynthConfig) -> tuple[str, ...]:
    """Classes a weak background expression may come from: the profile's, minus neutral."""
    return tuple(c for c in cfg.classes if c != "neutral")


def clip_timeline(
    cfg: SynthConfig, plan: ClipPlan, rng: np.random.Generator | None = None
) -> ClipTimeline:
    """Draw a clip's length and timeline (the first draws of its generator)."""

    rng = clip_rng(cfg.seed, plan.number) if rng is None else rng
    n_frames = max(1, round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * cfg.fps))
    return make_timeline(plan.label, n_frames, cfg.fps, plan.micro, rng, _distractors(cfg))


def _audio_track(cfg: SynthConfig, plan: ClipPlan, tl: ClipTimeline) -> np.ndarray | None:
    """The clip's audio samples for ``cfg.audio`` (None when it is ``none``)."""
    if cfg.audio == "none":
        return None

    return clip_track(cfg.audio, plan.label, tl, base_pitch(cfg.seed, plan.subject), cfg.fps)


def build_clip(
    cfg: SynthConfig, plan: ClipPlan, videos: Path | None
) -> tuple[dict[str, Any], np.ndarray]:
    """Draw one clip's timeline and, when ``videos`` is given and the file is missing,
    render and encode it. Returns the clip's annotation fields and its (T, 17) AUs."""

    rng = clip_rng(cfg.seed, plan.number)
    tl = clip_timeline(cfg, plan, rng)
    if videos is not None:
        path = videos / f"{plan.clip_id}.mp4"
        if not path.exists():
            identity = sample_identity(subject_rng(cfg.seed, plan.subject))
            yuv = render_yuv420p(
                identity, tl.aus, cfg.size, tl.poses, tl.illums, rng=rng, noise=tl.noise
            )
            track = _audio_track(cfg, plan, tl)
            encode_h264(path, yuv, cfg.fps, cfg.crf, cfg.preset, cfg.x264_params, track)
    row = {
        "clip_id": plan.clip_id,
        "path": f"{VIDEOS}/{plan.clip_id}.mp4",
        "label": plan.label,
        "subject": subject_id(plan.subject),
        "n_frames": tl.n_frames,
        "fps": float(cfg.fps),
        "onset": tl.onset,
        "apex": tl.apex,
        "offset": tl.offset,
        "micro": tl.micro,
        "intensity": round(tl.intensity, 4),
        "distractor": tl.distractor,
    }
    return row, tl.aus


def _work(job: tuple[SynthConfig, ClipPlan, str | None]) -> tuple[int, dict[str, Any], np.ndarray]:
    """Pool entry point: one clip."""
    cfg, plan, videos = job
    row, aus = build_clip(cfg, plan, Path(videos) if videos else None)
    return plan.number, row, aus


def _worker_init(parent: int) -> None:
    """Tie a worker's life to the generating process (:mod:`emobench.lifecycle`) and make
    it keep freed memory for reuse (glibc only; else a no-op).

    Rendering allocates many short-lived arrays of a few hundred KB; by default glibc maps
    and unmaps each of them, and the page faults cost about a third of the render time.
    """

    die_with_parent(parent)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve < 32 MiB from the heap
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MiB of free heap
    except (OSError, AttributeError):
        pass


def _run(
    jobs: list[tuple[SynthConfig, ClipPlan, str | None]], workers: int
) -> Iterator[tuple[int, dict[str, Any], np.ndarray]]:
    """Build the clips in this process (``workers <= 1``) or on a process pool, in order.

    The pool uses ``spawn`` (safe even when the caller already runs threads, as torch and
    polars do); a worker that dies raises a clear error instead of hanging.
    """
    if workers <= 1 or len(jobs) < 2:
        yield from map(_work, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
    try:
        yield from pool.map(_work, jobs, chunksize=2)
    except BrokenProcessPool as exc:
        raise EmobenchError(
            f"a synth worker process died ({exc}); rerun to resume, or use --workers 1"
        ) from exc
    finally:  # on errors and Ctrl-C, drop the queued clips instead of finishing them
        pool.shutdown(wait=True, cancel_futures=True)


#: Read-back check of a generation's first clip (decoded with the reference backend vs
#: the rendered frames, grey levels): mean absolute difference and mean colour shift.
#: Measured on clips of 32..224 px: H.264 loss gives a mean up to 24 (32 px, crf 51; 3-6
#: at the default crf 20) and a shift up to 6.4; garbage or swapped channels give far more.
READ_BACK_MAX_MEAN_DIFF = 32.0
READ_BACK_MAX_SHIFT = 12.0


def check_read_back(cfg: SynthConfig, plan: ClipPlan, path: Path) -> None:
    """Decode a generated clip with the reference backend (PyAV) and compare it with the
    frames the renderer drew; an EmobenchError (one line) when it cannot be read back or
    does not look like what was rendered."""

    tl = clip_timeline(cfg, plan)
    where = f"synth: the generated clip {path} cannot be read back with PyAV"
    try:
        got = VideoFrameSource(backend="pyav").read(
            str(path), np.arange(tl.n_frames), clip_id=plan.clip_id, n_frames=tl.n_frames
        )
    except FrameReadError as exc:
        raise EmobenchError(f"{where} ({exc.reason}); size={cfg.size}, crf={cfg.crf}") from None
    identity = sample_identity(subject_rng(cfg.seed, plan.subject))
    ref = render_frames(identity, tl.aus, cfg.size, tl.poses, tl.illums)
    if got.shape != ref.shape:
        raise EmobenchError(f"{where}: decoded shape {got.shape}, rendered {ref.shape}")
    diff = got.astype(np.float32) - ref.astype(np.float32)
    mean, shift = float(np.abs(diff).mean()), float(np.abs(diff.mean(axis=(0, 1, 2))).max())
    if mean > READ_BACK_MAX_MEAN_DIFF or shift > READ_BACK_MAX_SHIFT:
        raise EmobenchError(
            f"{where} as rendered: mean difference {mean:.1f} grey levels (at most "
            f"{READ_BACK_MAX_MEAN_DIFF:g}), colour shift {shift:.1f} (at most "
            f"{READ_BACK_MAX_SHIFT:g}); size={cfg.size}, crf={cfg.crf}"
        )


def _run_checked(
    jobs: list[tuple[SynthConfig, ClipPlan, str | None]], workers: int, videos: Path
) -> Iterator[tuple[int, dict[str, Any], np.ndarray]]:
    """:func:`_run`, but the first clip is built here and read back before the others."""
    if not jobs:
        return
    first = _work(jobs[0])
    cfg, plan, _ = jobs[0]
    check_read_back(cfg, plan, videos / f"{plan.clip_id}.mp4")
    yield first
    yield from _run(jobs[1:], workers)


# ----------------------------------------------------------------------------- writing


def _manifest(cfg: SynthConfig) -> dict[str, Any]:
    """What identifies a dataset: generator, version and config (its ``model_dump``, which
    leaves out fields at their :data:`~emobench.data.synth.config.OMITTED_AT` value)."""
    return {
        "generator": "emobench.data.synth",
        "version": GENERATOR_VERSION,
        "config": cfg.model_dump(),
    }


def manifest_drift(cfg: SynthConfig, out: Path) -> str | None:
    """Why the synth dataset in ``out`` is not what ``cfg`` would generate now, or None.

    Compares ``synth.json`` with the generator version and every config field (e.g. a
    folder generated by an older version, or with other x264 settings, decodes to other
    frames, so its results differ from the documented ones). None when ``out`` has no
    ``synth.json`` or it matches.
    """
    old = _read_json(out / MANIFEST)
    if not isinstance(old, dict):
        return None
    want = _manifest(cfg)
    diffs = []
    if old.get("version") != want["version"]:
        diffs.append(f"generator version {old.get('version')} (now {want['version']})")
    have = old.get("config") or {}
    for key, value in want["config"].items():
        if have.get(key, OMITTED_AT.get(key)) != value:
            diffs.append(f"{key}={have.get(key, OMITTED_AT.get(key))!r} (now {value!r})")
    for key in sorted(have.keys() - want["config"].keys()):  # e.g. made with audio, now not
        diffs.append(f"{key}={have[key]!r} (now {OMITTED_AT.get(key)!r})")
    if not diffs:
        return None
    return (
        f"{out} was generated with other settings: {'; '.join(diffs[:4])}"
        + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        + f"; results will differ from a fresh dataset (emobench data generate synth --out {out} "
        "--overwrite regenerates it)"
    )


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary sibling, then rename: readers never see half a file."""

    with atomic_path(path) as tmp:
        write(tmp)


def _read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is unreadable (e.g. cut short)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _prepare_out(cfg: SynthConfig, out: Path, overwrite: bool) -> bool:
    """Check ``out`` and mark it partial; returns True when it already holds this dataset."""
    manifest = _manifest(cfg)
    ann, meta, partial, videos = out / ANNOTATIONS, out / MANIFEST, out / PARTIAL, out / VIDEOS
    ours = meta.exists() or partial.exists()
    if ann.exists() and meta.exists() and not overwrite:
        old = _read_json(meta) or {}
        if {k: old.get(k) for k in ("generator", "version", "config")} == manifest:
            return True
        raise EmobenchError(
            f"{out} already holds a different synth dataset (see {meta}); "
            "pick another --out or pass --overwrite"
        )
    if videos.exists() and not ours:
        raise EmobenchError(f"{videos} exists but was not written by the synth generator")
    resume = partial.exists() and not overwrite and _read_json(partial) == manifest
    if ours and not resume:  # remove only files this generator writes
        for name in (ANNOTATIONS, AU_FRAMES, MANIFEST):
            (out / name).unlink(missing_ok=True)
        if videos.exists():
            for f in videos.iterdir():
                if f.suffix in (".mp4", ".part", ".tmp"):
                    f.unlink()
    videos.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.part", ".*.tmp"):  # temporaries of a killed generation
        for f in videos.glob(pattern):
            f.unlink()
    partial.write_text(json.dumps(manifest, indent=2))
    return False


def _annotation_rows(
    cfg: SynthConfig, plan: list[ClipPlan], rows: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per clip, or per (clip, fold) in 5-fold mode."""
    out = []
    for p in plan:
        row = rows[p.number]
        if cfg.folds == 1:
            out.append({**row, "split": p.split, "fold": 1})
        else:
            for fold in range(1, 6):
                out.append(
                    {**row, "split": "test" if fold == p.test_fold else "train", "fold": fold}
                )
    return out


def _write_tables(
    cfg: SynthConfig,
    out: Path,
    plan: list[ClipPlan],
    results: dict[int, tuple[dict[str, Any], np.ndarray]],
) -> None:
    """Write the AU table, the manifest and, last, the annotations (each atomically)."""

    rows = {n: r for n, (r, _) in results.items()}
    aus = [results[p.number][1] for p in plan]
    stacked = np.concatenate(aus).astype(np.float32)
    au_df = pl.DataFrame(
        {
            "clip_id": np.repeat([p.clip_id for p in plan], [len(a) for a in aus]),
            "frame": np.concatenate([np.arange(len(a), dtype=np.int32) for a in aus]),
            **{col: stacked[:, i] for i, col in enumerate(AU_COLUMNS)},
        }
    )
    _write_atomic(out / AU_FRAMES, lambda p: au_df.write_parquet(p))
    columns = list(ANNOTATION_SCHEMA)
    ann = pl.DataFrame(_annotation_rows(cfg, plan, rows), schema=ANNOTATION_SCHEMA).select(columns)
    counts = {
        split: ann.filter(pl.col("fold") == 1, pl.col("split") == split)["label"]
        .value_counts(sort=True)
        .rows()
        for split in ("train", "test")
    }
    manifest = {
        **_manifest(cfg),
        "n_clips": len(plan),
        "n_frames": int(stacked.shape[0]),
        "fold1_counts": {s: dict(c) for s, c in counts.items()},
        "encoder": _encoder_info(),
    }
    if cfg.audio != "none":
        manifest["audio"] = audio_info(cfg.audio)
    _write_atomic(out / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2)))
    _write_atomic(out / ANNOTATIONS, lambda p: ann.write_csv(p))  # last: marks completion


def generate(
    cfg: SynthConfig,
    out: Path,
    progress: bool = True,
    workers: int = 2,
    overwrite: bool = False,
) -> Path:
    """Generate the dataset ``cfg`` under ``out`` and return ``out``.

    Renders and encodes clips on ``workers`` processes. Annotation tables are written
    last, atomically; until then ``out`` holds a ``.synth-partial.json`` marker, and a
    rerun with the same config resumes (finished videos are kept). A folder that already
    holds this exact dataset is returned untouched.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if _prepare_out(cfg, out, overwrite):
        return out
    plan = make_plan(cfg)
    videos = out / VIDEOS
    jobs = [(cfg, p, str(videos)) for p in plan]
    results: dict[int, tuple[dict[str, Any], np.ndarray]] = {}
    built = _run_checked(jobs, workers, videos)
    for number, row, aus in _with_progress(built, len(jobs), progress):
        results[number] = (row, aus)
    _write_tables(cfg, out, plan, results)
    (out / PARTIAL).unlink(missing_ok=True)
    return out


_T = TypeVar("_T")


def _with_progress(it: Iterable[_T], total: int, show: bool) -> Iterator[_T]:
    """Yield from ``it`` while showing a rich progress bar (count, elapsed, ETA) on stderr."""
    if not show:
        yield from it
        return
    from rich.console import Console

    with progress_bar("[bold]synth[/] clips", console=Console(stderr=True)) as bar:
        task = bar.add_task("synth", total=total)
        for item in it:
            yield item
            bar.advance(task)


def summary_line(out: Path, seconds: float) -> str:
    """One line for the CLI: clips, frames, seconds, folder."""
    meta = json.loads((Path(out) / MANIFEST).read_text())
    return (
        f"synth: {meta['n_clips']} clips ({meta['n_frames']} frames) in {seconds:.1f} s "
        f"→ {Path(out).resolve()}"
    )


__all__ = [
    "ANNOTATIONS",
    "AU_FRAMES",
    "GENERATOR_VERSION",
    "MANIFEST",
    "ClipPlan",
    "SynthConfig",
    "build_clip",
    "check_read_back",
    "clip_timeline",
    "encode_h264",
    "generate",
    "make_plan",
    "summary_line",
]
