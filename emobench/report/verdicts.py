"""How a finding's numbers become verdicts: statements, their tests, Holm's adjustment
within the finding, and the roll-up that names the primary comparison first.

A :class:`Statement` is one comparison of a finding on one dataset; it carries one or
more checks (:class:`Check`: an estimate with its 95% CI, the study's direction and a
two-sided p). :func:`settle` adjusts every p of a finding together (Holm, family-wise error
:data:`~emobench.report.finding_stats.ALPHA`) and gives each statement its status:

* ``sign`` statements (one test): *observed* when the adjusted p < α and the estimate lies
  on the study's side of 0, *the opposite holds* when it lies on the other side, *not
  observed at this size* otherwise;
* ``shape`` statements (density curves; tests ``rise`` and ``fall``, either absent when
  fixed by construction): the named shape (rises, rises then falls, flat, falls) of the
  adjusted tests; *observed* for the study's bell, *rises then falls*, *not observed at
  this size* when flat, *not observed: the curve rises* (or *falls*) otherwise.

A statement whose outcome is fixed by construction (a model that cannot see frame order,
shuffled) is kept with the reason as its status and left out of the tests and counts.
Pure data and functions; no report context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from emobench.report.finding_stats import ALPHA, FLAT, RISES_THEN_FALLS, density_shape, holm

OBSERVED = "observed"
NOT_OBSERVED = "not observed at this size"
#: A statement whose test is significant on the side opposite to the study's.
OPPOSITE = "not observed: the opposite holds"
#: The status of a model that cannot see frame order, in a frame-order comparison.
ORDER_INVARIANT = "order-invariant by construction (left out of the verdict)"
#: Not yet settled (:func:`settle` replaces it).
PENDING = "pending"


def not_measurable(why: str) -> str:
    """The status of a finding whose cells the run lacks."""
    return f"not measurable in this run: {why}"


def fmt_number(x: float, digits: int = 3, signed: bool = False) -> str:
    """``x`` rounded for reading; a rounding error never shows as ``-0.000``."""
    return f"{round(x, digits) + 0.0:{'+' if signed else ''}.{digits}f}"


def fmt_p(p: float) -> str:
    """A p-value for reading: 3 significant digits, ``< 0.001`` below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


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


@dataclass(frozen=True)
class Part:
    """A per-model number behind a statement, for the report's figures: the ``model``,
    what was measured (``label``: a sampling, ``msce − none``), its estimate with 95% CI,
    the model's ``role`` (``vlm``, ``vision-only``) and a ``mark`` (``order-invariant``)."""

    model: str
    label: str
    estimate: Estimate
    role: str = ""
    mark: str = ""


@dataclass(frozen=True)
class Check:
    """One tested number of a statement: ``estimate`` (95% CI), the study's direction
    ``sign`` (+1: above 0), the two-sided ``p`` (None: untested), how it was obtained
    (``method``) and, once settled, the Holm-adjusted ``p_adj``."""

    name: str
    estimate: Estimate
    sign: int
    p: float | None
    method: str
    p_adj: float | None = None

    @property
    def significant(self) -> bool:
        return self.p_adj is not None and self.p_adj < ALPHA


@dataclass(frozen=True)
class Statement:
    """One comparison of a finding on one dataset, and whether it shows the effect.

    ``subject`` names what is compared (for the roll-up), ``primary`` ranks it as the
    finding's primary comparison (lower first; None: never), ``excluded`` says why its
    outcome is fixed by construction (then it is no evidence), ``note`` what the judge
    adds (a density curve's shape)."""

    dataset: str
    text: str
    status: str = PENDING
    estimate: Estimate | None = None
    tests: tuple[Check, ...] = ()
    judge: str = "sign"
    subject: str = ""
    primary: tuple[object, ...] | None = None
    excluded: str | None = None
    note: str = ""
    parts: tuple[Part, ...] = ()

    @property
    def observed(self) -> bool:
        return self.status == OBSERVED

    @property
    def counted(self) -> bool:
        """Evidence: not fixed by construction."""
        return self.excluded is None

    @property
    def extra_note(self) -> bool:
        """Whether :attr:`note` says more than the status (a shape the status names)."""
        return bool(self.note) and self.note.split(": ")[-1] not in self.status

    def p_text(self) -> str:
        """``Holm-adjusted p = 0.012`` (one test) or ``Holm-adjusted p: rise 0.004, fall
        0.31``; empty without tests."""
        tested = [t for t in self.tests if t.p_adj is not None]
        if not tested:
            return ""
        if len(tested) == 1 and len(self.tests) == 1:
            return f"Holm-adjusted p = {fmt_p(tested[0].p_adj or 0.0)}"
        return "Holm-adjusted p: " + ", ".join(f"{t.name} {fmt_p(t.p_adj or 0.0)}" for t in tested)


