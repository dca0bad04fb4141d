"""Class priors for the per-class F1 vs prior plot, kept in a registry by name.

A prior maps each label of a dataset to a positive number (a frequency). The report plots
per-class F1 against it and reports Spearman / Pearson correlations. ``train_freq`` (the
training-split class frequency recorded in the manifest) is built in; other priors (e.g.
emotion-word frequency in web text) register with :func:`register_reference_prior` and
are chosen by name (``report_run(prior=...)`` / ``emobench report --prior``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emobench.errors import EmobenchError
from emobench.longtail.word_frequency import describe, word_frequencies
from emobench.registry import Registry


class UnknownPriorError(EmobenchError):
    """A prior name that is not registered."""


#: A prior function: (manifest, dataset name, labels) -> {label: prior value}.
PriorFn = Callable[[Mapping[str, Any], str, Sequence[str]], dict[str, float]]


@dataclass(frozen=True)
class PriorInfo:
    """A registered prior: its name, the axis label to plot, and the function."""

    name: str
    axis_label: str
    fn: PriorFn
    log_scale: bool = True


_PRIORS: Registry[PriorInfo] = Registry("prior", error=UnknownPriorError)


def register_reference_prior(
    name: str, axis_label: str, *, log_scale: bool = True
) -> Callable[[PriorFn], PriorFn]:
    """Decorator that registers ``fn`` as the prior ``name`` (re-registering replaces it)."""

    def deco(fn: PriorFn) -> PriorFn:
        _PRIORS.add(name, PriorInfo(name=name, axis_label=axis_label, fn=fn, log_scale=log_scale))
        return fn

    return deco


def list_priors() -> list[str]:
    """Names of the registered priors, sorted."""
    return _PRIORS.names()


def get_prior(name: str) -> PriorInfo:
    """Return the registered prior ``name``; raise :class:`UnknownPriorError` if absent."""
    return _PRIORS[name]


def train_counts_total(manifest: Mapping[str, Any], dataset: str) -> dict[str, int]:
    """Training clip count per label for ``dataset``, summed over the manifest's folds."""
    # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
    from emobench.results import Manifest

    return Manifest.from_dict(manifest).train_counts_total(dataset)


def train_counts_mean(manifest: Mapping[str, Any], dataset: str) -> dict[str, float]:
    """Training clip count per label for ``dataset``, averaged over the manifest's folds.

    The per-fold mean (not the sum) is what a reader expects in a table: in k-fold
    cross-validation each clip is a training clip in k - 1 folds.
    """
    # lazy: pulls in numpy, polars, pydantic; kept off `emobench --help`
    from emobench.results import Manifest

    return Manifest.from_dict(manifest).train_counts_mean(dataset)


@register_reference_prior("train_freq", "training-split class frequency")
def train_frequency(
    manifest: Mapping[str, Any], dataset: str, labels: Sequence[str]
) -> dict[str, float]:
    """Share of each label among the training clips (pooled over folds).

    Labels absent from the manifest's ``train_counts`` get 0; an empty manifest entry gives
    an empty dict (the caller then skips the prior plot and says why).
    """
    totals = train_counts_total(manifest, dataset)
    n = sum(totals.values())
    if n == 0:
        return {}
    return {label: totals.get(label, 0) / n for label in labels}


#: The word-frequency priors: name → (languages, definition). ``web_word_freq*`` use the
#: option word the model answers (the default); ``*_synonyms`` sum the class's synonym
#: lists (:mod:`emobench.longtail.word_frequency`; source: wordfreq, not Google Books).
WORD_PRIORS: dict[str, tuple[tuple[str, ...], str]] = {
    "web_word_freq": (("en",), "option-word"),
    "web_word_freq_zh": (("zh",), "option-word"),
    "web_word_freq_en_zh": (("en", "zh"), "option-word"),
    "web_word_freq_synonyms": (("en",), "synonyms"),
    "web_word_freq_zh_synonyms": (("zh",), "synonyms"),
    "web_word_freq_en_zh_synonyms": (("en", "zh"), "synonyms"),
}


def _word_prior(langs: tuple[str, ...], definition: str) -> PriorFn:
    def fn(manifest: Mapping[str, Any], dataset: str, labels: Sequence[str]) -> dict[str, float]:
        return word_frequencies(labels, langs, definition)

    fn.__doc__ = (
        f"Per label, the summed wordfreq frequency ({' + '.join(langs)}) of its words under "
        f"the {definition!r} definition; labels without words are left out (the plot skips "
        "them). Each language's frequencies are shares of that language's tokens, so a sum "
        "over languages weighs them equally."
    )
    return fn


def _register_word_priors() -> None:
    for name, (langs, definition) in WORD_PRIORS.items():
        register_reference_prior(name, describe(langs, definition))(_word_prior(langs, definition))


_register_word_priors()
