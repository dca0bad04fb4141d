"""The words a model's free-text answer may use for each label (:mod:`emobench.answers`).

Every label of every dataset (the canonical names of :data:`emobench.labels.EMOTIONS`) is
named by its noun, its adjectives, their adverbs and ``-ness`` nominalisations ("fear",
"fearful", "fearfully", "fearfulness"), short phrases ("no emotion", "in tears"), and a few
Spanish, French, German and Chinese words. Adjectives listed in :data:`_ADJECTIVES` get
their adverb and ``-ness`` forms derived (:func:`derived_forms`); irregular forms are
written out. Comparative and idiomatic uses that do *not* name an emotion ("I'm happy to
help", "I'm afraid I cannot", "Surprisingly, ...") are handled by the parser, not here.
"""

from __future__ import annotations


def _phrases(text: str) -> tuple[str, ...]:
    """``"a|b c"`` -> ``("a", "b c")`` (keeps the tables below compact)."""
    return tuple(w for w in text.split("|") if w)


#: Adjectives whose adverb (``-ly``) and ``-ness`` forms name the same label.
_ADJECTIVES: dict[str, str] = {
    "neutral": "neutral|calm|expressionless|emotionless|impassive|composed|placid",
    "happiness": "happy|joyful|joyous|cheerful|glad|delighted|elated|merry|jubilant",
    "sadness": "sad|sorrowful|mournful|gloomy|tearful|miserable|dejected|despondent|"
    "melancholic|downcast|forlorn|heartbroken",
    "anger": "angry|furious|irate|enraged|irritated|annoyed|indignant|livid|hostile|wrathful",
    "surprise": "surprised|astonished|amazed|startled|stunned|shocked|astounded|dumbfounded",
    "disgust": "disgusted|revolted|repulsed|nauseated|sickened",
    "fear": "fearful|frightened|scared|afraid|terrified|horrified|panicked|petrified|alarmed",
    "contempt": "contemptuous|scornful|disdainful|smug|derisive|condescending|sneering",
    "anxiety": "anxious|worried|nervous|uneasy|apprehensive|restless|jittery|stressed",
    "helplessness": "helpless|powerless|resigned",
    "disappointment": "disappointed|disheartened|crestfallen|dismayed",
    "repression": "repressed|suppressed|restrained",
}

