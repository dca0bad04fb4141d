"""Evaluation metrics: pure functions, label *names* in, numbers out (numpy, polars, scipy).

Conventions (they match scikit-learn with ``zero_division=0``):

* The classes are ``labels``, in display order. Every true label must be one of them
  (:class:`MetricsError` otherwise). A prediction outside ``labels`` (``invalid``, or an
  emotion the dataset does not have) is wrong for every class: it is counted in the last
  column of the confusion matrix and in ``invalid_rate``, and never mapped to a class.
* Per class: precision = tp / n_pred (0 when the class is never predicted), recall =
  tp / support (0 when the class has no test clips), f1 = 2·tp / (support + n_pred) (0 when
  both are 0). This is ``precision_recall_fscore_support(labels=labels, zero_division=0)``.
* Macro averages (``uar``, ``macro_precision``, ``macro_recall``, ``macro_f1``) are means
  over the *supported* classes: those of ``labels`` that occur in ``y_true``. A class absent
  from the test set is neither rewarded nor penalised (predicting it is still an error for
  the true class). This equals scikit-learn's ``f1_score(..., labels=<supported classes>,
  average="macro", zero_division=0)``; ``uar`` equals ``balanced_accuracy_score`` and
  ``macro_recall``. ``weighted_f1`` weights class F1 by support (any ``labels=`` superset).
* ``war`` is plain accuracy; invalid answers count as wrong.
* Empty input gives 0 for every rate and ``n = 0``; no NaN ever reaches a table. Metrics
  that are undefined (a group with no test clips, ``neutral_sink`` without a neutral
  class) are left out of dicts and tables rather than reported as NaN.

Every metric here is a function of the confusion matrix, so a bootstrap resample of clips
is drawn directly as a multinomial resample of the confusion-matrix cells (exactly the same
distribution as resampling clips with replacement, at a cost independent of the number of
clips): 1000 resamples take milliseconds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError
from emobench.labels import EMOTIONS

OVERALL_METRICS: tuple[str, ...] = (
    "uar",
    "war",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "weighted_f1",
    "invalid_rate",
    "n",
)
CLASS_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "support", "n_pred")
GROUP_METRICS: tuple[str, ...] = ("recall", "f1")
LONGTAIL_METRICS: tuple[str, ...] = (
    "head_tail_gap",
    "collapse_rate",
    "neutral_sink",
    "war_minus_uar",
)
#: Metrics that get bootstrap confidence intervals on per-fold rows of the metrics table.
CI_METRICS: tuple[str, ...] = ("uar", "war", "macro_f1", "head_tail_gap")

#: The role (head / medium / tail) each group name plays in gap and collapse metrics.
GROUP_ROLES: dict[str, str] = {
    "head": "head",
    "medium": "medium",
    "tail": "tail",
    "many": "head",
    "few": "tail",
}

Labels = Sequence[str]


class MetricsError(EmobenchError):
    """Inputs a metric cannot use (length mismatch, unknown true label, bad rule)."""


# ----------------------------------------------------------------------------------------
# encoding and the confusion matrix


def _check_labels(labels: Labels) -> list[str]:
    labs = [str(x) for x in labels]
    if not labs:
        raise MetricsError("labels is empty: give the dataset's class names")
    if len(set(labs)) != len(labs):
        dup = sorted({x for x in labs if labs.count(x) > 1})
        raise MetricsError(f"labels repeat name(s) {dup}")
    return labs


def _as_list(y: Any) -> list[Any]:
    if isinstance(y, pl.Series):
        return y.to_list()
    if isinstance(y, np.ndarray):
        return y.tolist()
    return list(y)


def _encode(y_true: Any, y_pred: Any, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes: true labels 0..C-1, predictions 0..C (C = invalid / out of set)."""
    t, p = _as_list(y_true), _as_list(y_pred)
    if len(t) != len(p):
        raise MetricsError(f"y_true has {len(t)} entries but y_pred has {len(p)}")
    index = {name: i for i, name in enumerate(labels)}
    bad = sorted({str(v) for v in t if v not in index})
    if bad:
        raise MetricsError(f"true label(s) {bad[:5]} are not among the classes {labels}")
    c = len(labels)
    tc = np.fromiter((index[v] for v in t), dtype=np.int64, count=len(t))
    pc = np.fromiter((index.get(v, c) for v in p), dtype=np.int64, count=len(p))
    return tc, pc


