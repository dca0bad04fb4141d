"""The user turns of the corpus's examples: the fixed prompts and the ``hf:`` family's
question with its options, drawn as a benchmark would offer them."""

from __future__ import annotations

import numpy as np

from emobench.chat.request import DEFAULT_INSTRUCTION, DEFAULT_QUESTION

#: The caption request (the ``caption`` kind's prompt).
CAPTION_PROMPT = "Write a short caption for this photo."
#: The ``state`` kind's prompt.
STATE_PROMPT = "Describe the person's face."


def question_text(options: list[str]) -> str:
    """The ``hf:`` family's default prompt for ``options`` (question, options, instruction):
    the same text :meth:`emobench.models.chat.ChatPromptMixin.prompt_text` builds."""
    return f"{DEFAULT_QUESTION}\nOptions: {', '.join(options)}.\n{DEFAULT_INSTRUCTION}"


#: Label sets a benchmark may offer (the quickstart's DFEW 7, MAFW's 11): options are often
#: one of them, in its own or a shuffled order, else a random subset.
def _label_sets(classes: tuple[str, ...]) -> list[list[str]]:
    dfew = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    return [[c for c in dfew if c in classes], list(classes)]


def draw_options(answer: str, classes: tuple[str, ...], rng: np.random.Generator) -> list[str]:
    """The options of one question: always containing ``answer``; half the time a full
    label set (sorted, listed, or shuffled), else a random subset of 3–7 classes."""
    r = rng.random()
    if r < 0.5:
        sets = _label_sets(classes)
        opts = list(sets[int(rng.integers(len(sets)))])
        if answer not in opts:
            opts[int(rng.integers(len(opts)))] = answer
        style = rng.random()
        if style < 0.4:
            return sorted(opts)
        if style < 0.6:
            return opts
        return [opts[i] for i in rng.permutation(len(opts))]
    others = [c for c in classes if c != answer]
    k = int(rng.integers(2, min(7, len(others)) + 1))
    pick = [others[i] for i in rng.choice(len(others), size=k, replace=False)]
    opts = [*pick, answer]
    return [opts[i] for i in rng.permutation(len(opts))]


__all__ = ["CAPTION_PROMPT", "STATE_PROMPT", "draw_options", "question_text"]
