"""Free-text answers of generative models → one offered label, or ``invalid``.

:func:`parse_answer` is deliberately conservative: an answer it cannot read with
confidence is ``invalid`` (counted as wrong), never guessed into a class. Rules, in order:

1. ``None``, empty or blank text is invalid.
2. Reasoning blocks are removed first: ``<think>…</think>`` (also ``<thinking>``,
   ``<reasoning>``); an unclosed ``<think>`` drops everything after it (nothing left:
   invalid); a closing tag without its opening tag keeps only the text after it.
3. Case, Unicode width, markdown (``*`` ``_`` `````` ``#`` ``>``), quotes and punctuation
   are ignored; a leading ``Answer:`` / ``Final answer:`` / ``Emotion:`` is dropped.
4. Emotion *mentions* are found with :data:`ANSWER_SYNONYMS` (label names, adjectives,
   short phrases such as "no emotion" → neutral, and a few Spanish, French, German and
   Chinese words), longest phrase first, whole words only (``unhappy`` is not ``happy``).
   ``positive``, ``negative``, ``other(s)`` and ``repression`` count only when they are
   offered labels (they are ordinary words otherwise; ``other(s)`` also yields to any
   other label named). When ``positive``/``negative`` are offered, a fine emotion maps
   through :data:`~emobench.labels.MEGC2019_MAP`.
5. Negation: the answer is split into clauses (``. , ; : ! ?``, new lines, "but",
   "however", "rather", "instead", "pero", "mais", "aber", "但", "而是" …). A mention with
   a negator earlier in its clause ("not", "no", "never", "neither", "nor", "without",
   "…n't", "pas", "ne", "ni", "nicht", "kein", "sin", "不", "没", …) is *negated* and does
   not count. So "not happy" → invalid, "neither happy nor sad" → invalid, "not happy,
   but sad" → sadness. A bare negation clause after a mention ("Happy? Not really.")
   makes the whole answer invalid.
6. The remaining mentions must name exactly one label, and it must be offered: two
   different emotions ("happy or sad"), an emotion outside ``labels`` ("contempt" for a
   7-class set) or no emotion at all → invalid. Repeating one label is fine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from emobench.labels import INVALID, MEGC2019_MAP


def _phrases(text: str) -> tuple[str, ...]:
    """``"a|b c"`` -> ``("a", "b c")`` (keeps the tables below compact)."""
    return tuple(text.split("|"))


#: Words and phrases naming each canonical emotion in a model's answer (lower case).
ANSWER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "neutral": _phrases(
        "neutral|neutral expression|neutral face|calm|calmness|expressionless|emotionless|"
        "blank expression|straight face|no emotion|no emotions|no particular emotion|"
        "no visible emotion|no obvious emotion|no apparent emotion|neutro|neutra|neutre|calme|"
        "ruhig|中性|平静|无表情|面无表情|没有表情"
    ),
    "happiness": _phrases(
        "happiness|happy|joy|joyful|joyous|glad|cheerful|delighted|smiling|elated|feliz|"
        "felicidad|alegre|alegría|heureux|heureuse|bonheur|joie|joyeux|glücklich|freude|"
        "fröhlich|开心|高兴|快乐|幸福|喜悦"
    ),
    "sadness": _phrases(
        "sadness|sad|sorrow|sorrowful|grief|grieving|melancholy|depressed|tearful|triste|"
        "tristeza|tristesse|traurig|traurigkeit|trauer|悲伤|伤心|难过|悲哀"
    ),
    "anger": _phrases(
        "anger|angry|mad|furious|rage|enraged|irritated|annoyed|enojado|enojada|enfadado|"
        "enfadada|ira|furioso|furiosa|en colère|colère|fâché|fâchée|furieux|wütend|wut|zornig|"
        "verärgert|生气|愤怒|恼怒"
    ),
    "surprise": _phrases(
        "surprise|surprised|shocked|shock|astonished|astonishment|amazed|startled|sorpresa|"
        "sorprendido|sorprendida|surpris|étonné|étonnée|überrascht|überraschung|惊讶|吃惊|惊奇"
    ),
    "disgust": _phrases(
        "disgust|disgusted|revulsion|revolted|asco|asqueado|asqueada|dégoût|dégoûté|dégoûtée|"
        "ekel|angeekelt|厌恶|恶心"
    ),
    "fear": _phrases(
        "fear|fearful|scared|afraid|frightened|terrified|miedo|asustado|asustada|temor|peur|"
        "effrayé|effrayée|apeuré|angst|verängstigt|恐惧|害怕|惊恐"
    ),
    "contempt": _phrases(
        "contempt|contemptuous|scorn|scornful|disdain|disdainful|desprecio|mépris|verachtung|"
        "轻蔑|蔑视"
    ),
    "anxiety": _phrases(
        "anxiety|anxious|worried|worry|nervous|nervousness|uneasy|apprehensive|ansiedad|"
        "ansioso|ansiosa|anxieux|anxieuse|anxiété|inquiet|inquiète|besorgt|nervös|焦虑|不安|担心|紧张"
    ),
    "helplessness": _phrases(
        "helplessness|helpless|powerless|impotencia|impuissant|impuissance|hilflos|"
        "hilflosigkeit|无助"
    ),
    "disappointment": _phrases(
        "disappointment|disappointed|decepción|decepcionado|decepcionada|déçu|déçue|déception|"
        "enttäuscht|enttäuschung|失望"
    ),
    # Ordinary words too: they count only when offered (see _WEAK).
    "repression": _phrases("repression|repressed|suppressed|restrained"),
    "others": _phrases("others|other"),
    "positive": _phrases("positive"),
    "negative": _phrases("negative"),
}

#: Labels whose words count only when the label is offered.
_WEAK = frozenset({"repression", "others", "positive", "negative"})

_NEGATORS = frozenset(
    _phrases(
        "not|no|never|neither|nor|without|hardly|barely|cannot|cant|dont|doesnt|isnt|arent|"
        "wasnt|werent|lacks|lacking|absent|nicht|kein|keine|keinen|keiner|nie|ohne|pas|ne|ni|"
        "jamais|sans|nunca|sin|tampoco"
    )
)
_CJK_NEGATORS = ("不", "没", "無", "无", "非", "未", "别")
_BARE = _NEGATORS | frozenset(_phrases("really|quite|exactly|sure|at|all|i|im|am|so|way|nope"))
_CLAUSE = re.compile(
    r"[.,;:!?\n。，；：！？、]+|\b(?:but|however|rather|instead|although|though|whereas|"
    r"pero|sino|mais|plutôt|aber|sondern)\b|但是|但|而是|然而"
)
_REASONING = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)
_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.I)
_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|emotion|label|prediction|respuesta|réponse|"
    r"antwort|答案|答)\s*(?:is\s*)?[:：\-]\s*",
    re.I,
)
_MARKUP = re.compile(r"[*_`#>\"“”„«»‘()\[\]{}|~]")
_LATIN = "0-9a-zà-öø-ÿßœæ"


def _fold(text: str) -> str:
    """Lower case, NFKC (full-width forms), curly apostrophes straightened."""
    return unicodedata.normalize("NFKC", text).lower().replace("’", "'")


def _ascii(text: str) -> str:
    """The phrase without accents ("en colère" → "en colere")."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _phrase_table() -> tuple[re.Pattern[str], dict[str, str]]:
    """One regex matching every synonym (longest first) and phrase -> canonical label."""
    table: dict[str, str] = {}
    for label, words in ANSWER_SYNONYMS.items():
        for w in words:
            for v in (_fold(w), _ascii(_fold(w))):
                table.setdefault(v, label)
    parts = []
    for phrase in sorted(table, key=len, reverse=True):
        body = r"\s+".join(re.escape(p) for p in phrase.split())
        if re.search(rf"[{_LATIN}]", phrase):  # whole words only
            body = rf"(?<![{_LATIN}]){body}(?![{_LATIN}])"
        parts.append(body)
    return re.compile("|".join(parts)), table


