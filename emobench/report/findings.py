"""The study's findings as observed in this run: the opening section of the report.

Each finding is computed from the run's own tables (predictions, metrics, manifest), its
cells picked by their settings and by their model's role (:mod:`emobench.report.roles`),
never by a model's name. The study's four (head bias vs class and word frequency,
frame-order shuffling of temporal baselines vs VLMs, UAR vs sampling density, MSCE on
micro-expression clips) live in :mod:`emobench.report.findings_study`, registered by name
in :data:`FINDINGS` (:func:`register_finding`; more can join). This module holds the
statement model, :func:`compute_findings`, ``findings.json`` and the report section.

A statement is *observed* when its 95% CI excludes zero in the study's direction, *not
observed: the opposite holds* when it excludes zero on the other side, *not observed at
this size* otherwise (absent, or too small for this run to show); a finding whose cells
the run lacks is *not measurable in this run*, saying what is missing. Its Δs and gaps
pool the matched clips over folds (as the report's paired tables do); its ρ uses the
fold-mean per-class F1 of the per-class table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emobench.errors import EmobenchError
from emobench.registry import Registry
from emobench.report.context import ReportContext
from emobench.report.document import Bullets, Document, Heading, Paragraph
from emobench.report.roles import ModelRole, model_roles

OBSERVED = "observed"
NOT_OBSERVED = "not observed at this size"
#: A statement whose CI excludes 0 on the side opposite to the study's.
OPPOSITE = "not observed: the opposite holds (95% CI)"


def not_measurable(why: str) -> str:
    """The status of a finding whose cells the run lacks."""
    return f"not measurable in this run: {why}"


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% CI (None bounds: no interval)."""

    value: float
    lo: float | None = None
    hi: float | None = None

    def text(self, signed: bool = True, digits: int = 3) -> str:
        """``+0.083 [+0.051, +0.112]`` (signed) or ``0.412 [0.391, 0.433]``."""

        def f(x: float) -> str:
            return fmt_number(x, digits, signed)

        ci = "" if self.lo is None or self.hi is None else f" [{f(self.lo)}, {f(self.hi)}]"
        return f(self.value) + ci


def fmt_number(x: float, digits: int = 3, signed: bool = False) -> str:
    """``x`` rounded for reading; a rounding error never shows as ``-0.000``."""
    return f"{round(x, digits) + 0.0:{'+' if signed else ''}.{digits}f}"


@dataclass(frozen=True)
class Statement:
    """One observed number of a finding on one dataset, and whether it shows the effect."""

    dataset: str
    text: str
    status: str
    estimate: Estimate | None = None

    @property
    def observed(self) -> bool:
        return self.status == OBSERVED


@dataclass(frozen=True)
class Finding:
    """A finding of the study as this run shows it."""

    key: str
    title: str
    claim: str  # what "observed" means for this finding
    statements: tuple[Statement, ...] = ()
    missing: tuple[str, ...] = ()  # what the run lacks, per dataset

    @property
    def verdict(self) -> str:
        """``observed`` (k of n statements when several), ``not observed at this size``,
        or ``not measurable in this run: ...``."""
        n = len(self.statements)
        if n == 0:
            return not_measurable("; ".join(self.missing) or "no cells")
        k = sum(s.observed for s in self.statements)
        if k == 0:
            r = sum(s.status == OPPOSITE for s in self.statements)
            if r == 0:
                return NOT_OBSERVED
            return OPPOSITE if n == 1 else f"not observed; the opposite holds in {r} of {n}"
        return OBSERVED if n == 1 else f"{OBSERVED} in {k} of {n} comparisons"


def findings_record(findings: Sequence[Finding]) -> dict[str, Any]:
    """The findings as a JSON-ready dict (``findings.json`` of the report folder): per
    finding its key, title, verdict, what is missing, and each statement's dataset, text,
    status, value and 95% CI (None where there is none)."""

    def num(x: float | None) -> float | None:
        return None if x is None or not np.isfinite(x) else float(x)

    return {
        "findings": [
            {
                "key": f.key,
                "title": f.title,
                "verdict": f.verdict,
                "statements": [
                    {
                        "dataset": s.dataset,
                        "text": s.text,
                        "status": s.status,
                        "value": num(None if s.estimate is None else s.estimate.value),
                        "ci_lo": num(None if s.estimate is None else s.estimate.lo),
                        "ci_hi": num(None if s.estimate is None else s.estimate.hi),
                    }
                    for s in f.statements
                ],
                "missing": list(f.missing),
            }
            for f in findings
        ]
    }


