"""The metric core: label encoding, confusion matrices and every point metric.

Conventions are in :mod:`emobench.metrics`. Everything here is a function of a confusion
matrix of shape (C, C+1) (last column: invalid / out-of-set predictions), batched over a
leading resample axis by :func:`_batch_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from emobench.errors import EmobenchError

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