#: Nouns, verbs, phrases and other languages (used as written).
_WORDS: dict[str, str] = {
    "neutral": "neutrality|calmness|composure|neutral expression|neutral face|blank expression|"
    "blank face|blank stare|straight face|poker face|deadpan|no emotion|no emotions|"
    "no particular emotion|no visible emotion|no obvious emotion|no apparent emotion|"
    "no clear emotion|no strong emotion|no discernible emotion|no emotional expression|"
    "neutro|neutra|neutre|calme|ruhig|neutral gestimmt|中性|中立|平静|冷静|淡定|平淡|无表情|"
    "面无表情|没有表情|无明显情绪|没有明显情绪|没有明显的情绪",
    "happiness": "happiness|joy|joyfulness|cheer|delight|elation|glee|gleeful|contentment|"
    "amusement|amused|smiling|smile|smiles|laughing|laughs|laughter|grinning|beaming|"
    "pleased|tears of joy|tears of happiness|crying tears of joy|crying with joy|"
    "cried with joy|feliz|felicidad|alegre|alegría|heureux|heureuse|bonheur|joie|joyeux|"
    "glücklich|glück|freude|fröhlich|开心|高兴|快乐|幸福|喜悦|愉快|欢乐|欣喜|微笑|笑容|喜极而泣",
    "sadness": "sadness|sorrow|grief|grieving|melancholy|depressed|depression|despair|"
    "crying|cries|weeping|in tears|tears|sobbing|heartbreak|triste|tristeza|tristesse|"
    "traurig|traurigkeit|trauer|悲伤|伤心|难过|悲哀|哀伤|忧伤|沮丧|哭泣|悲痛",
    "anger": "anger|mad|rage|raging|fury|irritation|annoyance|indignation|outrage|outraged|"
    "wrath|hostility|scowling|scowl|enojado|enojada|enfadado|enfadada|ira|enojo|furioso|"
    "furiosa|en colère|colère|fâché|fâchée|furieux|furieuse|wütend|wut|zornig|zorn|ärger|"
    "verärgert|生气|愤怒|恼怒|恼火|气愤|发怒|暴怒",
    "surprise": "surprise|shock|astonishment|amazement|disbelief|taken aback|"
    "caught off guard|sorpresa|sorprendido|sorprendida|surpris|surprise|étonné|étonnée|"
    "überrascht|überraschung|惊讶|吃惊|惊奇|震惊|诧异|惊喜",
    "disgust": "disgust|revulsion|repulsion|distaste|aversion|loathing|grossed out|"
    "disgusting|asco|asqueado|asqueada|dégoût|dégoûté|dégoûtée|ekel|angeekelt|厌恶|恶心|"
    "反感|嫌弃|憎恶",
    "fear": "fear|fright|terror|horror|panic|dread|alarm|miedo|asustado|asustada|temor|peur|"
    "effrayé|effrayée|apeuré|apeurée|angst|verängstigt|恐惧|害怕|惊恐|恐慌|畏惧|惧怕",
    "contempt": "contempt|scorn|disdain|derision|condescension|sneer|smirk|smirking|"
    "desprecio|mépris|verachtung|verächtlich|轻蔑|蔑视|鄙视|不屑|鄙夷",
    "anxiety": "anxiety|worry|nervousness|unease|uneasiness|apprehension|stress|ansiedad|"
    "ansioso|ansiosa|anxieux|anxieuse|anxiété|inquiet|inquiète|besorgt|nervös|焦虑|不安|"
    "担心|紧张|忧虑|担忧|焦急",
    "helplessness": "helplessness|powerlessness|resignation|at a loss|impotencia|impuissant|"
    "impuissance|hilflos|hilflosigkeit|无助|无奈|无能为力",
    "disappointment": "disappointment|letdown|let down|dismay|decepción|decepcionado|"
    "decepcionada|déçu|déçue|déception|enttäuscht|enttäuschung|失望",
    # Ordinary words too: they count only when offered (see emobench.answers._WEAK).
    "repression": "repression|suppression|restraint|holding back|压抑|克制",
    "others": "others|other|其他|其它",
    "positive": "positive|积极|正面|正向",
    "negative": "negative|消极|负面|负向",
}


def derived_forms(adjective: str) -> tuple[str, ...]:
    """An adjective and its adverb and ``-ness`` forms: ``happy`` → happily, happiness;
    ``calm`` → calmly, calmness; ``melancholic`` → melancholically. ``-ed`` participles
    get them too (``worriedly``); an unused form costs nothing."""
    if adjective.endswith("ic"):
        return adjective, adjective + "ally"
    if adjective.endswith("y") and not adjective.endswith(("ey", "ay", "oy")):
        stem = adjective[:-1]
        return adjective, stem + "ily", stem + "iness"
    if adjective.endswith("le") and not adjective.endswith("ile"):
        return adjective, adjective[:-1] + "y", adjective + "ness"
    return adjective, adjective + "ly", adjective + "ness"


def _table() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for label in _WORDS:
        words: list[str] = []
        for adj in _phrases(_ADJECTIVES.get(label, "")):
            words.extend(derived_forms(adj))
        words.extend(_phrases(_WORDS[label]))
        out[label] = tuple(dict.fromkeys(words))
    return out


#: Words and phrases naming each canonical emotion in a model's answer (lower case).
ANSWER_SYNONYMS: dict[str, tuple[str, ...]] = _table()

__all__ = ["ANSWER_SYNONYMS", "derived_forms"]