def _judge(s: Statement) -> Statement:
    """``s`` with its status from its (adjusted) tests."""
    if s.excluded is not None:
        return replace(s, status=s.excluded)
    if s.judge == "shape":
        by = {t.name: t for t in s.tests}
        rise, fall = by.get("rise"), by.get("fall")
        shape = density_shape(
            rise is not None and rise.significant and rise.estimate.value > 0,
            fall is not None and fall.significant and fall.estimate.value > 0,
        )
        status = (
            OBSERVED
            if shape == RISES_THEN_FALLS
            else NOT_OBSERVED
            if shape == FLAT
            else f"not observed: the curve {shape}"
        )
        return replace(s, status=status, note=f"shape: {shape}")
    if not s.tests:
        return replace(s, status=NOT_OBSERVED)
    t = s.tests[0]
    if t.p is None:  # untested: the CI alone, unadjusted
        lo, hi = t.estimate.lo, t.estimate.hi
        if lo is None or hi is None:
            return replace(s, status=NOT_OBSERVED)
        lo, hi = sorted((t.sign * lo, t.sign * hi))
        return replace(s, status=OBSERVED if lo > 0 else OPPOSITE if hi < 0 else NOT_OBSERVED)
    if not t.significant or t.estimate.value == 0:
        return replace(s, status=NOT_OBSERVED)
    return replace(s, status=OBSERVED if t.sign * t.estimate.value > 0 else OPPOSITE)


def settle(statements: Sequence[Statement]) -> tuple[Statement, ...]:
    """Holm-adjust every p of the counted statements together (one family: the finding)
    and judge each statement."""
    where = [
        (i, j)
        for i, s in enumerate(statements)
        if s.counted
        for j, t in enumerate(s.tests)
        if t.p is not None
    ]
    adjusted = holm([statements[i].tests[j].p or 0.0 for i, j in where]) if where else []
    tests = [list(s.tests) for s in statements]
    for (i, j), p in zip(where, adjusted, strict=True):
        tests[i][j] = replace(tests[i][j], p_adj=p)
    return tuple(_judge(replace(s, tests=tuple(t))) for s, t in zip(statements, tests, strict=True))


def primary_of(statements: Sequence[Statement]) -> Statement | None:
    """The primary comparison: the counted statement of lowest ``primary`` rank, else
    the first counted one."""
    counted = [s for s in statements if s.counted]
    ranked = [s for s in counted if s.primary is not None]
    if ranked:
        return min(ranked, key=lambda s: s.primary)  # type: ignore[arg-type,return-value]
    return counted[0] if counted else None


def counts(statements: Sequence[Statement]) -> dict[str, int]:
    """How many counted statements are observed, the opposite, not observed; how many
    are fixed by construction."""
    counted = [s for s in statements if s.counted]
    k = sum(s.status == OBSERVED for s in counted)
    r = sum(s.status == OPPOSITE for s in counted)
    return {
        "observed": k,
        "opposite": r,
        "not_observed": len(counted) - k - r,
        "by_construction": len(statements) - len(counted),
    }


def verdict(statements: Sequence[Statement], missing: Sequence[str]) -> str:
    """The finding's verdict: the primary comparison's status, then the counts of all:
    ``observed in the primary comparison (X, ds); of 3 comparisons: 2 observed, 0
    opposite, 1 not observed``."""
    if not statements:
        return not_measurable("; ".join(missing) or "no cells")
    first = primary_of(statements)
    c = counts(statements)
    left = (
        f"; {c['by_construction']} fixed by construction, left out" if c["by_construction"] else ""
    )
    if first is None:
        return not_measurable("every comparison is fixed by construction") + left
    n = len(statements) - c["by_construction"]
    note = f" ({first.note})" if first.extra_note else ""
    head = f"{first.status}{note} in the primary comparison ({first.subject or first.dataset})"
    tail = (
        f"of {n} comparison{'s' if n != 1 else ''}: {c['observed']} observed, "
        f"{c['opposite']} opposite, {c['not_observed']} not observed"
    )
    return f"{head}; {tail}{left}"
