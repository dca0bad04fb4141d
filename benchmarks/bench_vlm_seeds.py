"""The quickstart's VLM findings across pre-training seeds of ``emobench-tiny-vlm``.

For each model folder given (default: the shipped model), the quickstart preset's VLM
cells (``vlm-generate``, ``vlm-loglik``, ``vlm-msce``; with ``--with-gru`` also
``baseline-gru``, which the frame-order finding compares against) run on the quickstart
data with the folder in place of ``hf:emobench-tiny-vlm``, the report is drawn, and one
block per folder is printed: the UAR of every VLM cell, then each finding's statements
about the VLM (status and value, as ``findings.json`` has them). This is how the README's
seed table was made. Make the folders with::

    emobench pretrain synth-vlm --seed 1 --out /tmp/vlm-seed1
    .venv/bin/python benchmarks/bench_vlm_seeds.py --folders /tmp/vlm-seed1 /tmp/vlm-seed2

Each folder takes about 1.5 minutes on 2 CPU cores (3 with ``--with-gru``); the runs stay
under ``--out`` (default: a temporary folder), so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

SHIPPED = "emobench-tiny-vlm"


def run_config(folder: str, data: Path, with_gru: bool) -> dict[str, Any]:
    """The quickstart preset with ``folder`` as its generative VLM, VLM cells only (and the
    GRU baseline with ``with_gru``)."""
    from emobench.config import read_config_source

    raw, _ = read_config_source("quickstart")
    models = []
    for m in raw["models"]:
        if m["adapter"] == f"hf:{SHIPPED}":
            models.append({**m, "adapter": f"hf:{folder}"})
        elif with_gru and m["name"] == "baseline-gru":
            models.append(m)
    raw["models"] = models
    raw["name"] = f"vlm-seeds-{Path(folder).name}"
    raw["datasets"][0]["root"] = str(data)
    return raw


def findings_of_vlm(report_dir: Path) -> list[tuple[str, str, str]]:
    """(finding, status, text) of every statement naming a ``vlm-`` model."""
    doc = json.loads((report_dir / "findings.json").read_text())
    out = []
    for f in doc["findings"]:
        for s in f.get("statements", []):
            if "`vlm-" in s["text"]:
                out.append((f["key"], s["status"], s["text"]))
    return out


def cell_uars(run_dir: Path) -> list[tuple[str, float]]:
    import polars as pl

    m = pl.read_parquet(run_dir / "metrics.parquet").filter(
        (pl.col("metric") == "uar") & (pl.col("scope") == "overall")
    )
    m = m.unique(["cell_id"]).sort("cell_id")
    return [(r["cell_id"], float(r["value"])) for r in m.iter_rows(named=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folders", nargs="+", default=[SHIPPED], help="model folders")
    ap.add_argument("--data", type=Path, default=Path("data/synth-quickstart-v3"))
    ap.add_argument("--out", type=Path, default=None, help="results root (default: temporary)")
    ap.add_argument("--with-gru", action="store_true", help="also the GRU (shuffle finding)")
    args = ap.parse_args()

    from emobench.config import validate_config
    from emobench.report.build import report_run
    from emobench.report.options import ReportOptions
    from emobench.runner.execute import Engine

    root = args.out or Path(tempfile.mkdtemp(prefix="vlm-seeds-"))
    for folder in args.folders:
        cfg = validate_config(run_config(folder, args.data, args.with_gru))
        out = root / Path(folder).name
        engine = Engine(cfg, out, progress=True)
        engine.load_datasets()
        engine.execute()
        report_dir = report_run(out, ReportOptions())
        print(f"\n== {folder} ({out})")
        for cell, uar in cell_uars(out):
            print(f"  UAR {uar:.3f}  {cell}")
        for key, status, text in findings_of_vlm(report_dir):
            print(f"  [{key}] {status}: {text}")


if __name__ == "__main__":
    main()
