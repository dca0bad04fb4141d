"""Canonical emotion names, their aliases, and each dataset's official label order.

emobench keys every label by its canonical *name* end to end; integer indices exist only
inside a model call or when reading a dataset file whose official order is given here.
"""

from __future__ import annotations

from emobench.errors import EmobenchError

#: Canonical emotion names (lower-case nouns, MAFW style).
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "sadness",
    "anger",
    "surprise",
    "disgust",
    "fear",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
    # micro-expression datasets
    "repression",
    "others",
    # MEGC2019 composite classes
    "positive",
    "negative",
)

#: Adjectives (and short adjective phrases) naming each canonical emotion; the first is the
#: plain name. Used for the contrastive models' prompts and, weighted by real word frequency,
#: for their synthetic web captions and the report's word-frequency priors.
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "calm", "expressionless", "blank"),
    "happiness": ("happy", "smiling", "cheerful", "joyful"),
    "sadness": ("sad", "unhappy", "sorrowful"),
    "anger": ("angry", "mad", "furious"),
    "surprise": ("surprised", "shocked", "amazed", "astonished"),
    "disgust": ("disgusted", "revolted"),
    "fear": ("scared", "afraid", "frightened", "terrified", "fearful"),
    "contempt": ("contemptuous", "scornful", "disdainful", "smug"),
    "anxiety": ("anxious", "nervous", "worried"),
    "helplessness": ("helpless", "powerless"),
    "disappointment": ("disappointed",),
    "repression": ("restrained", "suppressed"),
    "others": ("indifferent", "ambiguous"),
    "positive": ("positive", "pleased"),
    "negative": ("negative", "upset"),
}

#: Chinese words naming each canonical emotion (the first is the plain name), for the
#: report's Chinese word-frequency prior (``web_word_freq_zh``): the study relates per-class
#: VLM F1 to how often the emotion word occurs in English and Chinese web text. Mostly the
#: translations of :data:`EMOTION_WORDS` (a new language is one more such table).
EMOTION_WORDS_ZH: dict[str, tuple[str, ...]] = {
    "neutral": ("中性", "平静", "面无表情"),
    "happiness": ("高兴", "开心", "快乐"),
    "sadness": ("悲伤", "难过", "伤心"),
    "anger": ("生气", "愤怒", "恼火"),
    "surprise": ("惊讶", "吃惊", "震惊"),
    "disgust": ("厌恶", "恶心", "反感"),
    "fear": ("害怕", "恐惧", "惊恐"),
    "contempt": ("轻蔑", "鄙视", "蔑视"),
    "anxiety": ("焦虑", "紧张", "担心"),
    "helplessness": ("无助", "无奈"),
    "disappointment": ("失望",),
    "repression": ("压抑", "克制"),
    "others": ("冷漠", "含糊"),
    "positive": ("积极", "正面"),
    "negative": ("消极", "负面"),
}

#: The label used for "the model named no label". Never a class; always counted as wrong.
INVALID = "invalid"

_ALIASES: dict[str, str] = {
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "contemptuous": "contempt",
    "anxious": "anxiety",
    "helpless": "helplessness",
    "disappointed": "disappointment",
    "calm": "neutral",
    "other": "others",
}

#: Official label orders, used only to read a dataset's own files (1-based ids in DFEW).
DATASET_ORDERS: dict[str, tuple[str, ...]] = {
    "dfew": ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"),
    "ferv39k": ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"),
    "mafw": (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    ),
    "casme2": ("happiness", "disgust", "repression", "surprise", "fear", "sadness", "others"),
    "megc2019": ("negative", "positive", "surprise"),
}

#: MEGC2019 composite 3-class mapping (micro-expression protocol).
MEGC2019_MAP: dict[str, str] = {
    "happiness": "positive",
    "sadness": "negative",
    "disgust": "negative",
    "contempt": "negative",
    "fear": "negative",
    "anger": "negative",
    "repression": "negative",
    "surprise": "surprise",
}


class UnknownLabelError(EmobenchError, ValueError):
    """A label name that is neither canonical nor a known alias (a ``ValueError`` too)."""


def canonical(name: str) -> str:
    """Return the canonical emotion name for ``name`` (case- and alias-insensitive).

    Raises :class:`UnknownLabelError` naming the label when it is not known.
    """
    key = name.strip().lower()
    if key in EMOTIONS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownLabelError(f"unknown emotion label {name!r}; known: {', '.join(EMOTIONS)}")


def from_official_index(dataset: str, index: int, *, one_based: bool = True) -> str:
    """Map a dataset's official integer label to its canonical name."""
    order = DATASET_ORDERS[dataset]
    i = index - 1 if one_based else index
    if not 0 <= i < len(order):
        raise UnknownLabelError(f"{dataset}: label id {index} outside 1..{len(order)}")
    return order[i]
