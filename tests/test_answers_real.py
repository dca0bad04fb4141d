"""Issue 22 §5: the parser reads real answers. ``tests/data/answers.tsv`` holds realistic
replies in the styles of Qwen, InternVL, LLaVA and Gemini (English and Chinese), each
labelled by hand as a careful reader would; the parser must agree on every row. Plus the
noun / adjective / adverb forms of every label of every dataset."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from emobench.answer_words import ANSWER_SYNONYMS, derived_forms
from emobench.answers import parse_answer
from emobench.labels import DATASET_ORDERS, EMOTIONS

FIXTURE = Path(__file__).parent / "data" / "answers.tsv"
LABEL_SETS = {
    "dfew": list(DATASET_ORDERS["dfew"]),
    "mafw": list(DATASET_ORDERS["mafw"]),
    "casme2": list(DATASET_ORDERS["casme2"]),
    "megc": list(DATASET_ORDERS["megc2019"]),
}


def _rows() -> list[dict[str, str]]:
    lines = [
        ln for ln in FIXTURE.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")
    ]
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    for r in rows:
        r["reply"] = r["reply"].replace("\\n", "\n")
    return rows


ROWS = _rows()


def test_fixture_is_big_varied_and_bilingual():
    assert len(ROWS) >= 150
    assert {r["style"] for r in ROWS} == {"qwen", "internvl", "llava", "gemini"}
    assert set(Counter(r["label_set"] for r in ROWS)) == set(LABEL_SETS)
    chinese = [r for r in ROWS if re.search(r"[\u4e00-\u9fff]", r["reply"])]
    assert len(chinese) >= 30
    for r in ROWS:
        assert r["expected"] in {*LABEL_SETS[r["label_set"]], "invalid"}, r
    assert sum(r["expected"] == "invalid" for r in ROWS) >= 15  # true ambiguity stays invalid


@pytest.mark.parametrize("row", ROWS, ids=[f"{i:03d}" for i in range(len(ROWS))])
def test_parser_agrees_with_the_reader(row):
    got = parse_answer(row["reply"], LABEL_SETS[row["label_set"]])
    assert got == row["expected"], row["reply"]


def test_agreement_count():
    agree = sum(parse_answer(r["reply"], LABEL_SETS[r["label_set"]]) == r["expected"] for r in ROWS)
    assert agree == len(ROWS), f"{agree} of {len(ROWS)}"


# --------------------------------------------------------------------------- label forms

FORMS = {
    "neutral": ["neutrality", "neutrally", "calmly", "calmness", "expressionless"],
    "happiness": ["happily", "joyfully", "cheerfulness", "gladness", "joyousness"],
    "sadness": ["sadly", "sorrowfully", "tearfulness", "gloominess", "melancholy"],
    "anger": ["angrily", "furiously", "fury", "irritation", "indignation"],
    "surprise": ["surprisedly", "astonishment", "amazement", "startled", "shocked"],
    "disgust": ["disgustedly", "revulsion", "repulsed", "distaste", "disgusted"],
    "fear": ["fearfully", "fearfulness", "fright", "terror", "frightened"],
    "contempt": ["contemptuously", "scornfully", "disdainfully", "scorn", "disdain"],
    "anxiety": ["anxiously", "anxiousness", "nervously", "nervousness", "worriedly"],
    "helplessness": ["helplessly", "helpless", "powerlessness", "powerless", "resignation"],
    "disappointment": ["disappointedly", "disappointed", "disheartened", "dismay"],
    "repression": ["repressed", "repressedly", "suppression", "restraint", "restrained"],
}


@pytest.mark.parametrize("label", sorted(FORMS))
def test_noun_adjective_adverb_forms(label):
    offered = [label, "others"] if label != "others" else [label]
    for word in FORMS[label]:
        assert parse_answer(word.capitalize(), offered) == label, word
        assert parse_answer(f"The person looks at the camera {word}.", offered) in (label,), word


def test_every_label_of_every_dataset_has_its_forms():
    labels = {lab for order in DATASET_ORDERS.values() for lab in order} | {"others"}
    assert labels <= set(EMOTIONS) == set(ANSWER_SYNONYMS)
    for label in labels - {"others", "positive", "negative"}:
        assert label in ANSWER_SYNONYMS[label]
        assert len(ANSWER_SYNONYMS[label]) >= 5, label


def test_derived_forms():
    assert derived_forms("happy") == ("happy", "happily", "happiness")
    assert derived_forms("angry") == ("angry", "angrily", "angriness")
    assert derived_forms("fearful") == ("fearful", "fearfully", "fearfulness")
    assert derived_forms("melancholic") == ("melancholic", "melancholically")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("I'm happy to help! The emotion is anger.", "anger"),
        ("Happy to assist. Sadness.", "sadness"),
        ("I'd be glad to analyze this clip: the person looks fearful.", "fear"),
        ("I'm afraid the person is angry.", "anger"),
        ("Surprisingly, the person looks disgusted.", "disgust"),
        ("Sadly, I cannot tell.", "invalid"),
        ("There is no doubt the person is happy.", "happiness"),
        ("The person is happy to see her friend.", "happiness"),
        ("很高兴为您解答！情绪是愤怒。", "anger"),
    ],
)
def test_preambles_and_idioms(text, want):
    assert parse_answer(text, LABEL_SETS["dfew"]) == want
