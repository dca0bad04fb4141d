"""Word-frequency priors for the lexical analysis (English, Chinese, both) and the
confidence intervals of the per-class F1 vs prior correlations."""

from __future__ import annotations

import math

import pytest
from wordfreq import word_frequency

from emobench.labels import EMOTION_WORDS, EMOTION_WORDS_ZH, EMOTIONS
from emobench.metrics import prior_correlation
from emobench.metrics.summary import fisher_z_ci
from emobench.report.priors import get_prior, list_priors
from emobench.report.tables import correlation_table

DFEW = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]


def test_chinese_words_cover_every_emotion() -> None:
    assert set(EMOTION_WORDS_ZH) == set(EMOTION_WORDS) == set(EMOTIONS)
    for label, words in EMOTION_WORDS_ZH.items():
        assert words and len(set(words)) == len(words), label
        assert all(word_frequency(w, "zh") > 0 for w in words), label


def test_lexical_priors_are_registered() -> None:
    assert {"web_word_freq", "web_word_freq_zh", "web_word_freq_en_zh"} <= set(list_priors())


def test_default_prior_is_the_option_word_in_english_and_chinese() -> None:
    """Issue 22 §3: the default lexical prior is the word the model is asked to answer
    (the prompt's option word), in English and Chinese; wordfreq is the reference itself,
    so the values must be equal up to the one addition in the en + zh sum (fp64)."""
    en = get_prior("web_word_freq").fn({}, "dfew", DFEW)
    zh = get_prior("web_word_freq_zh").fn({}, "dfew", DFEW)
    both = get_prior("web_word_freq_en_zh").fn({}, "dfew", DFEW)
    zh_word = {
        "happiness": "快乐",
        "sadness": "悲伤",
        "neutral": "中性",
        "anger": "愤怒",
        "surprise": "惊讶",
        "disgust": "厌恶",
        "fear": "恐惧",
    }
    for label in DFEW:
        assert en[label] == word_frequency(label, "en")  # the option word, alone
        assert zh[label] == word_frequency(zh_word[label], "zh")
        assert both[label] == pytest.approx(
            word_frequency(label, "en") + word_frequency(zh_word[label], "zh"), rel=1e-15
        )
    # the option word is exactly what the prompt's option list shows
    from types import SimpleNamespace

    from emobench.chat.prompt import ChatPromptMixin

    me = SimpleNamespace(opts=SimpleNamespace(question="Q?", instruction="Answer."))
    text = ChatPromptMixin.prompt_text(me, DFEW)  # type: ignore[arg-type]
    assert f"Options: {', '.join(DFEW)}." in text


def test_every_figure_names_its_definition_and_source() -> None:
    for name in ("web_word_freq", "web_word_freq_zh", "web_word_freq_en_zh"):
        label = get_prior(name).axis_label
        assert "option word" in label and "wordfreq, not Google Books" in label
    for name in ("web_word_freq_synonyms", "web_word_freq_zh_synonyms"):
        label = get_prior(name).axis_label
        assert "synonym list" in label and "wordfreq, not Google Books" in label
    assert "English + Chinese" in get_prior("web_word_freq_en_zh_synonyms").axis_label


def test_zh_and_en_zh_synonym_priors_equal_wordfreq_summed_by_hand() -> None:
    zh = get_prior("web_word_freq_zh_synonyms").fn({}, "dfew", DFEW)
    en = get_prior("web_word_freq_synonyms").fn({}, "dfew", DFEW)
    both = get_prior("web_word_freq_en_zh_synonyms").fn({}, "dfew", DFEW)
    hand_zh = {
        "happiness": word_frequency("高兴", "zh")
        + word_frequency("开心", "zh")
        + word_frequency("快乐", "zh"),
        "sadness": word_frequency("悲伤", "zh")
        + word_frequency("难过", "zh")
        + word_frequency("伤心", "zh"),
    }
    hand_en = {
        "happiness": sum(
            word_frequency(w, "en") for w in ("happy", "smiling", "cheerful", "joyful")
        ),
        "sadness": sum(word_frequency(w, "en") for w in ("sad", "unhappy", "sorrowful")),
    }
    for label in ("happiness", "sadness"):
        assert zh[label] == pytest.approx(hand_zh[label], rel=1e-12)
        assert en[label] == pytest.approx(hand_en[label], rel=1e-12)
        assert both[label] == pytest.approx(hand_zh[label] + hand_en[label], rel=1e-12)
    assert set(zh) == set(both) == set(DFEW)
    # MAFW's rare classes have a prior too, and every value is a positive frequency
    mafw = get_prior("web_word_freq_en_zh_synonyms").fn({}, "mafw", ["contempt", "disappointment"])
    assert all(v > 0 for v in mafw.values()) and len(mafw) == 2


def test_unknown_labels_are_left_out() -> None:
    assert get_prior("web_word_freq_zh").fn({}, "x", ["not-an-emotion"]) == {}
    assert get_prior("web_word_freq_en_zh").fn({}, "x", ["not-an-emotion"]) == {}


def test_fisher_z_ci_matches_the_formula() -> None:
    lo, hi = fisher_z_ci(0.5, 7)
    half = 1.959963984540054 / math.sqrt(4)
    assert lo == pytest.approx(math.tanh(math.atanh(0.5) - half))
    assert hi == pytest.approx(math.tanh(math.atanh(0.5) + half))
    assert fisher_z_ci(1.0, 7) == (1.0, 1.0)
    with pytest.raises(ValueError):
        fisher_z_ci(0.5, 3)


def test_prior_correlation_has_cis() -> None:
    f1 = {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.6, "e": 0.5, "f": 0.7, "g": 0.4}
    prior = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "f": 6.0, "g": 7.0}
    res = prior_correlation(f1, prior)
    for key in ("spearman", "pearson"):
        lo, hi = res[f"{key}_ci"]
        assert -1 <= lo < res[key] < hi <= 1
    # Spearman's interval is the wider one (Bonett-Wright variance factor 1 + rho^2/2)
    rho = res["spearman"]
    assert res["spearman_ci"] == pytest.approx(fisher_z_ci(rho, 7, 1 + rho * rho / 2))
    three = prior_correlation({"a": 0.1, "b": 0.3, "c": 0.2}, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert three["spearman"] is not None and three["spearman_ci"] is None
    table = correlation_table([("m", res), ("few", three)], caption="c")
    assert "95% CI" in table.header
    row = dict(zip(table.header[:4], table.rows[0][:4], strict=True))
    assert row["95% CI"].startswith("[")
    assert table.rows[1][3] == "–"
