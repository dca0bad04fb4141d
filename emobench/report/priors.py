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
    from emobench.results import Manifest

    return Manifest.from_dict(manifest).train_counts_total(dataset)


def train_counts_mean(manifest: Mapping[str, Any], dataset: str) -> dict[str, float]:
    """Training clip count per label for ``dataset``, averaged over the manifest's folds.

    The per-fold mean (not the sum) is what a reader expects in a table: in k-fold
    cross-validation each clip is a training clip in k - 1 folds.
    """
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


@register_reference_prior(
    "web_word_freq", "English frequency of the class's emotion words (wordfreq)"
)
def web_word_frequency(
    manifest: Mapping[str, Any], dataset: str, labels: Sequence[str]
) -> dict[str, float]:
    """Summed English word frequency (``wordfreq``) of each label's emotion words.

    The words are the prompt vocabulary (:data:`emobench.models.openclip.prompts.EMOTION_WORDS`)
    that also drives the synthetic web captions, so this is the pre-training prior of
    ``emobench-tiny@synth-web`` and a proxy for web text in general. Labels with no emotion
    words are left out (the plot skips them).
    """
    from wordfreq import word_frequency

    from emobench.labels import EMOTION_WORDS

    out = {}
    for label in labels:
        words = EMOTION_WORDS.get(label, ())
        total = sum(word_frequency(w, "en") for w in words)
        if total > 0:
            out[label] = float(total)
    return out


def _word_frequency_sum(labels: Sequence[str], lang: str) -> dict[str, float]:
    """Per label, the summed ``wordfreq`` frequency (in ``lang``) of its emotion words:
    :data:`emobench.labels.EMOTION_WORDS` for ``en``, :data:`~emobench.labels.EMOTION_WORDS_ZH`
    for ``zh`` (wordfreq segments Chinese with jieba; offline data shipped with wordfreq).
    Labels with no words or a zero total are left out (the plot skips them)."""
    from wordfreq import word_frequency

    from emobench.labels import EMOTION_WORDS, EMOTION_WORDS_ZH

    table = {"en": EMOTION_WORDS, "zh": EMOTION_WORDS_ZH}[lang]
    out = {}
    for label in labels:
        total = sum(word_frequency(w, lang) for w in table.get(label, ()))
        if total > 0:
            out[label] = float(total)
    return out


@register_reference_prior(
    "web_word_freq_zh", "Chinese frequency of the class's emotion words (wordfreq)"
)
def web_word_frequency_zh(
    manifest: Mapping[str, Any], dataset: str, labels: Sequence[str]
) -> dict[str, float]:
    """Summed Chinese word frequency (``wordfreq``, ``zh``) of each label's Chinese emotion
    words (:data:`emobench.labels.EMOTION_WORDS_ZH`, e.g. 高兴 / 开心 / 快乐 for happiness)."""
    return _word_frequency_sum(labels, "zh")


@register_reference_prior(
    "web_word_freq_en_zh", "English + Chinese frequency of the class's emotion words (wordfreq)"
)
def web_word_frequency_en_zh(
    manifest: Mapping[str, Any], dataset: str, labels: Sequence[str]
) -> dict[str, float]:
    """``web_word_freq`` + ``web_word_freq_zh`` per label: the study relates per-class VLM
    F1 to emotion-word frequency in English and Chinese web text (the languages of most
    VLM pre-training text). Each language's frequencies are shares of that language's
    tokens, so the sum weighs the two languages equally. A label missing from one language
    counts 0 there; a label with neither is left out."""
    en = _word_frequency_sum(labels, "en")
    zh = _word_frequency_sum(labels, "zh")
    out = {lab: en.get(lab, 0.0) + zh.get(lab, 0.0) for lab in labels}
    return {lab: v for lab, v in out.items() if v > 0}