def _cm_from_codes(t: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    flat = np.bincount(t * (c + 1) + p, minlength=c * (c + 1))
    return flat.reshape(c, c + 1).astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, labels: Labels) -> np.ndarray:
    """Counts of shape (C, C+1): rows = true label, columns = predicted label (``labels``
    order) plus a last column for invalid / out-of-set predictions."""
    labs = _check_labels(labels)
    t, p = _encode(y_true, y_pred, labs)
    return _cm_from_codes(t, p, len(labs))


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each row sums to 1); rows with no support stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=-1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


# ----------------------------------------------------------------------------------------
# batched core: every metric from a stack of confusion matrices (R, C, C+1)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the last axis where ``mask`` holds (NaN when none does)."""
    return _div(np.where(mask, values, 0.0).sum(-1), mask.sum(-1))


@dataclass(frozen=True)
class _ClassStats:
    support: np.ndarray  # (R, C)
    tp: np.ndarray
    n_pred: np.ndarray
    precision: np.ndarray  # zero_division = 0
    recall: np.ndarray
    f1: np.ndarray
    n: np.ndarray  # (R,)
    n_invalid: np.ndarray


def _class_stats(cm: np.ndarray) -> _ClassStats:
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[-2]
    support = cm.sum(-1)
    tp = np.diagonal(cm[..., :c], axis1=-2, axis2=-1)
    n_pred = cm[..., :c].sum(-2)
    return _ClassStats(
        support=support,
        tp=tp,
        n_pred=n_pred,
        precision=np.nan_to_num(_div(tp, n_pred)),
        recall=np.nan_to_num(_div(tp, support)),
        f1=np.nan_to_num(_div(2 * tp, support + n_pred)),
        n=support.sum(-1),
        n_invalid=cm[..., c].sum(-1),
    )


@dataclass(frozen=True)
class _Groups:
    """Class groups as boolean masks over the label axis."""

    names: tuple[str, ...]
    masks: np.ndarray  # (G, C)
    head: np.ndarray  # (C,) classes whose group plays the head role
    tail: np.ndarray


def _make_groups(labels: list[str], groups: Mapping[str, str] | None) -> _Groups | None:
    if groups is None:
        return None
    seen = {groups[lab] for lab in labels if lab in groups}
    order = {name: i for i, name in enumerate(("head", "many", "medium", "tail", "few"))}
    names = tuple(sorted(seen, key=lambda g: (order.get(g, len(order)), g)))
    masks = np.array([[groups.get(lab) == g for lab in labels] for g in names], dtype=bool).reshape(
        len(names), len(labels)
    )
    role = [GROUP_ROLES.get(groups.get(lab, ""), "") for lab in labels]
    return _Groups(
        names=names,
        masks=masks,
        head=np.array([r == "head" for r in role], dtype=bool),
        tail=np.array([r == "tail" for r in role], dtype=bool),
    )


def _batch_metrics(
    cm: np.ndarray, groups: _Groups | None = None, neutral_idx: int | None = None
) -> dict[str, np.ndarray]:
    """Every scalar metric for each confusion matrix in a stack (R, C, C+1); NaN = undefined."""
    s = _class_stats(cm)
    present = s.support > 0
    uar = _masked_mean(s.recall, present)
    war = _div(s.tp.sum(-1), s.n)
    out: dict[str, np.ndarray] = {
        "uar": uar,
        "war": war,
        "macro_f1": _masked_mean(s.f1, present),
        "macro_precision": _masked_mean(s.precision, present),
        "macro_recall": uar,
        "weighted_f1": _div((s.f1 * s.support).sum(-1), s.n),
        "invalid_rate": _div(s.n_invalid, s.n),
        "war_minus_uar": war - uar,
    }
    if groups is not None:
        for g, mask in zip(groups.names, groups.masks, strict=True):
            out[f"recall_{g}"] = _masked_mean(s.recall, present & mask)
            out[f"f1_{g}"] = _masked_mean(s.f1, present & mask)
        out["head_tail_gap"] = _masked_mean(s.recall, present & groups.head) - _masked_mean(
            s.recall, present & groups.tail
        )
        c = s.support.shape[-1]
        block = np.asarray(cm, dtype=np.float64)[..., :c][..., groups.tail, :][..., groups.head]
        out["collapse_rate"] = _div(block.sum((-2, -1)), s.support[..., groups.tail].sum(-1))
    if neutral_idx is not None:
        k = neutral_idx
        out["neutral_sink"] = _div(s.n_pred[..., k] - s.tp[..., k], s.n - s.support[..., k])
    return out


