"""emobench.answers.parse_answer: real-looking answers of generative models → one label."""

from __future__ import annotations

import pytest

from emobench.answers import ANSWER_SYNONYMS, mentions, parse_answer, strip_reasoning
from emobench.labels import _ALIASES, EMOTIONS, canonical

SEVEN = ["neutral", "happiness", "sadness", "anger", "surprise", "disgust", "fear"]
MAFW = [*SEVEN, "contempt", "anxiety", "helplessness", "disappointment"]
MEGC = ["negative", "positive", "surprise"]

CASES: list[tuple[str | None, str]] = [
    # exact labels, case, markdown, quotes, punctuation
    ("happiness", "happiness"),
    ("Happiness", "happiness"),
    ("SADNESS.", "sadness"),
    ("**Anger**", "anger"),
    ('"fear"', "fear"),
    ("`surprise`", "surprise"),
    ("'disgust'", "disgust"),
    ("  neutral \n", "neutral"),
    ("Answer: Happiness", "happiness"),
    ("Final answer: **sad**", "sadness"),
    ("Emotion: angry!", "anger"),
    ("### Answer\nfear", "fear"),
    # synonyms and sentences
    ("Happy.", "happiness"),
    ("joy", "happiness"),
    ("The person looks happy.", "happiness"),
    ("She seems glad and cheerful.", "happiness"),
    ("He is clearly furious, very mad.", "anger"),
    ("The man appears scared and afraid.", "fear"),
    ("The woman looks shocked.", "surprise"),
    ("The face shows a disgusted grimace.", "disgust"),
    ("Calm.", "neutral"),
    ("Neutral expression.", "neutral"),
    ("No emotion is visible.", "neutral"),
    ("The subject shows no particular emotion", "neutral"),
    ("she is sad, very sad", "sadness"),
    ("The answer is: ANGER", "anger"),
    # two labels, hedges
    ("happy or sad", "invalid"),
    ("The person is happy but also a little surprised.", "happiness"),  # one, qualified
    ("Either fear or surprise.", "invalid"),
    ("happiness/sadness", "invalid"),
    # negation
    ("not happy", "invalid"),
    ("The person is not happy.", "invalid"),
    ("I don't think the person is happy.", "invalid"),
    ("I don’t think she is angry", "invalid"),
    ("Neither happy nor sad.", "invalid"),
    ("not happy, but sad", "sadness"),
    ("The person isn't angry, just calm.", "neutral"),
    ("Happiness. The person shows no signs of sadness.", "happiness"),
    ("Happy? Not really.", "invalid"),
    ("No, the person looks happy.", "happiness"),
    ("The person is unhappy.", "invalid"),  # "un-" reads as a negation, never happiness
    ("Sadly, I cannot tell.", "invalid"),
    # empty / no answer
    ("", "invalid"),
    ("   ", "invalid"),
    (None, "invalid"),
    ("I cannot determine the emotion from these frames.", "invalid"),
    ("The video shows a man talking in a kitchen.", "invalid"),
    ("A", "invalid"),
    # reasoning blocks
    ("<think>Maybe sad? The mouth corners go down... or angry.</think>\nHappiness", "happiness"),
    ("<think>The eyebrows are raised, could be surprise</think> Answer: fear", "fear"),
    ("<think>The person seems happy, let me look again", "invalid"),  # unclosed, nothing after
    ("<think>\n</think>\n\n**Sadness**", "sadness"),
    ("the frames suggest anger.</think> Disgust", "disgust"),  # opening tag in the prompt
    ("<THINKING>angry?</THINKING> neutral", "neutral"),
    # other languages
    ("feliz", "happiness"),
    ("La persona está triste.", "sadness"),
    ("Il est en colère.", "anger"),
    ("il est en colere", "anger"),  # without the accent
    ("Er ist wütend.", "anger"),
    ("Sie ist glücklich.", "happiness"),
    ("traurig", "sadness"),
    ("heureux", "happiness"),
    ("开心", "happiness"),
    ("他看起来很高兴。", "happiness"),
    ("悲伤", "sadness"),
    ("生气", "anger"),
    ("愤怒", "anger"),
    ("他不开心", "invalid"),  # 不 negates
    ("面无表情", "neutral"),
    ("No está enojado.", "invalid"),
    ("Il n'est pas heureux.", "invalid"),
    ("Er ist nicht traurig.", "invalid"),
    # labels outside the offered set
    ("contempt", "invalid"),
    ("The person looks contemptuous.", "invalid"),
    ("anxious", "invalid"),
    ("disappointed", "invalid"),
    ("positive", "invalid"),  # an ordinary word for a 7-class set
    ("The overall tone is positive: she is happy.", "happiness"),
    ("invalid", "invalid"),
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_parse_answer_seven_classes(text, want):
    assert parse_answer(text, SEVEN) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("contempt", "contempt"),
        ("The person looks worried and nervous.", "anxiety"),
        ("She seems helpless.", "helplessness"),
        ("disappointed", "disappointment"),
        ("焦虑", "anxiety"),
        ("他有点不安", "anxiety"),  # 不安 is a word, not a negation
        ("sad and disappointed", "invalid"),
    ],
)
def test_parse_answer_mafw(text, want):
    assert parse_answer(text, MAFW) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("positive", "positive"),
        ("Negative.", "negative"),
        ("happy", "positive"),  # fine emotions map through the MEGC2019 composite classes
        ("sad and disgusted", "negative"),
        ("happy or sad", "invalid"),
        ("surprised", "surprise"),
    ],
)
def test_parse_answer_megc(text, want):
    assert parse_answer(text, MEGC) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Others.", "others"),
        ("repression", "repression"),
        ("The other person looks happy.", "happiness"),
        ("suppressed disgust", "invalid"),
    ],
)
def test_parse_answer_casme2(text, want):
    casme2 = ["happiness", "disgust", "repression", "surprise", "fear", "sadness", "others"]
    assert parse_answer(text, casme2) == want


def test_answer_is_always_an_offered_label_or_invalid():
    labels = ["happiness", "sadness"]
    for text, _ in CASES:
        assert parse_answer(text, labels) in {*labels, "invalid"}


def test_synonym_table_agrees_with_the_label_aliases():
    assert set(ANSWER_SYNONYMS) == set(EMOTIONS)
    for label, words in ANSWER_SYNONYMS.items():
        assert label in words or label == "others"
    for alias, label in _ALIASES.items():
        assert parse_answer(alias, [label]) == canonical(alias)


def test_reasoning_and_mentions_helpers():
    assert strip_reasoning("<think>sad</think>happy").strip() == "happy"
    assert strip_reasoning("happy <think>sad").strip() == "happy"
    assert mentions("not happy, but sad") == [("happiness", True), ("sadness", False)]


def test_clip_scorer_uses_this_parser():
    from emobench.runner import clip_scorer

    assert clip_scorer.parse_answer is parse_answer
