"""The study's findings as observed in this run: the opening section of the report.

Each finding is computed from the run's own tables (predictions, metrics, manifest), its
cells picked by their settings and by their model's role (:mod:`emobench.report.roles`),
never by a model's name. The study's four (head bias vs class and word frequency,
frame-order shuffling of temporal baselines vs VLMs, UAR vs sampling density, MSCE on
micro-expression clips) live in :mod:`emobench.report.findings_study`, registered by name
in :data:`FINDINGS` (:func:`register_finding`; more can join). This module holds the
statement model, :func:`compute_findings`, ``findings.json`` and the report section.

Verdicts (:mod:`emobench.report.verdicts`): each statement has a two-sided test, a
class-level permutation test for a correlation over classes
(:mod:`emobench.report.finding_stats`), a paired clip bootstrap for a Δ; the p-values of
one finding are Holm-adjusted together. A statement is *observed* when its adjusted p <
0.05 and its estimate lies on the study's side, *not observed: the opposite holds* when
on the other side, *not observed at this size* otherwise; a density curve is judged by
its shape. A comparison fixed by construction (a model that cannot see frame order,
shuffled) is shown and left out. The verdict names the finding's primary comparison (the
VLM against the vision-only specialist, reference cells) with its status first, then
observed / opposite / not observed counts of all. A finding whose cells the run lacks is
*not measurable in this run*, saying what is missing.
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
from emobench.report.verdicts import (
    NOT_OBSERVED,
    OBSERVED,
    OPPOSITE,
    ORDER_INVARIANT,
    Check,
    Estimate,
    Part,
    Statement,
    counts,
    fmt_number,
    not_measurable,
    primary_of,
    settle,
    verdict,
)

__all__ = [
    "NOT_OBSERVED",
    "OBSERVED",
    "OPPOSITE",
    "ORDER_INVARIANT",
    "Estimate",
    "Finding",
    "FindingRun",
    "Part",
    "Statement",
    "Check",
    "compute_findings",
    "findings_record",
    "findings_section",
    "fmt_number",
    "not_measurable",
    "register_finding",
]


@dataclass(frozen=True)
class Finding:
    """A finding of the study as this run shows it (statements settled: Holm-adjusted
    within the finding, :func:`~emobench.report.verdicts.settle`)."""

    key: str
    title: str
    claim: str  # what "observed" means for this finding
    statements: tuple[Statement, ...] = ()
    missing: tuple[str, ...] = ()  # what the run lacks, per dataset

    @property
    def verdict(self) -> str:
        """The primary comparison's status first, then observed / opposite / not
        observed counts of all (:func:`~emobench.report.verdicts.verdict`), or ``not
        measurable in this run: ...``."""
        return verdict(self.statements, self.missing)

    @property
    def primary(self) -> Statement | None:
        return primary_of(self.statements)

    def ordered(self) -> list[Statement]:
        """The statements, the primary comparison first."""
        first = self.primary
        return ([first] if first else []) + [s for s in self.statements if s is not first]


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _statement_record(s: Statement, primary: bool) -> dict[str, Any]:
    est = s.estimate
    return {
        "dataset": s.dataset,
        "text": s.text,
        "status": s.status,
        "note": s.note,
        "primary": primary,
        "subject": s.subject,
        "excluded": s.excluded,
        "value": _num(None if est is None else est.value),
        "ci_lo": _num(None if est is None else est.lo),
        "ci_hi": _num(None if est is None else est.hi),
        "tests": [
            {
                "name": t.name,
                "value": _num(t.estimate.value),
                "ci_lo": _num(t.estimate.lo),
                "ci_hi": _num(t.estimate.hi),
                "direction": t.sign,
                "p": _num(t.p),
                "p_holm": _num(t.p_adj),
                "method": t.method,
            }
            for t in s.tests
        ],
        "parts": [
            {
                "model": q.model,
                "label": q.label,
                "role": q.role,
                "mark": q.mark,
                "value": _num(q.estimate.value),
                "ci_lo": _num(q.estimate.lo),
                "ci_hi": _num(q.estimate.hi),
            }
            for q in s.parts
        ],
    }


def findings_record(findings: Sequence[Finding]) -> dict[str, Any]:
    """The findings as a JSON-ready dict (``findings.json`` of the report folder): per
    finding its key, title, verdict, the counts (observed, opposite, not observed, fixed
    by construction), what is missing, and each statement (primary first) with its
    dataset, text, status, value and 95% CI, and its tests (p, Holm-adjusted p, method;
    None where there is none)."""
    return {
        "findings": [
            {
                "key": f.key,
                "title": f.title,
                "verdict": f.verdict,
                "counts": counts(f.statements),
                "statements": [_statement_record(s, s is f.primary) for s in f.ordered()],
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

    def say(
        self,
        dataset: str,
        text: str,
        estimate: Estimate,
        sign: int,
        *,
        p: float | None = None,
        method: str = "",
        subject: str = "",
        primary: tuple[Any, ...] | None = None,
        parts: Sequence[Part] = (),
    ) -> None:
        """Add a statement with one test; ``sign`` is the study's direction of
        ``estimate`` (+1: above 0, -1: below 0), ``p`` its two-sided p (None: judged by
        its CI alone, unadjusted). ``primary`` ranks it as the primary comparison;
        ``parts`` are the per-model numbers behind it (for the figures)."""
        test = Check("Δ", estimate, sign, p, method)
        self.statements.append(
            Statement(
                dataset,
                text,
                estimate=estimate,
                tests=(test,),
                subject=subject,
                primary=primary,
                parts=tuple(parts),
            )
        )

    def say_shape(
        self,
        dataset: str,
        text: str,
        tests: Sequence[Check],
        *,
        estimate: Estimate | None = None,
        subject: str = "",
        primary: tuple[Any, ...] | None = None,
    ) -> None:
        """Add a density curve judged by its shape (tests ``rise`` and ``fall``, either
        absent when it is 0 by construction); ``estimate`` is its headline number."""
        est = estimate
        self.statements.append(
            Statement(
                dataset,
                text,
                estimate=est,
                tests=tuple(tests),
                judge="shape",
                subject=subject,
                primary=primary,
            )
        )

    def exclude(
        self, dataset: str, text: str, why: str, *, subject: str = "", parts: Sequence[Part] = ()
    ) -> None:
        """Add a comparison whose outcome is fixed by construction: shown with ``why`` as
        its status, no evidence either way."""
        self.statements.append(
            Statement(dataset, text, subject=subject, excluded=why, parts=tuple(parts))
        )

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
                settle(run.statements),
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
    doc.add(Heading("Findings in detail"))
    doc.add(
        Paragraph(
            "The four findings of the study (Agarwal et al., ECCV 2026), computed from this "
            "run's tables. Models are told apart by their family's role (VLM or vision-only, "
            "zero-shot or trained, order-aware or not), cells by their settings. Δs are "
            "paired over the clips the cells answered, pooled over folds, with a 95% CI "
            f"and a two-sided p from a clip bootstrap ({ctx.n_resamples} resamples, seed "
            f"{ctx.seed}); correlations over classes are tested over classes (exact "
            "permutation over every ordering up to 8 classes, Monte Carlo above) with a CI "
            "that resamples the classes and the clips within them. Within each finding the "
            "p-values are Holm-adjusted. Observed: adjusted p < 0.05 in the study's "
            "direction; the opposite holds: adjusted p < 0.05 the other way; not observed at "
            "this size: no effect, or too few clips or classes to show one. A comparison "
            "whose outcome is fixed by construction (a model that cannot see frame order, "
            "shuffled) is shown but is no evidence. Each verdict gives the finding's "
            "primary comparison (the VLM against the vision-only specialist at reference "
            "cells) first, then how many comparisons are observed, the opposite, not "
            "observed."
        )
    )
    for i, f in enumerate(findings, start=1):
        doc.add(Heading(f"{i}. {f.title}: {f.verdict}", 3))
        items = [_bullet(s, s is f.primary) for s in f.ordered()]
        items += [not_measurable(m) for m in f.missing]
        doc.add(Paragraph(f.claim))
        if items:
            doc.add(Bullets(tuple(items)))


def _bullet(s: Statement, primary: bool) -> str:
    """``ds: text → status (shape: ...; Holm-adjusted p = ...)``, primary marked."""
    extra = "; ".join(x for x in (s.note if s.extra_note else "", s.p_text()) if x)
    head = "primary comparison — " if primary else ""
    return f"{head}{s.dataset}: {s.text} → {s.status}" + (f" ({extra})" if extra else "")
