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

from emobench.metrics.core import (
    CI_METRICS,
    CLASS_METRICS,
    GROUP_METRICS,
    GROUP_ROLES,
    LONGTAIL_METRICS,
    OVERALL_METRICS,
    Labels,
    MetricsError,
    confusion_matrix,
    longtail,
    normalize_rows,
    overall,
    per_class,
)
from emobench.metrics.groups import (
    GROUP_RULES,
    GroupRule,
    class_groups,
    get_rule,
    group_classes,
    group_names,
    head_to_tail,
)
from emobench.metrics.summary import fold_summary, prior_correlation
from emobench.metrics.uncertainty import (
    FOLD_MEAN_CI_METRICS,
    bootstrap_ci,
    fold_mean_ci,
    mcnemar,
    paired_bootstrap,
)

__all__ = [
    "CI_METRICS",
    "CLASS_METRICS",
    "FOLD_MEAN_CI_METRICS",
    "GROUP_METRICS",
    "GROUP_ROLES",
    "GROUP_RULES",
    "LONGTAIL_METRICS",
    "OVERALL_METRICS",
    "GroupRule",
    "Labels",
    "MetricsError",
    "bootstrap_ci",
    "class_groups",
    "confusion_matrix",
    "fold_mean_ci",
    "fold_summary",
    "get_rule",
    "group_classes",
    "group_names",
    "head_to_tail",
    "longtail",
    "mcnemar",
    "normalize_rows",
    "overall",
    "paired_bootstrap",
    "per_class",
    "prior_correlation",
]
