"""Shared test helpers: fake predictions tables and run folders.

Plain functions (import them: ``from conftest import fake_predictions``), so that tests and
``benchmarks/bench_report.py`` build their synthetic runs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

#: Setting columns of a fake cell: a uniform 8-frame sampler, original order, no switches.
DEFAULT_SETTINGS: dict[str, Any] = {
    "sampler": "uniform:8",
    "density": 8.0,
    "density_unit": "frames",
    "order": "original",
    "enrichment": "none",
    "rebalancing": "none",
    "prior_correction": "none",
    "seed": 0,
}


def fake_predictions(
    *,
    cell_id: str,
    model: str,
    fold: int,
    clip_ids: Sequence[str],
    labels: Sequence[str] | Any,
    preds: Sequence[str] | Any,
    dataset: str = "synth",
    **columns: Any,
) -> pl.DataFrame:
    """One cell's predictions on one fold, in predictions-table column order.

    ``labels`` and ``preds`` are the true and predicted names per clip (lists or arrays).
    ``columns`` overrides a setting of :data:`DEFAULT_SETTINGS` or adds columns (e.g.
    ``raw_text``, ``latency_s``, ``score:<label>``), which follow ``pred``.
    """
    settings = {k: columns.pop(k, v) for k, v in DEFAULT_SETTINGS.items()}
    return pl.DataFrame(
        {
            "cell_id": cell_id,
            "dataset": dataset,
            "model": model,
            **settings,
            "fold": fold,
            "clip_id": list(clip_ids),
            "label": labels,
            "pred": preds,
            **columns,
        }
    )


def fake_run(
    root: Path,
    predictions: pl.DataFrame,
    *,
    labels: Sequence[str],
    train_counts: Mapping[str, Mapping[str, int]],
    n_clips: int,
    cells: Sequence[Mapping[str, Any]],
    run_name: str = "test-run",
    config: Mapping[str, Any] | None = None,
    fingerprint: str = "f00d",
    skipped: Sequence[Mapping[str, Any]] = (),
    seeds: Any = None,
    **manifest_kw: Any,
) -> Any:
    """Write a run folder (manifest + predictions) for one dataset, ``synth``; return it.

    ``train_counts`` maps each fold (as a string) to its training clips per label;
    ``manifest_kw`` goes to :func:`emobench.results.build_manifest` (e.g. ``packages``).
    """
    from emobench.results import RunFolder, build_manifest

    manifest = build_manifest(
        run_name=run_name,
        config=dict(config or {}),
        datasets={
            "synth": {
                "fingerprint": fingerprint,
                "labels": list(labels),
                "train_counts": {k: dict(v) for k, v in train_counts.items()},
                "n_clips": n_clips,
            }
        },
        cells=cells,
        skipped=skipped,
        seeds=seeds,
        **manifest_kw,
    )
    run = RunFolder(root)
    run.write_manifest(manifest)
    run.write_predictions(predictions)
    return run


def make_synth(root: Path, **overrides: Any) -> Path:
    """Generate a tiny synth set (32 px, 1 s clips) into ``root``; ``overrides`` change
    the :class:`~emobench.data.synth.generate.SynthConfig` fields (sizes, profile, seed)."""
    from emobench.data.synth.generate import SynthConfig, generate

    settings: dict[str, Any] = {
        "size": 32,
        "min_seconds": 1.0,
        "max_seconds": 1.0,
        "n_train_subjects": 4,
        "n_test_subjects": 2,
        **overrides,
    }
    generate(SynthConfig(**settings), root, progress=False, workers=1)
    return root


def zero_shot_context(tmp_path: Path, labels: Sequence[str], device: Any = "cpu") -> Any:
    """A FitContext for a model that trains nothing (zero-shot VLMs, API models): no
    training rows or loaders, checkpoints and caches under ``tmp_path``."""
    from emobench.models.base import FitContext

    return FitContext(
        dataset="synth",
        fold=1,
        seed=0,
        rebalancing="none",
        labels=list(labels),
        train_index=None,
        checkpoint_dir=tmp_path / "ckpt",
        device=device,
        train_options={},
        load_frames=None,
        load_features=None,
        cache_dir=tmp_path / "cache",
    )
