"""Class prompts for contrastive zero-shot classification: templates × emotion words.

A class is described by several *words* (adjectives such as "happy", "smiling") and every
word is put into every *template* ("a photo of a {} person."). As in the CLIP paper
(Radford et al. 2021, §3.1.4), the text embeddings of all prompts of a class are
L2-normalised, averaged and normalised again: one embedding per class.

Templates take an adjective (the ``{}`` slot). Words and templates are configurable per
dataset: :func:`prompt_set` returns the defaults for a dataset (MAFW's 11 classes, the
micro-expression sets' ``repression`` / ``others`` / ``positive`` / ``negative``), and
``[models.options] prompts = {templates = [...], words = {happiness = [...]}}`` overrides
either part. The same emotion vocabulary drives the synthetic web captions of
:mod:`emobench.pretrain.synth_web`, so word frequencies and prompts agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emobench.errors import EmobenchError
from emobench.labels import EMOTION_WORDS, canonical  # EMOTION_WORDS: also importable here

#: Default templates ("{}" is an emotion adjective).
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {} person.",
    "a photo of a {} face.",
    "a close-up photo of a {} face.",
    "a person feeling {}.",
    "a face that looks {}.",
    "a {} facial expression.",
)

#: Per-dataset defaults that differ from the global ones (dataset name → words overrides).
DATASET_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    # MEGC2019's composite classes: the positive class is happiness in practice
    "megc2019": {"positive": ("happy", "positive", "pleased"), "negative": ("negative", "upset")},
}


class PromptError(EmobenchError):
    """A prompt configuration that cannot be used (bad template, class without words)."""


@dataclass(frozen=True)
class PromptSet:
    """Templates and per-class words; :meth:`prompts` expands them for a label list."""

    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(EMOTION_WORDS))

    def __post_init__(self) -> None:
        if not self.templates:
            raise PromptError("prompts: at least one template is needed")
        for t in self.templates:
            if not isinstance(t, str) or t.count("{}") != 1:
                raise PromptError(f"prompt template {t!r} must contain exactly one '{{}}' slot")

    def prompts(self, labels: Sequence[str]) -> list[list[str]]:
        """For each label (canonical name), every template filled with every word."""
        out = []
        for lb in labels:
            words = self.words.get(lb)
            if not words:
                raise PromptError(
                    f"prompts: no words for class {lb!r}; add e.g. "
                    f'prompts.words.{lb} = ["..."] to the model options'
                )
            out.append([t.format(w) for w in words for t in self.templates])
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded in the manifest, hashed into cache keys)."""
        return {
            "templates": list(self.templates),
            "words": {k: list(v) for k, v in self.words.items()},
        }


def prompt_set(dataset: str | None = None, options: Mapping[str, Any] | None = None) -> PromptSet:
    """The prompt set for ``dataset``, with the user's ``options`` applied on top.

    ``options`` may hold ``templates`` (a list replacing the defaults) and ``words`` (a
    mapping label → list of words, replacing that label's words; label names may be
    aliases such as ``happy``).
    """
    options = dict(options or {})
    unknown = set(options) - {"templates", "words"}
    if unknown:
        raise PromptError(f"prompts: unknown key(s) {sorted(unknown)}; allowed: templates, words")
    words: dict[str, tuple[str, ...]] = dict(EMOTION_WORDS)
    words.update(DATASET_WORDS.get(dataset or "", {}))
    user_words = options.get("words", {})
    if not isinstance(user_words, Mapping):
        raise PromptError("prompts.words must map class names to lists of words")
    for label, ws in user_words.items():
        if isinstance(ws, str) or not isinstance(ws, Sequence) or not ws:
            raise PromptError(f"prompts.words.{label} must be a non-empty list of words")
        words[canonical(label)] = tuple(str(w) for w in ws)
    templates = options.get("templates", DEFAULT_TEMPLATES)
    if isinstance(templates, str) or not isinstance(templates, Sequence):
        raise PromptError("prompts.templates must be a list of strings")
    return PromptSet(tuple(templates), words)
