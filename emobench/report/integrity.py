"""Whether a run folder holds finished, consistent results, before it is reported.

* A run that still holds the folder's lock (:mod:`emobench.runner.lock`) is writing it:
  :func:`refuse_running` stops the report with one line naming its PID.
* A run that stopped without finishing (killed: its PID file stayed behind) left the
  predictions it merged last; :func:`unfinished_lines` says so and names the cells that
  are incomplete there (a fold missing, or parts finished after that merge).
* ``metrics.parquet`` made from other predictions than ``predictions.parquet`` (a run
  stopped between writing the two, a file copied from elsewhere) is found cell by cell by
  :func:`disagreeing_cells` (fold WAR, UAR and clip count recomputed from the
  predictions), and the report recomputes the metrics rather than show numbers that do not
  belong to its predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from emobench.report.cells import ReportError
from emobench.results import PREDICTIONS_FILE
from emobench.runner.lock import running_holder, unfinished_run

#: Cell ids named in one line before "and N more".
SHOWN = 5
#: The run's part files (``emobench.runner.execute.PARTS_DIR``; not imported from there,
#: which would load the engine into the report).
PARTS_DIR = "parts"
#: Fold values recomputed from the predictions and compared with the metrics table.
CHECKED = ("war", "uar", "n")


def refuse_running(path: Path) -> None:
    """Raise :class:`ReportError` (one line) while a run holds the folder ``path``."""

    holder = running_holder(path)
    if holder is None:
        return
    pid = holder.get("pid")
    who = f"pid {pid}" if pid is not None else "another process"
    raise ReportError(
        f"{path}: run still in progress (lock held by {who}); wait for it to finish, then "
        "run `emobench report` again (or report a copy of a finished run folder)"
    )


def unfinished(path: Path) -> dict[str, Any] | None:
    """The PID-file record of a run that stopped in ``path`` without finishing, or None."""

    return unfinished_run(path)


def names(cells: Sequence[str], quote: str = "") -> str:
    """Cell ids as one short list: the first :data:`SHOWN`, then how many more."""
    shown = ", ".join(f"{quote}{c}{quote}" for c in cells[:SHOWN])
    more = f" and {len(cells) - SHOWN} more" if len(cells) > SHOWN else ""
    return shown + more


def incomplete_cells(run_path: Path, manifest: Any, predictions: pl.DataFrame) -> dict[str, str]:
    """Cells whose results in the folder are incomplete, each with why: a fold of its
    dataset without predictions (folds: the manifest's training counts and the folds
    predicted for the dataset), or a part finished after ``predictions.parquet`` was
    written (:data:`PARTS_DIR`; its predictions are not there)."""
    have = predictions.select("cell_id", "dataset", "fold").unique()
    folds: dict[str, set[int]] = {}
    for ds, fold in have.select("dataset", "fold").unique().iter_rows():
        folds.setdefault(str(ds), set()).add(int(fold))
    for ds, entry in (manifest.datasets or {}).items():
        folds.setdefault(ds, set()).update(int(f) for f in entry.train_counts if f.isdigit())
    done: dict[str, set[int]] = {}
    dataset_of: dict[str, str] = {}
    for cid, ds, fold in have.iter_rows():
        done.setdefault(str(cid), set()).add(int(fold))
        dataset_of[str(cid)] = str(ds)
    for cell in manifest.cells:
        cid, ds = cell.get("cell_id"), cell.get("dataset")
        if isinstance(cid, str) and isinstance(ds, str):
            done.setdefault(cid, set())
            dataset_of.setdefault(cid, ds)
    out: dict[str, str] = {}
    for cid, got in done.items():
        missing = sorted(folds.get(dataset_of[cid], set()) - got)
        if not got:
            out[cid] = "no predictions"
        elif missing:
            out[cid] = f"fold(s) {', '.join(map(str, missing))} missing"
    out.update({cid: why for cid, why in _parts_after_merge(run_path).items() if cid not in out})
    return dict(sorted(out.items()))


def _parts_after_merge(run_path: Path) -> dict[str, str]:
    """Cells with a part file newer than ``predictions.parquet``."""

    try:
        merged = (run_path / PREDICTIONS_FILE).stat().st_mtime_ns
        parts = list((run_path / PARTS_DIR).glob("*__f*.parquet"))
    except OSError:
        return {}
    out: dict[str, list[str]] = {}
    for p in parts:
        cid, _, fold = p.stem.rpartition("__f")
        try:
            newer = p.stat().st_mtime_ns > merged
        except OSError:
            continue
        if newer and cid:
            out.setdefault(cid, []).append(fold)
    return {
        cid: f"fold(s) {', '.join(sorted(f))} finished after the last merge (not shown)"
        for cid, f in out.items()
    }


def unfinished_lines(
    run_path: Path, holder: Mapping[str, Any], manifest: Any, predictions: pl.DataFrame
) -> tuple[list[str], list[str]]:
    """What to say about a run that stopped without finishing: console lines (that it did
    not finish; its incomplete cells) and the report's notes (the same, with each
    incomplete cell's reason)."""
    pid, started = holder.get("pid", "?"), holder.get("started", "?")
    head = (
        f"the run in {run_path} did not finish (PID {pid}, started {started}): this report "
        "shows only the predictions it merged before it stopped, with metrics consistent "
        "with them"
    )
    bad = incomplete_cells(run_path, manifest, predictions)
    if not bad:
        tail = "no incomplete cell found among the cells it recorded"
        return [head, tail], [f"The {head[4:]}; {tail}."]
    console = f"{len(bad)} incomplete cell(s): {names(list(bad))}"
    detail = "; ".join(f"`{cid}` ({why})" for cid, why in bad.items())
    return [head, console], [f"The {head[4:]}.", f"Incomplete cells: {detail}."]


def disagreeing_cells(metrics: pl.DataFrame, predictions: pl.DataFrame) -> list[str]:
    """Cells whose per-fold WAR, UAR or clip count in ``metrics`` differ from the ones
    ``predictions`` give (a fold missing on either side counts), sorted."""
    hit = (pl.col("pred") == pl.col("label")).cast(pl.Float64)
    per_class = predictions.group_by("cell_id", "fold", "label").agg(hit.mean().alias("r"))
    uar = per_class.group_by("cell_id", "fold").agg(pl.col("r").mean().alias("uar"))
    war = predictions.group_by("cell_id", "fold").agg(
        hit.mean().alias("war"), pl.len().cast(pl.Float64).alias("n")
    )
    mine = (
        war.join(uar, on=["cell_id", "fold"])
        .unpivot(index=["cell_id", "fold"], on=list(CHECKED), variable_name="metric")
        .rename({"value": "mine"})
    )
    theirs = metrics.filter(
        (pl.col("scope") == "overall")
        & pl.col("fold").is_not_null()
        & pl.col("metric").is_in(CHECKED)
    ).select("cell_id", "fold", "metric", pl.col("value").alias("theirs"))
    both = mine.join(theirs, on=["cell_id", "fold", "metric"], how="full", coalesce=True)
    differ = both.filter(
        pl.col("mine").is_null()
        | pl.col("theirs").is_null()
        | ((pl.col("mine") - pl.col("theirs")).abs() > 1e-9)
    )
    return sorted(str(c) for c in differ.get_column("cell_id").unique().to_list())
