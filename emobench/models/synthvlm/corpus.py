"""The synthetic "web" corpus that ``emobench-tiny-vlm`` is pre-trained on.

Every example is one user turn (visual items and text, as the ``hf:`` family sends them)
and the assistant's answer. Faces come from the synth renderer
(:mod:`emobench.data.synth.faces`) with identities from the web pool's seed stream
(``[WEB_STREAM, 3, seed, example]``; the benchmark draws subjects from ``[seed, 1, subject]``),
rendered at the quickstart's decode size (112 px, whole frame: the ``hf:`` family does not
crop). Five kinds, drawn with the weights of :attr:`CorpusConfig.mix`:

* ``caption``: a still face (any of the 11 synth expressions, uniformly) and "Write a short
  caption for this photo." → a web caption from the tiny CLIP's caption machinery
  (:func:`emobench.models.openclip.webpool.make_caption`): it names the face's emotion with
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
* ``msce``: the same question asked in MSCE's stage-2 form (:mod:`emobench.models.hf.msce`):
  keyframes as images, interleaved with "Between these frames: <description>" texts
  computed from the action units of each gap's frames (as :func:`describe_motion` does).
* ``state`` (off in the shipped mix): a still face and "Describe the person's face." → the
  action units it holds, in words (:func:`describe_state`; no emotion words). Dense visual
  supervision; at the shipped budget it did not lift zero-shot accuracy (see the card).
* ``describe``: one MSCE gap (a keyframe, the in-between frames, the next keyframe; a video)
  and MSCE's describe prompt → a motion description generated from those frames' action
  unit intensities (:func:`describe_motion`), so the model can be MSCE's stage-1 describer.

Each example depends only on (seed, example index): the corpus is an infinite, seeded
stream, generated on the fly (no epoch repeats an image) and identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emobench.models.openclip.webpool import WEB_STREAM, make_caption

#: The caption request (the ``caption`` kind's prompt).
CAPTION_PROMPT = "Write a short caption for this photo."
#: The processor's frame rate for training videos (the synth benchmark's).
FPS = 25.0
#: Frames between two keyframes that MSCE's describer sees (``hf`` option ``gap_frames``).
GAP_FRAMES = 4

#: Facial motions a description can name: (phrase when it appears, phrase when it goes
#: away, action units whose strongest value drives it). Ordered top to bottom of the face.
MOTIONS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("the brows rise", "the brows lower", (1, 2)),
    ("the brows draw together", "the brows relax", (4,)),
    ("the eyes widen", "the eyes settle", (5,)),
    ("the eyes narrow", "the eyes open again", (6, 7)),
    ("the nose wrinkles", "the nose smooths", (9, 10)),
    ("the mouth corners rise", "the mouth corners drop back", (12,)),
    ("one mouth corner tightens", "the mouth corner relaxes", (14,)),
    ("the mouth corners turn down", "the mouth corners lift back", (15,)),
    ("the chin pushes up", "the chin relaxes", (17,)),
    ("the lips stretch sideways", "the lips relax", (20,)),
    ("the lips press together", "the lips loosen", (23,)),
    ("the mouth opens", "the mouth closes", (25, 26)),
)
#: How a face that holds each motion's action units looks (the ``state`` kind's answers).
STATES: tuple[str, ...] = (
    "the brows are raised",
    "the brows are drawn together",
    "the eyes are wide",
    "the eyes are narrowed",
    "the nose is wrinkled",
    "the mouth corners are raised",
    "one mouth corner is tightened",
    "the mouth corners are turned down",
    "the chin is pushed up",
    "the lips are stretched",
    "the lips are pressed together",
    "the mouth is open",
)
#: The ``state`` kind's prompt and its answer for a face with no marked action unit.
STATE_PROMPT = "Describe the person's face."
RELAXED = "the face is relaxed."
#: An action unit at least this intense is described as held.
STATE_THRESHOLD = 0.3
#: A change smaller than this (AU intensity, 0–1) is not described.
MOTION_THRESHOLD = 0.12
#: The answer when no action unit moves by :data:`MOTION_THRESHOLD`.
NO_CHANGE = "no visible change."
#: At most this many motions per description (the largest ones).
MAX_MOTIONS = 3


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
    classes: tuple[str, ...] = field(default_factory=lambda: _synth_classes())


def _synth_classes() -> tuple[str, ...]:
    from emobench.data.synth.aus import SYNTH_LABELS

    return tuple(SYNTH_LABELS)


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


# --------------------------------------------------------------------------- descriptions


def _rate(idx: np.ndarray) -> float:
    """The rate of presented frames ``idx`` of a :data:`FPS` clip (as
    :func:`emobench.models.hf.options.effective_fps` computes it)."""
    idx = np.asarray(idx)
    if len(idx) < 2:
        return FPS
    return FPS * len(idx) / (int(idx.max() - idx.min()) + 1)


def describe_motion(aus: np.ndarray) -> str:
    """A short description of how the face moves across frames, from their AU intensities.

    ``aus`` is ``(T, 17)`` (columns as :data:`emobench.data.synth.aus.AUS`), one row per
    shown frame in order. For each motion of :data:`MOTIONS` the driving intensity (the
    largest of its AUs per frame) is followed: a rise of more than
    :data:`MOTION_THRESHOLD` from first to last frame "appears" ("the mouth corners
    rise"), a fall "goes away" ("the brows relax"), and a peak inside that exceeds both
    ends by the threshold is brief ("the mouth corners rise briefly"); blinks are left out
    (they carry no emotion). The :data:`MAX_MOTIONS` largest changes are named, in face
    order, joined by ``"; "``.
    """
    from emobench.data.synth.aus import AU_INDEX

    a = np.asarray(aus, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        return NO_CHANGE
    found: list[tuple[float, int, str]] = []
    for i, (up, down, units) in enumerate(MOTIONS):
        x = a[:, [AU_INDEX[u] for u in units]].max(axis=1)
        start, end, peak = x[0], x[-1], x.max()
        brief = peak - max(start, end)
        if brief > MOTION_THRESHOLD:
            found.append((brief, i, f"{up} briefly"))
        elif end - start > MOTION_THRESHOLD:
            found.append((end - start, i, up))
        elif start - end > MOTION_THRESHOLD:
            found.append((start - end, i, down))
    if not found:
        return NO_CHANGE
    top = sorted(found, key=lambda f: -f[0])[:MAX_MOTIONS]
    return "; ".join(text for _, _, text in sorted(top, key=lambda f: f[1])) + "."


def describe_state(aus: np.ndarray) -> str:
    """What one face shows, from its AU vector ``(17,)``: the :data:`STATES` phrase of
    every motion whose driving intensity is at least :data:`STATE_THRESHOLD` (the
    :data:`MAX_MOTIONS` strongest, in face order), or :data:`RELAXED`. No emotion words:
    this teaches what to look at, not which class it is."""
    from emobench.data.synth.aus import AU_INDEX

    a = np.asarray(aus, dtype=np.float64).reshape(-1)
    found = []
    for i, (_, _, units) in enumerate(MOTIONS):
        v = max(a[AU_INDEX[u]] for u in units)
        if v >= STATE_THRESHOLD:
            found.append((v, i))
    if not found:
        return RELAXED
    top = sorted(found, key=lambda f: -f[0])[:MAX_MOTIONS]
    return "; ".join(STATES[i] for _, i in sorted(top, key=lambda f: f[1])) + "."


# --------------------------------------------------------------------------- prompts


def question_text(options: list[str]) -> str:
    """The ``hf:`` family's default prompt for ``options`` (question, options, instruction):
    the same text :meth:`emobench.models.chat.ChatPromptMixin.prompt_text` builds."""
    from emobench.chat.request import DEFAULT_INSTRUCTION, DEFAULT_QUESTION

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


# --------------------------------------------------------------------------- examples


class Corpus:
    """The seeded stream of pre-training examples (module docstring).

    ``example(i)`` is a pure function of ``(cfg.seed, i)``; ``render=False`` skips the
    faces (texts only, for training the tokenizer and for counting caption statistics).
    """

    def __init__(self, cfg: CorpusConfig | None = None) -> None:
        from emobench.labels import EMOTION_WORDS
        from emobench.models.openclip.webpool import mention_probabilities, word_frequencies

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
        from emobench.data.synth.aus import N_AUS, prototype_vector
        from emobench.data.synth.faces import render_frames, sample_identity
        from emobench.video.frames import centre_crop

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
        from emobench.data.synth.aus import N_AUS, prototype_vector

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
        from emobench.data.synth.timeline import make_timeline

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
        from emobench.video.sampling import segment_centres

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
        from emobench.chat.msce import BETWEEN_PREFIX
        from emobench.video.sampling import between_indices, segment_centres

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
        from emobench.chat.msce import DEFAULT_DESCRIBE_PROMPT
        from emobench.video.sampling import between_indices, segment_centres

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
        from emobench.data.synth.faces import render_frames, sample_identity
        from emobench.video.frames import centre_crop

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
        from emobench.chat.msce import BETWEEN_PREFIX, DEFAULT_DESCRIBE_PROMPT
        from emobench.labels import EMOTION_WORDS

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


__all__ = [
    "CAPTION_PROMPT",
    "MOTIONS",
    "NO_CHANGE",
    "Corpus",
    "CorpusConfig",
    "Example",
    "describe_motion",
    "draw_options",
    "question_text",
]
