"""The synthetic "web" corpus that ``emobench-tiny-vlm`` is pre-trained on.

Every example is one user turn (visual items and text, as the ``hf:`` family sends them)
and the assistant's answer. Faces come from the synth renderer
(:mod:`emobench.data.synth.faces`) with identities from the web pool's seed stream
(``[WEB_STREAM, 3, seed, example]``; the benchmark draws subjects from ``[seed, 1, subject]``),
rendered at the quickstart's decode size (112 px, whole frame: the ``hf:`` family does not
crop). Five kinds, drawn with the weights of :attr:`CorpusConfig.mix`
(the prompts are :mod:`.prompts`):

* ``caption``: a still face (any of the 11 synth expressions, uniformly) and "Write a short
  caption for this photo." → a web caption from the tiny CLIP's caption machinery
  (:func:`emobench.pretrain.synth_web.webpool.make_caption`): it names the face's emotion with
  probability ``mention_rate · F_c / F_max`` (``F_c``: the English ``wordfreq`` frequency
  of the class's words), is noisy (a frequent word, whatever the face shows) with
  probability ``noise_rate``, and has no emotion word otherwise.
* ``qa``: a short clip (a synth timeline: macro or micro expression, nuisances) shown as a
  video of 2–16 uniformly sampled frames, and the ``hf:`` family's default prompt
  (question, options, one-word instruction) → the class named by that clip's web caption.
  Clips whose caption names no emotion are not asked about (drawn again): web text that
  says nothing about the emotion gives no answer to learn, so a class is answered about in
  proportion to its word frequency and noisy captions push answers toward frequent words.
  Any head-class bias of the model therefore arises by the mechanism the study names.
* ``msce``: the same question asked in MSCE's stage-2 form (:mod:`emobench.chat.msce`):
  keyframes as images, interleaved with "Between these frames: <description>" texts
  computed from the action units of each gap's frames
  (:func:`~emobench.pretrain.synth_vlm.descriptions.describe_motion`).
* ``state`` (off in the shipped mix): a still face and "Describe the person's face." → the
  action units it holds, in words (:func:`~.descriptions.describe_state`; no emotion
  words). Dense visual supervision; at the shipped budget it did not lift zero-shot
  accuracy (see the card).
* ``describe``: one MSCE gap (a keyframe, the in-between frames, the next keyframe; a video)
  and MSCE's describe prompt → a motion description generated from those frames' action
  unit intensities (:mod:`.descriptions`), so the model can be MSCE's stage-1 describer.

Each example depends only on (seed, example index): the corpus is an infinite, seeded
stream, generated on the fly (no epoch repeats an image) and identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emobench.chat.msce import BETWEEN_PREFIX, DEFAULT_DESCRIBE_PROMPT
from emobench.data.synth.aus import N_AUS, SYNTH_LABELS, prototype_vector
from emobench.data.synth.faces import render_frames, sample_identity
from emobench.data.synth.timeline import make_timeline
from emobench.labels import EMOTION_WORDS
from emobench.pretrain.synth_vlm.descriptions import (
    MOTIONS,
    NO_CHANGE,
    RELAXED,
    STATES,
    describe_motion,
    describe_state,
)
from emobench.pretrain.synth_vlm.prompts import (
    CAPTION_PROMPT,
    STATE_PROMPT,
    draw_options,
    question_text,
)
from emobench.pretrain.synth_web.webpool import (
    WEB_STREAM,
    make_caption,
    mention_probabilities,
    word_frequencies,
)
from emobench.video.frames import centre_crop
from emobench.video.sampling import between_indices, segment_centres

#: The processor's frame rate for training videos (the synth benchmark's).
FPS = 25.0
#: Frames between two keyframes that MSCE's describer sees (``hf`` option ``gap_frames``).
GAP_FRAMES = 4


@dataclass(frozen=True)
class CorpusConfig:
    """What the stream of pre-training examples looks like (defaults: the shipped model)."""

    seed: int = 0
    frame_size: int = 112
    #: centre crop side (pixels) of every rendered frame: the face from brows to chin, as
    #: the tiny CLIP sees it and as ``hf:emobench-tiny-vlm`` crops benchmark frames (0: none)
    crop: int = 64
    #: relative weights of the example kinds
    mix: dict[str, float] = field(
        default_factory=lambda: {
            "caption": 0.15,
            "state": 0.3,
            "qa": 0.3,
            "msce": 0.1,
            "describe": 0.15,
        }
    )
    mention_rate: float = 0.9
    noise_rate: float = 0.15
    #: frames per ``qa`` video, keyframes per ``msce`` prompt and ``describe`` clip
    qa_frames: tuple[int, ...] = (2, 4, 8, 8, 16)
    msce_keyframes: tuple[int, ...] = (2, 3, 4)
    describe_keyframes: tuple[int, ...] = (4, 8, 16)
    micro_share: float = 1 / 3
    seconds: tuple[float, float] = (2.0, 3.5)
    classes: tuple[str, ...] = field(default_factory=lambda: tuple(SYNTH_LABELS))


@dataclass
class Example:
    """One pre-training example: the user turn's content items and the answer."""

    kind: str
    content: list[dict[str, Any]]
    answer: str
    #: the face's class, the emotion word of its caption (if any), whether it was noisy
    label: str
    word: str | None = None
    noisy: bool = False
    #: the frame rate the ``hf:`` family would tell the processor: the presented frames'
    #: own rate (for a ``describe`` gap, its clip's keyframe rate, as MSCE passes it)
    fps: float | None = None