def _scalar(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Unbatch a one-element result, dropping undefined (NaN) metrics."""
    out = {}
    for key, arr in values.items():
        v = float(np.asarray(arr).reshape(-1)[0])
        if math.isfinite(v):
            out[key] = v
    return out


# ----------------------------------------------------------------------------------------
# point metrics


def per_class(y_true: Any, y_pred: Any, labels: Labels) -> pl.DataFrame:
    """One row per class in ``labels`` order: label, precision, recall, f1, support, n_pred.

    Zero-division gives 0 (a class with no support has recall 0; never predicted,
    precision 0), as scikit-learn with ``zero_division=0``.
    """
    labs = _check_labels(labels)
    return _per_class_frame(confusion_matrix(y_true, y_pred, labs), labs)


def _per_class_frame(cm: np.ndarray, labels: list[str]) -> pl.DataFrame:
    s = _class_stats(cm)
    return pl.DataFrame(
        {
            "label": labels,
            "precision": s.precision,
            "recall": s.recall,
            "f1": s.f1,
            "support": s.support.astype(np.int64),
            "n_pred": s.n_pred.astype(np.int64),
        },
        schema={
            "label": pl.Utf8,
            "precision": pl.Float64,
            "recall": pl.Float64,
            "f1": pl.Float64,
            "support": pl.Int64,
            "n_pred": pl.Int64,
        },
    )


def _overall_from_cm(cm: np.ndarray) -> dict[str, float]:
    m = _batch_metrics(np.asarray(cm)[None])
    out: dict[str, float] = {}
    for key in OVERALL_METRICS[:-1]:
        v = float(m[key][0])
        out[key] = v if math.isfinite(v) else 0.0
    out["n"] = int(np.asarray(cm).sum())
    return out


def overall(y_true: Any, y_pred: Any, labels: Labels) -> dict[str, float]:
    """war, uar, macro_precision, macro_recall, macro_f1, weighted_f1, invalid_rate, n.

    Macro means run over the classes of ``labels`` present in ``y_true`` (see the module
    docstring); invalid answers are wrong; empty input gives zeros.
    """
    labs = _check_labels(labels)
    return _overall_from_cm(confusion_matrix(y_true, y_pred, labs))


# ----------------------------------------------------------------------------------------
# class groups (head / medium / tail)


@dataclass(frozen=True)
class GroupRule:
    """A way to cut classes into three groups by their training counts.

    ``groups`` names the (head-role, medium, tail-role) groups. A class with count ≥ the
    upper threshold is head, < the lower threshold tail, else medium; ``relative`` rules
    scale the thresholds by the largest class's count.
    """

    name: str
    groups: tuple[str, str, str]
    default_head: float
    default_tail: float
    relative: bool
    description: str

    def thresholds(self, largest: float, head: float, tail: float) -> tuple[float, float]:
        return (head * largest, tail * largest) if self.relative else (head, tail)


GROUP_RULES: dict[str, GroupRule] = {
    "relative": GroupRule(
        "relative",
        ("head", "medium", "tail"),
        0.5,
        0.2,
        True,
        "head: count >= head x largest; tail: count < tail x largest; else medium",
    ),
    "absolute": GroupRule(
        "absolute",
        ("many", "medium", "few"),
        100,
        20,
        False,
        "many: >= 100 training clips; few: < 20; medium: 20-99 (thresholds configurable)",
    ),
}


def get_rule(rule: str) -> GroupRule:
    """The registered :class:`GroupRule` named ``rule``."""
    try:
        return GROUP_RULES[rule]
    except KeyError:
        raise MetricsError(
            f"unknown grouping rule {rule!r}; known: {', '.join(sorted(GROUP_RULES))}"
        ) from None


def group_classes(
    train_counts: Mapping[str, int],
    rule: str = "relative",
    head: float | None = None,
    tail: float | None = None,
) -> dict[str, str]:
    """Map each class to its group from its training count.

    ``relative`` (default thresholds head=0.5, tail=0.2): head if count ≥ head × largest,
    tail if count < tail × largest, else medium. ``absolute`` (defaults head=100, tail=20):
    many if count ≥ 100, few if < 20, else medium. ``None`` takes the rule's default.
    """
    r = get_rule(rule)
    hi_t = r.default_head if head is None else float(head)
    lo_t = r.default_tail if tail is None else float(tail)
    if not (0 <= lo_t <= hi_t):
        raise MetricsError(
            f"grouping thresholds need 0 <= tail <= head (got tail={lo_t}, head={hi_t})"
        )
    neg = sorted(k for k, v in train_counts.items() if v < 0)
    if neg:
        raise MetricsError(f"negative training count(s) for {neg}")
    if not train_counts:
        return {}
    largest = max(train_counts.values())
    hi, lo = r.thresholds(largest, hi_t, lo_t)
    head_name, medium_name, tail_name = r.groups
    return {
        k: head_name if v >= hi else tail_name if v < lo else medium_name
        for k, v in train_counts.items()
    }


def longtail(
    y_true: Any,
    y_pred: Any,
    labels: Labels,
    groups: Mapping[str, str],
    neutral: str = "neutral",
) -> dict[str, float]:
    """Long-tail diagnostics: recall_<group>, f1_<group>, head_tail_gap, collapse_rate,
    neutral_sink, war_minus_uar.

    Group means run over the group's classes with test support. ``head_tail_gap`` = head
    mean recall − tail mean recall (roles from :data:`GROUP_ROLES`: many/few for the absolute
    rule). ``collapse_rate`` = share of tail-class clips predicted as a head class.
    ``neutral_sink`` = share of non-neutral clips predicted ``neutral`` (absent when
    ``neutral`` is not a class). Undefined values are left out.
    """
    labs = _check_labels(labels)
    cm = confusion_matrix(y_true, y_pred, labs)
    nidx = labs.index(neutral) if neutral in labs else None
    m = _scalar(_batch_metrics(cm[None], _make_groups(labs, groups), nidx))
    keep = [k for k in m if k.startswith(("recall_", "f1_"))] + list(LONGTAIL_METRICS)
    return {k: m[k] for k in keep if k in m}


# ----------------------------------------------------------------------------------------
# uncertainty


def _resample_cms(cm: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` bootstrap confusion matrices: a multinomial draw over the cells.

    Resampling n clips with replacement gives cell counts ~ Multinomial(n, cell / n), so
    this is the clip bootstrap, at a cost that does not grow with n.
    """
    flat = np.asarray(cm, dtype=np.int64).ravel()
    n = int(flat.sum())
    nz = np.flatnonzero(flat)
    out = np.zeros((n_resamples, flat.size), dtype=np.float64)
    if n:
        out[:, nz] = rng.multinomial(n, flat[nz] / n, size=n_resamples)
    return out.reshape((n_resamples, *np.shape(cm)))


def _interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def _check_metric_names(metrics: Sequence[str]) -> None:
    known = set(OVERALL_METRICS) | set(LONGTAIL_METRICS)
    bad = [m for m in metrics if m not in known and not m.startswith(("recall_", "f1_"))]
    if "n" in metrics:
        bad.append("n")
    if bad:
        raise MetricsError(
            f"no bootstrap for metric(s) {bad}; use {sorted(known - {'n'})} or recall_/f1_<group>"
        )


def _check_resample_args(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise MetricsError(f"n_resamples must be >= 1 (got {n_resamples})")
    if not 0 < level < 1:
        raise MetricsError(f"level must lie in (0, 1) (got {level})")


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    labels: Labels,
    groups: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = ("uar", "war", "macro_f1", "head_tail_gap"),
    neutral: str = "neutral",
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (resampling clips) for each metric in ``metrics``.

    Deterministic for a seed. A metric that needs ``groups`` when none are given, or that is
    undefined in every resample, is left out. Within a resample, macro means run over the
    classes that the resample contains, as for the point estimate.
    """
    _check_resample_args(n_resamples, level)
    _check_metric_names(metrics)
    labs = _check_labels(labels)
    cm = confusion_matrix(y_true, y_pred, labs)
    grp = _make_groups(labs, groups)
    return _bootstrap_from_cm(cm, labs, grp, n_resamples, seed, level, metrics, neutral)


def _bootstrap_from_cm(
    cm: np.ndarray,
    labels: list[str],
    grp: _Groups | None,
    n_resamples: int,
    seed: int | Sequence[int],
    level: float,
    metrics: Sequence[str],
    neutral: str = "neutral",
) -> dict[str, tuple[float, float]]:
    if cm.sum() == 0:
        return {}
    rng = np.random.default_rng(seed)
    nidx = labels.index(neutral) if neutral in labels else None
    values = _batch_metrics(_resample_cms(cm, n_resamples, rng), grp, nidx)
    out: dict[str, tuple[float, float]] = {}
    for name in metrics:
        if name in values:
            ci = _interval(values[name], level)
            if ci is not None:
                out[name] = ci
    return out


def paired_bootstrap(
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    labels: Labels,
    metric: str = "macro_f1",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Mapping[str, str] | None = None,
    neutral: str = "neutral",
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(b) − metric(a)`` on the same clips.

    Returns metric, a, b, diff (= b − a), ci_lo, ci_hi (percentile, ``level``), p_value
    (two-sided, from the bootstrap distribution shifted to the null of no difference:
    (1 + #{|d* − d| ≥ |d|}) / (R + 1)), n and n_resamples.
    """
    _check_resample_args(n_resamples, level)
    _check_metric_names([metric])
    labs = _check_labels(labels)
    t, a = _encode(y_true, pred_a, labs)
    _, b = _encode(y_true, pred_b, labs)
    c, k1 = len(labs), len(labs) + 1
    grp = _make_groups(labs, groups)
    nidx = labs.index(neutral) if neutral in labs else None
    cm_a, cm_b = _cm_from_codes(t, a, c), _cm_from_codes(t, b, c)
    va = _batch_metrics(cm_a[None], grp, nidx).get(metric)
    vb = _batch_metrics(cm_b[None], grp, nidx).get(metric)
    if va is None or vb is None or not (np.isfinite(va[0]) and np.isfinite(vb[0])):
        raise MetricsError(f"metric {metric!r} is not defined for these inputs")
    diff = float(vb[0] - va[0])
    # Joint resample of (true, pred_a, pred_b) cells, then project to the two matrices.
    joint = np.bincount((t * k1 + a) * k1 + b, minlength=c * k1 * k1)
    nz = np.flatnonzero(joint)
    n = int(joint.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, joint[nz] / n, size=n_resamples).astype(np.float64)
    proj_a = np.zeros((nz.size, c * k1))
    proj_b = np.zeros((nz.size, c * k1))
    rows = np.arange(nz.size)
    proj_a[rows, nz // k1] = 1.0  # (t, a) cell
    proj_b[rows, (nz // (k1 * k1)) * k1 + nz % k1] = 1.0  # (t, b) cell
    da = _batch_metrics((draws @ proj_a).reshape(-1, c, k1), grp, nidx)[metric]
    db = _batch_metrics((draws @ proj_b).reshape(-1, c, k1), grp, nidx)[metric]
    d = db - da
    d = d[np.isfinite(d)]
    ci = _interval(d, level)
    p = (1 + int(np.sum(np.abs(d - diff) >= abs(diff) - 1e-12))) / (d.size + 1)
    return {
        "metric": metric,
        "a": float(va[0]),
        "b": float(vb[0]),
        "diff": diff,
        "ci_lo": ci[0] if ci else None,
        "ci_hi": ci[1] if ci else None,
        "p_value": min(1.0, p),
        "n": n,
        "n_resamples": n_resamples,
    }


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """McNemar's test on paired correctness; invalid answers count as wrong.

    b = clips a gets right and b wrong, c = the reverse. With b + c < 25: exact two-sided
    binomial test (statistic = min(b, c)); otherwise chi-square with continuity correction,
    (|b − c| − 1)² / (b + c), one degree of freedom.
    """
    from scipy import stats

    t, pa, pb = _as_list(y_true), _as_list(pred_a), _as_list(pred_b)
    if not len(t) == len(pa) == len(pb):
        raise MetricsError(
            f"y_true, pred_a and pred_b differ in length ({len(t)}, {len(pa)}, {len(pb)})"
        )
    ok_a = np.array([x == y for x, y in zip(pa, t, strict=True)], dtype=bool)
    ok_b = np.array([x == y for x, y in zip(pb, t, strict=True)], dtype=bool)
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    if b + c == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    if b + c < 25:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": p, "method": "exact"}
    stat = (abs(b - c) - 1.0) ** 2 / (b + c)
    p = float(stats.chi2.sf(stat, df=1))
    return {"b": b, "c": c, "statistic": stat, "p_value": p, "method": "chi2"}


# ----------------------------------------------------------------------------------------
# folds and priors


_PER_FOLD_ONLY = ("fold", "std", "ci_lo", "ci_hi")


def fold_summary(
    per_fold: pl.DataFrame, value: str = "value", by: Sequence[str] | None = None
) -> pl.DataFrame:
    """Mean and sample std (ddof=1; 0 with one fold) of ``value`` over folds.

    ``by`` defaults to every column except ``value``, fold, std, ci_lo and ci_hi. Returns
    the ``by`` columns, ``value`` (the mean), ``std`` and ``n_folds``, in first-seen order.
    """
    if value not in per_fold.columns:
        raise MetricsError(f"fold_summary: no column {value!r} in {per_fold.columns}")
    keys = (
        [c for c in per_fold.columns if c != value and c not in _PER_FOLD_ONLY]
        if by is None
        else list(by)
    )
    missing = [c for c in keys if c not in per_fold.columns]
    if missing:
        raise MetricsError(f"fold_summary: no column(s) {missing}")
    col = pl.col(value).cast(pl.Float64)
    aggs = [
        col.mean().alias(value),
        col.std(ddof=1).fill_null(0.0).alias("std"),
        col.count().cast(pl.Int64).alias("n_folds"),
    ]
    if not keys:
        return per_fold.select(aggs)
    return per_fold.group_by(keys, maintain_order=True).agg(aggs)


def prior_correlation(
    per_class_f1: Mapping[str, float], prior: Mapping[str, float]
) -> dict[str, Any]:
    """Spearman and Pearson correlation of per-class F1 with a class prior.

    Uses the classes present in both mappings with finite values (``per_class_f1`` order).
    With fewer than 3 classes or a constant input the coefficients and p-values are None.
    Returns spearman, spearman_p, pearson, pearson_p, n and points [(label, prior, f1)].
    """
    points = []
    for lab, f in per_class_f1.items():
        q = prior.get(lab)
        if f is None or q is None:
            continue
        f, q = float(f), float(q)
        if math.isfinite(f) and math.isfinite(q):
            points.append((lab, q, f))
    out: dict[str, Any] = {
        "spearman": None,
        "spearman_p": None,
        "pearson": None,
        "pearson_p": None,
        "n": len(points),
        "points": points,
    }
    if len(points) < 3:
        return out
    x = np.array([p[1] for p in points])
    y = np.array([p[2] for p in points])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    from scipy import stats

    def clean(v: Any) -> float | None:
        v = float(v)
        return v if math.isfinite(v) else None

    sp = stats.spearmanr(x, y)
    pe = stats.pearsonr(x, y)
    out.update(
        spearman=clean(sp.statistic),
        spearman_p=clean(sp.pvalue),
        pearson=clean(pe.statistic),
        pearson_p=clean(pe.pvalue),
    )
    return out


# ----------------------------------------------------------------------------------------
# the metrics table


def _fold_rows(
    cm: np.ndarray,
    labels: list[str],
    grp: _Groups | None,
    neutral_idx: int | None,
    ci: Mapping[str, tuple[float, float]],
) -> list[tuple[str, str, str, float, float | None, float | None]]:
    """(scope, target, metric, value, ci_lo, ci_hi) rows for one cell and fold."""
    rows: list[tuple[str, str, str, float, float | None, float | None]] = []

    def add(scope: str, target: str, metric: str, value: float) -> None:
        lo, hi = ci.get(metric, (None, None)) if scope in ("overall", "longtail") else (None, None)
        rows.append((scope, target, metric, float(value), lo, hi))

    for name, v in _overall_from_cm(cm).items():
        add("overall", "", name, v)
    s = _class_stats(cm)
    for i, lab in enumerate(labels):
        if s.support[i] > 0:
            add("class", lab, "precision", s.precision[i])
            add("class", lab, "recall", s.recall[i])
            add("class", lab, "f1", s.f1[i])
            add("class", lab, "support", s.support[i])
            add("class", lab, "n_pred", s.n_pred[i])
    m = _scalar(_batch_metrics(cm[None], grp, neutral_idx))
    if grp is not None:
        for g in grp.names:
            for metric in GROUP_METRICS:
                key = f"{metric}_{g}"
                if key in m:
                    add("group", g, metric, m[key])
    for name in LONGTAIL_METRICS:
        if name in m:
            add("longtail", "", name, m[name])
    return rows


def compute_metrics(
    predictions: pl.DataFrame,
    manifest: Mapping[str, Any],
    *,
    rule: str = "relative",
    head: float | None = None,
    tail: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    neutral: str = "neutral",
) -> pl.DataFrame:
    """The metrics table (long format; columns :data:`emobench.results.METRICS_SCHEMA`).

    One row per value: per (cell, fold) first, then the across-fold aggregate of each value
    (``fold`` null) = the mean of the per-fold values (DFEW/MAFW convention, not pooled
    predictions) with their sample ``std`` (0 for one fold). Scopes: ``overall`` (target
    ""), ``class`` (target = class; only classes with test clips in that fold), ``group``
    (target = group; classes grouped by :func:`group_classes` from the manifest's
    ``train_counts`` for that dataset and fold, under ``rule``), ``longtail`` (target "").
    Per-fold rows of uar, war, macro_f1 and head_tail_gap carry bootstrap ``ci_lo``/``ci_hi``
    (``n_resamples`` = 0 skips them); an aggregate over a single fold copies its interval.

    Cells come in the manifest's ``cells`` order, then in order of first appearance.
    Classes come from the manifest's ``datasets[<name>].labels``; a dataset missing there
    falls back to its true labels in canonical order. Without train counts for a fold, the
    group rows and group-based long-tail rows are left out.
    """
    from emobench.results import (
        METRICS_SCHEMA,
        SETTING_COLUMNS,
        manifest_labels,
        manifest_train_counts,
        validate_predictions,
    )

    if n_resamples < 0:
        raise MetricsError(f"n_resamples must be >= 0 (got {n_resamples})")
    if n_resamples and not 0 < level < 1:
        raise MetricsError(f"level must lie in (0, 1) (got {level})")
    get_rule(rule)
    preds = validate_predictions(predictions)
    settings = preds.select(["cell_id", *SETTING_COLUMNS]).unique(
        subset=["cell_id"], keep="first", maintain_order=True
    )
    # Cells in the manifest's order, then any others in order of first appearance.
    listed = [c.get("cell_id") for c in manifest.get("cells") or [] if isinstance(c, Mapping)]
    cell_order: dict[str, int] = {}
    for c in [*listed, *settings["cell_id"].to_list()]:
        cell_order.setdefault(c, len(cell_order))

    labels_of: dict[str, list[str]] = {}
    for ds in preds["dataset"].unique().to_list():
        labs = manifest_labels(manifest, ds)
        if labs is None:
            seen = set(preds.filter(pl.col("dataset") == ds)["label"].unique().to_list())
            labs = [e for e in EMOTIONS if e in seen]
        labels_of[ds] = _check_labels(labs)

    counts = preds.group_by(["cell_id", "dataset", "fold", "label", "pred"]).len()
    parts = counts.partition_by(["cell_id", "dataset", "fold"], as_dict=True)
    keys = sorted(parts, key=lambda k: (cell_order[k[0]], k[2]))

    rows: list[tuple[Any, ...]] = []
    for cell_id, ds, fold in keys:
        part = parts[(cell_id, ds, fold)]
        labs = labels_of[ds]
        index = {name: i for i, name in enumerate(labs)}
        c = len(labs)
        bad = sorted(set(part["label"].to_list()) - set(labs))
        if bad:
            raise MetricsError(
                f"cell {cell_id!r} fold {fold}: true label(s) {bad} are not among dataset "
                f"{ds!r}'s labels {labs}"
            )
        t = np.array([index[x] for x in part["label"].to_list()], dtype=np.int64)
        p = np.array([index.get(x, c) for x in part["pred"].to_list()], dtype=np.int64)
        cm = np.zeros((c, c + 1), dtype=np.int64)
        np.add.at(cm, (t, p), part["len"].to_numpy())

        train = manifest_train_counts(manifest, ds, int(fold))
        grp = None
        if train is not None:
            full = {lab: train.get(lab, 0) for lab in labs}
            grp = _make_groups(labs, group_classes(full, rule, head, tail))
        nidx = index.get(neutral)
        ci: dict[str, tuple[float, float]] = {}
        if n_resamples:
            entropy = [seed, zlib.crc32(str(cell_id).encode()), int(fold)]
            ci = _bootstrap_from_cm(cm, labs, grp, n_resamples, entropy, level, CI_METRICS, neutral)
        for row in _fold_rows(cm, labs, grp, nidx, ci):
            rows.append((cell_id, int(fold), *row))

    row_schema = {
        "cell_id": pl.Utf8,
        "fold": pl.Int64,
        "scope": pl.Utf8,
        "target": pl.Utf8,
        "metric": pl.Utf8,
        "value": pl.Float64,
        "ci_lo": pl.Float64,
        "ci_hi": pl.Float64,
    }
    per_fold = pl.DataFrame(rows, schema=row_schema, orient="row").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("std")
    )
    n_folds = per_fold.group_by("cell_id").agg(pl.col("fold").n_unique().alias("_nf"))
    agg = (
        per_fold.group_by(["cell_id", "scope", "target", "metric"], maintain_order=True)
        .agg(
            pl.col("value").mean().alias("value"),
            pl.col("value").std(ddof=1).fill_null(0.0).alias("std"),
            pl.col("ci_lo").first().alias("ci_lo"),
            pl.col("ci_hi").first().alias("ci_hi"),
        )
        .join(n_folds, on="cell_id", how="left", maintain_order="left")
        .with_columns(
            [
                pl.when(pl.col("_nf") == 1).then(pl.col(x)).otherwise(None).alias(x)
                for x in ("ci_lo", "ci_hi")
            ]
        )
        .with_columns(pl.lit(None, dtype=pl.Int64).alias("fold"))
        .drop("_nf")
    )
    cols = ["cell_id", "fold", "scope", "target", "metric", "value", "std", "ci_lo", "ci_hi"]
    table = pl.concat([per_fold.select(cols), agg.select(cols)], how="vertical")
    table = table.join(settings, on="cell_id", how="left", maintain_order="left")
    table = table.with_columns(pl.lit(rule, dtype=pl.Utf8).alias("rule"))
    return table.select([pl.col(c).cast(t) for c, t in METRICS_SCHEMA.items()])
