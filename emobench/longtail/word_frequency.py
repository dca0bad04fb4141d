"""Web frequency of each class's emotion word(s), from ``wordfreq`` (not Google Books).

The study relates a VLM's per-class F1 to how often the emotion's *word* occurs in web
text, in English and Chinese. Which word(s) count is a choice that changes the answer, so
it is named (:data:`DEFINITIONS`) and every figure and table that uses a frequency says
which definition and source it used (:func:`describe`):

* ``option-word`` (default): the word the model is asked to answer, i.e. the label as the
  prompt's option list spells it (``Options: happiness, sadness, ...``; the canonical
  label name, :mod:`emobench.models.chat`), and in Chinese its translation
  (:data:`OPTION_WORDS_ZH`, the MAFW-style Chinese label names);
* ``synonyms``: the sum over the class's lists of emotion adjectives
  (:data:`emobench.labels.EMOTION_WORDS`, :data:`~emobench.labels.EMOTION_WORDS_ZH`).

Frequencies are ``wordfreq.word_frequency(word, lang)`` (shares of the language's tokens
in wordfreq's blend of web, subtitle, news, Wikipedia and social-media corpora; Chinese is
segmented with jieba), summed over a definition's words. The study's frequencies came from
elsewhere (Google Books / web counts); wordfreq is the offline stand-in and is named as
such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from emobench.labels import EMOTION_WORDS, EMOTION_WORDS_ZH
from emobench.registry import Registry

#: Where the frequencies come from (printed with every figure and table).
SOURCE = "wordfreq, not Google Books"
LANGUAGES = ("en", "zh")

#: The Chinese option word of each canonical label: the translation of the label noun.
OPTION_WORDS_ZH: dict[str, str] = {
    "neutral": "中性",
    "happiness": "快乐",
    "sadness": "悲伤",
    "anger": "愤怒",
    "surprise": "惊讶",
    "disgust": "厌恶",
    "fear": "恐惧",
    "contempt": "轻蔑",
    "anxiety": "焦虑",
    "helplessness": "无助",
    "disappointment": "失望",
    "repression": "压抑",
    "others": "其他",
    "positive": "积极",
    "negative": "消极",
}

#: ``definition → words(label, lang)``: the words whose frequencies are summed.
WordsFn = Callable[[str, str], tuple[str, ...]]
DEFINITIONS: Registry[WordsFn] = Registry("word-frequency definition", sort=False)


@DEFINITIONS.register("option-word")
def option_word(label: str, lang: str) -> tuple[str, ...]:
    """The word the model is asked to answer: the label itself (en; a single word only,
    wordfreq would otherwise blend the tokens of a phrase), its translation (zh)."""
    if lang == "en":
        return (label,) if label.isalpha() else ()
    word = OPTION_WORDS_ZH.get(label)
    return (word,) if word else ()


@DEFINITIONS.register("synonyms")
def synonym_list(label: str, lang: str) -> tuple[str, ...]:
    """The class's list of emotion adjectives in ``lang``."""

    return {"en": EMOTION_WORDS, "zh": EMOTION_WORDS_ZH}[lang].get(label, ())


def word_frequencies(
    labels: Sequence[str], langs: Sequence[str] = ("en",), definition: str = "option-word"
) -> dict[str, float]:
    """Per label, ``Σ_lang Σ_word wordfreq.word_frequency(word, lang)`` over the words of
    ``definition``; labels with no word or a zero total are left out."""
    from wordfreq import word_frequency

    words_of = DEFINITIONS[definition]
    out = {}
    for label in labels:
        total = sum(word_frequency(w, lang) for lang in langs for w in words_of(label, lang))
        if total > 0:
            out[label] = float(total)
    return out


def describe(langs: Sequence[str], definition: str) -> str:
    """``"English + Chinese frequency of the option word (wordfreq, not Google Books)"``."""
    names = {"en": "English", "zh": "Chinese"}
    what = {
        "option-word": "the option word the model answers",
        "synonyms": "the class's synonym list (summed)",
    }[definition]
    return f"{' + '.join(names[x] for x in langs)} frequency of {what} ({SOURCE})"


__all__ = [
    "DEFINITIONS",
    "LANGUAGES",
    "OPTION_WORDS_ZH",
    "SOURCE",
    "describe",
    "option_word",
    "synonym_list",
    "word_frequencies",
]