def strip_reasoning(text: str) -> str:
    """The answer without its reasoning blocks (see the module docstring, rule 2)."""
    text = _REASONING.sub(" ", text)
    closes = list(_CLOSE.finditer(text))
    if closes:  # "</think>" without its opening tag: the answer follows it
        text = text[closes[-1].end() :]
    opened = _OPEN.search(text)
    if opened:  # unclosed reasoning: only what came before it
        text = text[: opened.start()]
    return text


def _negated(before: str) -> bool:
    """Whether the clause text before a mention holds a negator."""
    for word in re.findall(rf"[{_LATIN}']+", before):
        if word.endswith("n't") or word.replace("'", "") in _NEGATORS:
            return True
    return any(c in before for c in _CJK_NEGATORS)


def mentions(text: str) -> list[tuple[str, bool]]:
    """Every emotion mention of an answer as (canonical label, negated), in order."""
    pattern, table = _phrase_table()
    text = _MARKUP.sub(" ", _fold(strip_reasoning(text)))
    text = _PREFIX.sub("", text)
    found: list[tuple[str, bool]] = []
    seen_mention = False
    for clause in _CLAUSE.split(text):
        if clause is None or not clause.strip():
            continue
        hits = list(pattern.finditer(clause))
        if not hits:
            toks = [t.replace("'", "") for t in re.findall(rf"[{_LATIN}']+", clause)]
            if seen_mention and toks and toks[0] in _NEGATORS and set(toks) <= _BARE:
                found.append((INVALID, False))  # "Happy? Not really."
            continue
        # Mentions themselves ("no emotion", "不安") are blanked out before looking for
        # negators, so their own "no"/"不" negates nothing.
        blanked = pattern.sub(lambda m: " " * len(m.group(0)), clause)
        for m in hits:
            phrase = re.sub(r"\s+", " ", m.group(0))
            label = table.get(phrase) or table[_ascii(phrase)]
            found.append((label, _negated(blanked[: m.start()])))
        seen_mention = True
    return found


def parse_answer(text: str | None, labels: Sequence[str]) -> str:
    """The label of ``labels`` a free-text answer names, or ``invalid`` (module docstring)."""
    if text is None or not str(text).strip():
        return INVALID
    offered = {str(lab).strip().lower(): str(lab) for lab in labels}
    composite = "positive" in offered or "negative" in offered
    named: set[str] = set()
    for label, negated in mentions(str(text)):
        if label == INVALID:
            return INVALID
        if negated:
            continue
        if label in _WEAK and label not in offered:
            continue
        if label not in offered and composite and label in MEGC2019_MAP:
            label = MEGC2019_MAP[label]
        named.add(label)
    if len(named) > 1:  # "the other person looks happy": "other" is a plain word there
        named.discard("others")
    if len(named) != 1:
        return INVALID
    (label,) = named
    return offered.get(label, INVALID)