def _rate(idx: np.ndarray) -> float:
    """The rate of presented frames ``idx`` of a :data:`FPS` clip (as
    :func:`emobench.chat.request.effective_fps` computes it)."""
    idx = np.asarray(idx)
    if len(idx) < 2:
        return FPS
    return FPS * len(idx) / (int(idx.max() - idx.min()) + 1)


# --------------------------------------------------------------------------- examples


class Corpus:
    """The seeded stream of pre-training examples (module docstring).

    ``example(i)`` is a pure function of ``(cfg.seed, i)``; ``render=False`` skips the
    faces (texts only, for training the tokenizer and for counting caption statistics).
    """

    def __init__(self, cfg: CorpusConfig | None = None) -> None:
        self.cfg = cfg or CorpusConfig()
        self.freqs = word_frequencies(self.cfg.classes)
        self.mention = mention_probabilities(self.freqs, self.cfg.mention_rate)
        self.word_class = {w: c for c in self.cfg.classes for w in EMOTION_WORDS[c]}
        kinds = {k: float(v) for k, v in self.cfg.mix.items() if v > 0}
        unknown = set(kinds) - {"caption", "state", "qa", "msce", "describe"}
        if unknown or not kinds:
            raise ValueError(f"corpus mix: unknown or no kinds {sorted(unknown) or kinds}")
        self.kinds = list(kinds)
        p = np.array([kinds[k] for k in self.kinds])
        self.kind_p = p / p.sum()

    def rng(self, index: int) -> np.random.Generator:
        """Example ``index``'s generator: the web pool's stream, never the benchmark's."""
        return np.random.default_rng([WEB_STREAM, 3, self.cfg.seed, int(index)])

    def example(self, index: int, render: bool = True) -> Example:
        rng = self.rng(index)
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_p))]
        return getattr(self, f"_{kind}")(rng, render)

    def still_group(self, index: int, size: int) -> tuple[list[np.ndarray], list[str | None]]:
        """Group ``index`` of the vision warm-up stream (``[WEB_STREAM, 5, seed, index]``,
        disjoint from :meth:`example`'s): ``size`` still faces of ONE web identity showing
        distinct expressions (classes drawn without replacement while they last), each with
        the class its own web caption names (``None`` when the caption names none).

        One identity per group: within a group only the expression differs, so the
        classifier cannot lean on who the person is (a fresh identity per face let a tiny
        vision tower memorise identities without ever generalising, even on true labels).
        """
        rng = np.random.default_rng([WEB_STREAM, 5, self.cfg.seed, int(index)])
        n = len(self.cfg.classes)
        order = np.concatenate([rng.permutation(n) for _ in range(-(-size // n))])[:size]
        labels = [self.cfg.classes[int(i)] for i in order]
        targets: list[str | None] = []
        for label in labels:
            _, word, _ = make_caption(label, rng, self.freqs, self.mention, self.cfg.noise_rate)
            targets.append(self.word_class[word] if word is not None else None)
        aus = np.stack([prototype_vector(lb) * rng.uniform(0.4, 1.0) for lb in labels])
        jitter = rng.uniform(0.0, 0.15, (size, N_AUS)) * (rng.random((size, N_AUS)) < 0.15)
        aus = np.clip(aus + jitter, 0.0, 1.0).astype(np.float32)
        poses = np.stack(
            [
                rng.uniform(-0.03, 0.03, size),
                rng.uniform(-0.03, 0.03, size),
                rng.uniform(-4, 4, size),
            ],
            axis=1,
        ).astype(np.float32)
        illums = rng.uniform(0.85, 1.15, size).astype(np.float32)
        ident = sample_identity(rng)
        noise = float(rng.uniform(0.5, 3.0))
        frames = render_frames(ident, aus, self.cfg.frame_size, poses, illums, rng=rng, noise=noise)
        return list(np.ascontiguousarray(centre_crop(frames, self.cfg.crop))), targets

    # ------------------------------------------------------------ kinds

    def _still_face(
        self, rng: np.random.Generator, label: str, render: bool
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """A still face holding ``label``'s prototype at a random intensity with a little AU
        jitter: its ``(1, N_AUS)`` action units and, when ``render``, the image item."""
        aus = prototype_vector(label) * rng.uniform(0.4, 1.0)
        jitter = rng.uniform(0.0, 0.15, N_AUS) * (rng.random(N_AUS) < 0.15)
        aus = np.clip(aus + jitter, 0.0, 1.0).astype(np.float32)[None]
        content: list[dict[str, Any]] = []
        if render:
            pose = np.array(
                [[rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), rng.uniform(-4, 4)]],
                np.float32,
            )
            illum = np.array([rng.uniform(0.85, 1.15)], np.float32)
            frame = self._render(rng, aus, pose, illum, noise=float(rng.uniform(0.5, 3.0)))[0]
            content.append({"type": "image", "image": frame})
        return aus, content

    def _caption(self, rng: np.random.Generator, render: bool) -> Example:
        label = self.cfg.classes[int(rng.integers(len(self.cfg.classes)))]
        text, word, noisy = make_caption(label, rng, self.freqs, self.mention, self.cfg.noise_rate)
        _, content = self._still_face(rng, label, render)
        content.append({"type": "text", "text": CAPTION_PROMPT})
        return Example("caption", content, text, label, word, noisy)

    def _state(self, rng: np.random.Generator, render: bool) -> Example:
        """A still face (as ``caption``) and "Describe the person's face." → the action
        units it holds, in words (:func:`describe_state`)."""
        label = self.cfg.classes[int(rng.integers(len(self.cfg.classes)))]
        aus, content = self._still_face(rng, label, render)
        content.append({"type": "text", "text": STATE_PROMPT})
        return Example("state", content, describe_state(aus[0]), label)

    def _timeline(self, rng: np.random.Generator, label: str | None = None) -> Any:
        classes = self.cfg.classes
        if label is None:
            label = classes[int(rng.integers(len(classes)))]
        micro = label != "neutral" and bool(rng.random() < self.cfg.micro_share)
        n = max(20, round(rng.uniform(*self.cfg.seconds) * FPS))
        distractors = tuple(c for c in classes if c != "neutral")
        return label, make_timeline(label, n, FPS, micro, rng, distractors)

    def _asked(self, rng: np.random.Generator) -> tuple[str, str, str, bool]:
        """(face class, answer class, word, noisy) of a clip that is asked about: clips
        whose caption names no emotion are drawn again (module docstring)."""
        classes = self.cfg.classes
        while True:
            label = classes[int(rng.integers(len(classes)))]
            _, word, noisy = make_caption(label, rng, self.freqs, self.mention, self.cfg.noise_rate)
            if word is not None:
                return label, self.word_class[word], word, noisy

    def _qa(self, rng: np.random.Generator, render: bool) -> Example:
        label, answer, word, noisy = self._asked(rng)
        _, tl = self._timeline(rng, label)
        k = int(rng.choice(self.cfg.qa_frames))
        idx = segment_centres(tl.n_frames, k)
        options = draw_options(answer, self.cfg.classes, rng)  # before rendering: the texts
        content: list[dict[str, Any]] = []  # do not depend on ``render``
        if render:
            content.append({"type": "video", "video": self._clip(rng, tl, idx)})
        content.append({"type": "text", "text": question_text(options)})
        return Example("qa", content, answer, label, word, noisy, _rate(idx))

    def _msce(self, rng: np.random.Generator, render: bool) -> Example:
        label, answer, word, noisy = self._asked(rng)
        _, tl = self._timeline(rng, label)
        k = int(rng.choice(self.cfg.msce_keyframes))
        keys = segment_centres(tl.n_frames, k)
        options = draw_options(answer, self.cfg.classes, rng)
        frames = self._clip(rng, tl, keys) if render else None
        content: list[dict[str, Any]] = []
        for i in range(k):
            if frames is not None:
                content.append({"type": "image", "image": frames[i]})
            if i < k - 1:
                gap = np.concatenate(
                    [[keys[i]], between_indices(keys[i], keys[i + 1], GAP_FRAMES), [keys[i + 1]]]
                )
                text = BETWEEN_PREFIX + describe_motion(tl.aus[gap])
                content.append({"type": "text", "text": text})
        content.append({"type": "text", "text": question_text(options)})
        return Example("msce", content, answer, label, word, noisy, _rate(keys))

    def _describe(self, rng: np.random.Generator, render: bool) -> Example:
        label, tl = self._timeline(rng)
        k = int(rng.choice(self.cfg.describe_keyframes))
        keys = segment_centres(tl.n_frames, k)
        gaps = list(range(k - 1))
        # most gaps shown hold part of the expression (else most would read "no change")
        if tl.onset is not None and rng.random() < 0.7:
            hit = [g for g in gaps if keys[g] <= tl.offset and keys[g + 1] >= tl.onset]
            gaps = hit or gaps
        g = gaps[int(rng.integers(len(gaps)))]
        idx = np.concatenate(
            [[keys[g]], between_indices(keys[g], keys[g + 1], GAP_FRAMES), [keys[g + 1]]]
        ).astype(np.int64)
        content: list[dict[str, Any]] = []
        if render:
            content.append({"type": "video", "video": self._clip(rng, tl, idx)})
        content.append({"type": "text", "text": DEFAULT_DESCRIBE_PROMPT})
        answer = describe_motion(tl.aus[idx])
        return Example("describe", content, answer, label, fps=_rate(keys))

    # ------------------------------------------------------------ rendering

    def _render(
        self,
        rng: np.random.Generator,
        aus: np.ndarray,
        poses: np.ndarray,
        illums: np.ndarray,
        noise: float,
    ) -> np.ndarray:
        ident = sample_identity(rng)
        frames = render_frames(ident, aus, self.cfg.frame_size, poses, illums, rng=rng, noise=noise)
        return np.ascontiguousarray(centre_crop(frames, self.cfg.crop))

    def _clip(self, rng: np.random.Generator, tl: Any, idx: np.ndarray) -> np.ndarray:
        """The frames ``idx`` of timeline ``tl`` on a new web identity: (K, S, S, 3) uint8."""
        return self._render(rng, tl.aus[idx], tl.poses[idx], tl.illums[idx], tl.noise)

    # ------------------------------------------------------------ texts and statistics

    def texts(self, n: int) -> list[str]:
        """Prompts and answers of the first ``n`` examples (no rendering), plus every
        label, emotion word and fixed prompt: the tokenizer's training text."""
        out = [CAPTION_PROMPT, DEFAULT_DESCRIBE_PROMPT, BETWEEN_PREFIX, NO_CHANGE]
        out += [STATE_PROMPT, RELAXED, "; ".join(STATES)]
        out += [" ".join([c, *EMOTION_WORDS[c]]) for c in EMOTION_WORDS]
        out += [f"{up}, {down}." for up, down, _ in MOTIONS]
        out += [f"Frame {i} → {i + 1}: " for i in range(1, 33)]
        for i in range(n):
            ex = self.example(i, render=False)
            out += [c["text"] for c in ex.content if c["type"] == "text"]
            out.append(ex.answer)
        return out

    def caption_stats(self, n: int) -> dict[str, Any]:
        """Over ``n`` caption draws (one per class in turn): how often each class's caption
        names its own emotion, and how often each word is named (noise included)."""
        named: dict[str, int] = {c: 0 for c in self.cfg.classes}
        words: dict[str, int] = {}
        per = max(1, n // len(self.cfg.classes))
        for ci, c in enumerate(self.cfg.classes):
            for j in range(per):
                rng = np.random.default_rng([WEB_STREAM, 4, self.cfg.seed, ci, j])
                _, word, noisy = make_caption(c, rng, self.freqs, self.mention, self.cfg.noise_rate)
                if word is not None:
                    words[word] = words.get(word, 0) + 1
                    named[c] += int(not noisy and self.word_class[word] == c)
        return {
            "draws_per_class": per,
            "own_mention_rate": {c: named[c] / per for c in self.cfg.classes},
            "captions_per_word": dict(sorted(words.items(), key=lambda kv: -kv[1])),
        }


__all__ = ["FPS", "GAP_FRAMES", "Corpus", "CorpusConfig", "Example"]