@dataclass
class FindingRun:
    """What a finding function gets: the report context and the models' roles; it adds
    its statements with :meth:`say` and what the run lacks with :meth:`lack`."""

    ctx: ReportContext
    roles: dict[str, ModelRole]
    statements: list[Statement] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def say(self, dataset: str, text: str, estimate: Estimate, sign: int) -> None:
        """Add a statement; ``sign`` is the study's direction of ``estimate`` (+1: above
        0, -1: below 0). Observed when the CI lies on that side of 0."""
        status = NOT_OBSERVED
        if estimate.lo is not None and estimate.hi is not None:
            lo, hi = sorted((sign * estimate.lo, sign * estimate.hi))
            status = OBSERVED if lo > 0 else OPPOSITE if hi < 0 else NOT_OBSERVED
        self.statements.append(Statement(dataset, text, status, estimate))

    def lack(self, dataset: str, why: str) -> None:
        self.missing.append(f"{dataset}: {why}")

    def role(self, row: Mapping[str, Any]) -> ModelRole:
        return self.roles[str(row["model"])]


@dataclass(frozen=True)
class FindingSpec:
    """A registered finding: title, what "observed" means and its function."""

    key: str
    title: str
    claim: str
    fn: Callable[[FindingRun], None]


#: The registered findings, in report order; the study's four register in
#: :mod:`emobench.report.findings_study`, imported on the first lookup.
FINDINGS: Registry[FindingSpec] = Registry(
    "finding", sort=False, modules=("emobench.report.findings_study",)
)


def register_finding(
    key: str, title: str, claim: str
) -> Callable[[Callable[[FindingRun], None]], Any]:
    """Decorator: register a finding function (it adds statements to the run it gets)."""

    def deco(fn: Callable[[FindingRun], None]) -> Callable[[FindingRun], None]:
        FINDINGS.add(key, FindingSpec(key, title, claim, fn))
        return fn

    return deco


def run_roles(ctx: ReportContext) -> dict[str, ModelRole]:
    """The role of every model of the run (by display name)."""
    return model_roles(ctx.manifest, sorted(ctx.cells.get_column("model").unique().to_list()))


def compute_findings(
    ctx: ReportContext, roles: dict[str, ModelRole] | None = None
) -> list[Finding]:
    """Every registered finding on this run's tables, in registration order."""
    roles = run_roles(ctx) if roles is None else roles
    out = []
    for spec in FINDINGS.values():
        run = FindingRun(ctx, roles)
        try:
            spec.fn(run)
        except EmobenchError as exc:  # bad input in one finding leaves the others standing
            run.statements.clear()
            run.missing.append(f"the run's tables could not be read for it ({exc})")
        out.append(
            Finding(
                spec.key,
                spec.title,
                spec.claim,
                tuple(run.statements),
                tuple(dict.fromkeys(run.missing)),
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# the report section


def findings_section(ctx: ReportContext, doc: Document) -> None:
    """The opening section: each finding's verdict, what it means and its numbers."""
    roles = run_roles(ctx)
    findings = compute_findings(ctx, roles)
    ctx.findings = findings
    unknown = [f"`{m}` (family `{r.family}`)" for m, r in roles.items() if r.role is None]
    if unknown:
        ctx.notes.append(
            "The findings leave out model(s) whose family has no registered role "
            f"(emobench.report.roles): {', '.join(unknown)}."
        )
    doc.add(Heading("Findings of this run"))
    doc.add(
        Paragraph(
            "The four findings of the study (Agarwal et al., ECCV 2026), computed from this "
            "run's tables. Models are told apart by their family's role (VLM or vision-only, "
            "zero-shot or trained, order-aware or not), cells by their settings. Each number "
            f"has a 95% CI from a clip bootstrap ({ctx.n_resamples} resamples, seed "
            f"{ctx.seed}); Δs are paired over the clips both cells answered, pooled over "
            "folds. Observed: the CI excludes 0 in the study's direction; the opposite holds: "
            "it excludes 0 on the other side; not observed at this size: it includes 0 (no "
            "effect, or too few clips to show one)."
        )
    )
    for i, f in enumerate(findings, start=1):
        doc.add(Heading(f"{i}. {f.title}: {f.verdict}", 3))
        items = [f"{s.dataset}: {s.text} → {s.status}" for s in f.statements]
        items += [not_measurable(m) for m in f.missing]
        doc.add(Paragraph(f.claim))
        if items:
            doc.add(Bullets(tuple(items)))
