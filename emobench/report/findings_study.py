"""The study's four findings, registered for the report's opening section
(:mod:`emobench.report.findings`) in report order by importing their modules.

Each finding is computed from the run's own tables (predictions, metrics, manifest); its
cells are picked by their settings and by the role of their model
(:mod:`emobench.report.roles`: VLM or vision-only, zero-shot or trained, order-aware or
not, order-invariant by construction), never by a model's name:

1. **Head bias** (:mod:`~emobench.report.findings_headbias`) -- Spearman ρ of a zero-shot
   VLM's per-class F1 with class and word frequency, tested over classes; its head−tail
   recall gap against each vision-only baseline.
2. **Shuffle sensitivity** (:mod:`~emobench.report.findings_shuffle`) -- Δ UAR of
   shuffling for an order-aware baseline minus that of a VLM; VLMs that pool their frames
   are order-invariant by construction and left out.
3. **Metric vs density** (:mod:`~emobench.report.findings_density`) -- the peak, the rise
   to it and the fall after it, the curve's named shape.
4. **MSCE on micro-expression clips** (:mod:`~emobench.report.findings_msce`) -- Δ UAR
   (msce − none) and (msce − msce-dense) on the clips flagged ``micro``.

Shared helpers: :mod:`~emobench.report.findings_common`; statistics:
:mod:`~emobench.report.finding_stats`; verdicts: :mod:`~emobench.report.verdicts`.
"""

from __future__ import annotations

from importlib import import_module

#: The modules of the study's findings, in report order (each registers one on import).
MODULES: tuple[str, ...] = (
    "emobench.report.findings_headbias",
    "emobench.report.findings_shuffle",
    "emobench.report.findings_density",
    "emobench.report.findings_msce",
)

for _name in MODULES:
    import_module(_name)
