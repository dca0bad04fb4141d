"""Free-text answers of generative models → one offered label, or ``invalid``.

:func:`parse_answer` reads an answer as a careful reader would, and keeps ``invalid``
(counted as wrong) for answers that name no label, several labels on an equal footing, or a
label that is not offered. Rules, in order:

1. ``None``, empty or blank text is invalid.
2. Reasoning blocks are removed first: ``<think>…</think>`` (also ``<thinking>``,
   ``<reasoning>``); an unclosed ``<think>`` drops everything after it (nothing left:
   invalid); a closing tag without its opening tag keeps only the text after it.
3. Case, Unicode width, markdown (``*`` ``_`` `````` ``#`` ``>``) and quotes are ignored;
   punctuation and brackets end clauses.
   Idioms that use an emotion word without naming the answer are removed: polite
   preambles ("I'm happy to help!", "Glad to assist", "很高兴为您解答"), "I'm afraid",
   "no doubt", and sentence adverbs ("Sadly, …", "Surprisingly, …").
4. Emotion *mentions* are found with :data:`ANSWER_SYNONYMS` (:mod:`emobench.answer_words`:
   nouns, adjectives, adverbs and ``-ness`` forms of every label of every dataset,
   "Fearfulness", "angrily", short phrases, a few Spanish, French, German and Chinese
   words), longest phrase first, whole words only (``unhappy`` is not ``happy``).
   ``positive``, ``negative``, ``other(s)`` and ``repression`` count only when they are
   offered labels (``other(s)`` also yields to any other label named). When
   ``positive``/``negative`` are offered, a fine emotion maps through
   :data:`~emobench.labels.MEGC2019_MAP`.
5. Negation: the answer is split into clauses (``. , ; : ! ?``, new lines, "but",
   "however", "although", "pero", "mais", "aber", "但", …). A mention with a negator
   earlier in its clause (after its last "and"/"while"; "not", "no", "never", "neither",
   "nor", "without", "…n't", "rather than", "instead of", "pas", "nicht", "不", "没", …) is
   *negated* and does not count: "not happy" → invalid, "not happy, but sad" → sadness,
   "surprised rather than scared" → surprise; a clause that dismisses ("Disgust is less
   likely", "ruled out") counts as negated. A bare negation clause after a mention
   ("Happy? Not really.") makes the whole answer invalid.
6. An explicit answer marker ("Answer:", "the emotion … is", "I would classify it as",
   "overall,", "therefore", "情绪是", "答案：" …) outside a hedged clause commits the
   answer: the first clause after the last such marker that names a label decides (one
   label, or invalid when it names several: "The emotion is happy or sad").
7. Otherwise clauses are *assertive* or *hedged* (they qualify: "with a hint of",
   "slightly", "also", "might", "could", "possibly", "alternative:", "略带", "可能" …). The
   labels named in assertive clauses must be exactly one ("Sadness, with a hint of anger"
   → sadness; "happy or sad" → invalid); with none, the hedged clauses must name exactly
   one ("It might be fear." → fear). The answer must be offered: a label outside ``labels``
   ("contempt" for a 7-class set) is invalid.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from emobench.answer_words import ANSWER_SYNONYMS
from emobench.labels import INVALID, MEGC2019_MAP

#: Labels whose words count only when the label is offered.
_WEAK = frozenset({"repression", "others", "positive", "negative"})


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split("|"))


_NEGATORS = _set(
    "not|no|never|neither|nor|without|hardly|barely|cannot|cant|dont|doesnt|isnt|arent|"
    "wasnt|werent|lacks|lacking|absent|than|nicht|kein|keine|keinen|keiner|nie|ohne|pas|"
    "ne|ni|jamais|sans|nunca|sin|tampoco"
)
#: A clause that dismisses what it names ("Disgust is less likely", "fear is ruled out").
_DISMISS = re.compile(
    r"\b(?:less\s+(?:likely|probable|plausible)|unlikely|ruled\s+out|can\s+be\s+excluded|"
    r"does\s+not\s+fit|doesn't\s+fit)\b|不太可能|可以排除"
)
_NEGATOR_PHRASES = re.compile(r"\b(?:instead\s+of|as\s+opposed\s+to|free\s+of|devoid\s+of)\b")
_CJK_NEGATORS = ("不", "没", "無", "无", "非", "未", "别")
#: Words holding a negator character that negate no emotion ("非常愤怒": very angry).
_CJK_NOT_NEGATION = re.compile("非常|不仅|不只|无论|毫无疑问|不禁|未来|别人|不由得")
#: Where a negator's scope ends inside a clause ("is not speaking and looks angry").
_SCOPE_END = re.compile(r"\b(?:and|while|yet)\b|而且|并且")
_BARE = _NEGATORS | _set("really|quite|exactly|sure|at|all|i|im|am|so|way|nope")
#: Clause qualifiers: a clause holding one is hedged (it qualifies, does not assert).
_HEDGES = _set(
    "also|might|may|could|possibly|perhaps|maybe|probably|potentially|hint|hints|trace|"
    "traces|touch|tinge|tinged|slight|slightly|subtle|subtly|mild|mildly|little|bit|"
    "undertone|undertones|secondary|underlying|some|somewhat|partly|sometimes|often|"
    "usually|typically|commonly|indicate|indicates|indicating|suggest|suggests|suggesting|"
    "element|elements|mixed|mix|either|whether|unclear|uncertain|ambiguous|too|alternative|"
    "alternatively|alternatives|runner-up|second"
)
_CJK_HEDGES = ("可能", "也许", "或许", "一丝", "略带", "有点", "有些", "些许", "夹杂", "稍微", "也")
_QUALIFIER = (
    r"(?:with|and|plus)\s+(?:an?\s+|some\s+)?(?:(?:slight|subtle|mild|faint)\s+)?"
    r"(?:hints?|touch|tinge|traces?|notes?|bit|undertones?|elements?)\s+of"
    r"|(?:with|and)\s+(?:some|slight|subtle|mild|underlying|a\s+little|a\s+bit\s+of)\b"
    r"|tinged\s+with|mixed\s+with"
)
_CLAUSE = re.compile(
    r"[.,;:!?\n。，；：！？、()\[\]{}（）]+|\b(?:but|however|although|though|whereas|pero|sino|mais|"
    r"plutôt|aber|sondern)\b|但是|但|而是|然而|不过|虽然|尽管|同时"
    rf"|(?=\b(?:{_QUALIFIER})\b)"
)
_REASONING = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)
_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.I)
#: Phrases that use an emotion word without naming the answer.
_IDIOMS = re.compile(
    r"(?:\b(?:i\s*'?\s*m|i\s+am|i\s*'?\s*d\s+be|i\s+would\s+be|we\s*'?\s*re|we\s+are)\s+)?"
    r"(?:(?:so|very|more\s+than|always|really)\s+)?(?:happy|glad|pleased|delighted)\s+to\s+"
    r"(?:help|assist|analy[sz]e|answer|take\s+a\s+look|look|describe|explain|provide|share|"
    r"clarify|do\s+(?:that|this)|be\s+of\s+(?:help|assistance)|review|examine)\b"
    r"|\bi\s*'?\s*m\s+afraid\b|\bi\s+am\s+afraid\b"
    r"|\b(?:no|without\s+(?:a|any)|beyond\s+(?:a|any))\s+doubt\b|\bundoubtedly\b"
    r"|(?:^|(?<=[.!?\n]))\s*(?:sadly|happily|surprisingly|interestingly|unfortunately|"
    r"fortunately|thankfully|hopefully)\s*,"
    r"|(?:很|非常|十分)?(?:高兴|开心|乐意)(?:为|帮|给)(?:您|你)|(?:很|非常)?(?:高兴|乐意)能(?:为|帮)",
    re.M,
)
#: Explicit answer markers (rule 6), on the normalised text (markup removed).
_MARKER = re.compile(
    r"\b(?:final\s+)?(?:answer|label|prediction|classification|category)\s*(?:is|would\s+be|"
    r"[:=])"
    r"|\b(?:emotion|expression|emotional\s+state|feeling|sentiment)\b[^.!?\n;]{0,40}?"
    r"\b(?:is|would\s+be|appears\s+to\s+be|seems\s+to\s+be|can\s+be\s+described\s+as)\b"
    r"|^\s*(?:emotion|expression|respuesta|réponse|antwort|答)\s*[:=：]"
    r"|\bi\s+(?:would|will|d)\s+(?:say|classify|label|describe|categori[sz]e|choose|pick|go\s+with)"
    r"(?:\s+(?:it|this|that|the\s+emotion|the\s+expression|the\s+person|them|him|her))?"
    r"(?:\s+as)?\b"
    r"|\b(?:best|most\s+accurately)\s+(?:described|classified|labell?ed)\s+as\b"
    r"|\bmost\s+likely\b|\b(?:therefore|thus|hence|overall|in\s+conclusion|in\s+summary|"
    r"to\s+conclude|all\s+in\s+all)\b"
    r"|答案(?:是|为|[:：])|(?:情绪|情感|表情|心情)(?:应该|可能)?(?:是|为|属于)|判断为|归类为"
    r"|所以|因此|综上",
    re.M,
)
_MARKUP = re.compile(r"[*_`#>\"“”„«»‘|~]")
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


def normalise(text: str) -> str:
    """The answer as the rules read it: reasoning stripped, folded, markup, a leading
    ``Answer:`` and emotion idioms removed (rules 2-3)."""
    text = _MARKUP.sub(" ", _fold(strip_reasoning(text)))
    return _IDIOMS.sub(lambda m: " " * len(m.group(0)), text)


def _words(text: str) -> list[str]:
    return [w.replace("'", "") for w in re.findall(rf"[{_LATIN}']+", text)]


def _negated(before: str) -> bool:
    """Whether the clause text before a mention (after its last "and") holds a negator."""
    scope = _SCOPE_END.split(before)[-1]
    for word in re.findall(rf"[{_LATIN}']+", scope):
        if word.endswith("n't") or word.replace("'", "") in _NEGATORS:
            return True
    cjk = _CJK_NOT_NEGATION.sub(" ", scope)
    return bool(_NEGATOR_PHRASES.search(scope)) or any(c in cjk for c in _CJK_NEGATORS)


def _hedged(clause: str) -> bool:
    return bool(set(_words(clause)) & _HEDGES) or any(c in clause for c in _CJK_HEDGES)


@dataclass(frozen=True)
class Mention:
    """One emotion mention: its label, where it is, and how its clause reads."""

    label: str
    negated: bool
    clause: int  # index of its clause
    start: int  # offset in the normalised text
    hedged: bool  # its clause qualifies rather than asserts


@dataclass(frozen=True)
class _Clause:
    start: int
    end: int
    hedged: bool


def _clauses(text: str) -> list[_Clause]:
    """The clauses of a normalised answer; a hedged heading ("Alternative:", "Secondary:")
    hedges the clause after its colon too."""
    out: list[_Clause] = []
    at, carry = 0, False
    for sep in [*_CLAUSE.finditer(text), None]:
        end = sep.start() if sep is not None else len(text)
        if end > at or sep is None:
            hedged = _hedged(text[at:end])
            out.append(_Clause(at, end, hedged or carry))
            carry = hedged and sep is not None and bool(re.match(r"\s*[:：]", sep.group(0)))
        if sep is not None:
            at = max(sep.end(), at)
    return out


def _scan(text: str) -> tuple[list[Mention], list[_Clause]]:
    """Every mention of a normalised answer, in order; a bare negation clause after a
    mention ("Happy? Not really.") is a mention of ``invalid``."""
    pattern, table = _phrase_table()
    clauses = _clauses(text)
    found: list[Mention] = []
    seen_mention = False
    for i, cl in enumerate(clauses):
        clause = text[cl.start : cl.end]
        if not clause.strip():
            continue
        hits = list(pattern.finditer(clause))
        if not hits:
            toks = _words(clause)
            if seen_mention and toks and toks[0] in _NEGATORS and set(toks) <= _BARE:
                found.append(Mention(INVALID, False, i, cl.start, False))
            continue
        # Mentions themselves ("no emotion", "不安") are blanked out before looking for
        # negators, so their own "no"/"不" negates nothing.
        blanked = pattern.sub(lambda m: " " * len(m.group(0)), clause)
        dismissed = bool(_DISMISS.search(blanked))
        for m in hits:
            phrase = re.sub(r"\s+", " ", m.group(0))
            label = table.get(phrase) or table[_ascii(phrase)]
            neg = dismissed or _negated(blanked[: m.start()])
            found.append(Mention(label, neg, i, cl.start + m.start(), cl.hedged))
        seen_mention = True
    return found, clauses


def mentions(text: str) -> list[tuple[str, bool]]:
    """Every emotion mention of an answer as (canonical label, negated), in order."""
    return [(m.label, m.negated) for m in _scan(normalise(text))[0]]


def _pick(named: set[str], offered: dict[str, str]) -> str:
    if len(named) > 1:  # "the other person looks happy": "other" is a plain word there
        named = named - {"others"}
    if len(named) != 1:
        return INVALID
    (label,) = named
    return offered.get(label, INVALID)


def parse_answer(text: str | None, labels: Sequence[str]) -> str:
    """The label of ``labels`` a free-text answer names, or ``invalid`` (module docstring)."""
    if text is None or not str(text).strip():
        return INVALID
    offered = {str(lab).strip().lower(): str(lab) for lab in labels}
    composite = "positive" in offered or "negative" in offered

    def resolve(label: str) -> str | None:
        if label in _WEAK and label not in offered:
            return None
        if label not in offered and composite and label in MEGC2019_MAP:
            return MEGC2019_MAP[label]
        return label

    norm = normalise(str(text))
    found, clauses = _scan(norm)
    if any(m.label == INVALID for m in found):
        return INVALID
    live = [(m, lab) for m in found if not m.negated and (lab := resolve(m.label)) is not None]
    # rule 6: the last answer marker outside a hedged clause with a label after it
    for marker in reversed(list(_MARKER.finditer(norm))):
        where = next((c for c in clauses if c.start <= marker.start() <= c.end), None)
        if where is not None and where.hedged:
            continue
        after = [(m, lab) for m, lab in live if m.start >= marker.end()]
        if after:
            first = after[0][0].clause
            return _pick({lab for m, lab in after if m.clause == first}, offered)
    # rule 7: assertive clauses first, hedged ones only when nothing is asserted
    assertive = {lab for m, lab in live if not m.hedged}
    return _pick(assertive or {lab for _, lab in live}, offered)


__all__ = ["ANSWER_SYNONYMS", "Mention", "mentions", "normalise", "parse_answer", "strip_reasoning"]
