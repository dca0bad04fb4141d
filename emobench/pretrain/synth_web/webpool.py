"""The synthetic "web" image pool of the ``emobench-tiny@synth-web`` pre-training: rendered
faces with captions whose emotion words follow English word frequencies. The recipe is
:mod:`.config`, the training on this pool :mod:`.train`; the tiny VLM's corpus
(:mod:`emobench.pretrain.synth_vlm.corpus`) draws its captions here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emobench.data.synth.aus import N_AUS, prototype_vector
from emobench.data.synth.faces import render_frames, sample_identity
from emobench.labels import EMOTION_WORDS
from emobench.pretrain.synth_web.config import PretrainConfig
from emobench.progress import ProgressFn
from emobench.video.frames import centre_crop

#: First entry of every web-pool seed sequence: keeps web identities off the benchmark's.
WEB_STREAM = 0x5EB


# --------------------------------------------------------------------------- captions


def word_frequencies(classes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """English word frequency (``wordfreq``) of every emotion word of every class."""
    from wordfreq import word_frequency

    return {c: {w: float(word_frequency(w, "en")) for w in EMOTION_WORDS[c]} for c in classes}


def mention_probabilities(
    freqs: dict[str, dict[str, float]], mention_rate: float
) -> dict[str, float]:
    """P(a caption names the face's emotion) per class: ``mention_rate · F_c / max F``."""
    totals = {c: sum(ws.values()) for c, ws in freqs.items()}
    top = max(totals.values()) or 1.0
    return {c: mention_rate * t / top for c, t in totals.items()}


#: Caption templates. They describe nothing but the emotion: captions that also named hair,
#: clothes and background let the tiny model lower the loss with identity alone (an earlier
#: recipe: its image tower did not encode expression at all; see the card).
_TEMPLATES_EMO = (
    "a photo of a {e} person.",
    "a {e} face.",
    "this person looks {e}.",
    "a close-up of a {e} face.",
)
_TEMPLATES_PLAIN = (
    "a photo of a person.",
    "a face.",
    "a close-up of a face.",
    "a person.",
)


def make_caption(
    label: str,
    rng: np.random.Generator,
    freqs: dict[str, dict[str, float]],
    mention: dict[str, float],
    noise_rate: float,
) -> tuple[str, str | None, bool]:
    """One web caption for a face of ``label``: (text, emotion word or None, noisy?)."""
    word: str | None = None
    if rng.random() < mention[label]:
        ws = freqs[label]
        p = np.array(list(ws.values()))
        word = str(rng.choice(list(ws), p=p / p.sum()))
    noisy = bool(rng.random() < noise_rate)
    if noisy:
        all_words = [(w, f) for ws in freqs.values() for w, f in ws.items()]
        p = np.array([f for _, f in all_words])
        word = all_words[int(rng.choice(len(all_words), p=p / p.sum()))][0]
    templates = _TEMPLATES_EMO if word else _TEMPLATES_PLAIN
    text = templates[int(rng.integers(len(templates)))].format(e=word)
    return text, word, noisy


# --------------------------------------------------------------------------- images


def web_identity_rng(seed: int, identity: int) -> np.random.Generator:
    """Generator of web identity ``identity`` (disjoint stream from the benchmark's)."""
    return np.random.default_rng([WEB_STREAM, 1, seed, identity])


def build_web_pool(
    cfg: PretrainConfig, progress: ProgressFn | None = None
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Render the image pool and its captions.

    Returns uint8 images (N, S, S, 3) at ``cfg.image_size``, captions, and statistics
    (images per class, captions naming each word, noisy / no-emotion shares).
    """
    import torch
    import torch.nn.functional as F

    freqs = word_frequencies(cfg.classes)
    mention = mention_probabilities(freqs, cfg.mention_rate)
    protos = np.stack([prototype_vector(c) for c in cfg.classes])
    k = cfg.images_per_identity
    images = np.empty((cfg.n_images, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    captions: list[str] = []
    labels: list[str] = []
    words: dict[str, int] = {}
    n_noisy = n_plain = 0
    for i in range(cfg.n_identities):
        rng = web_identity_rng(cfg.seed, i)
        ident = sample_identity(rng)
        cls = rng.integers(len(cfg.classes), size=k)
        intensity = rng.uniform(0.4, 1.0, size=(k, 1))
        aus = protos[cls] * intensity
        jitter = rng.uniform(0.0, 0.15, size=(k, N_AUS)) * (rng.random((k, N_AUS)) < 0.15)
        aus = np.clip(aus + jitter, 0.0, 1.0).astype(np.float32)
        poses = np.column_stack(
            [rng.uniform(-0.03, 0.03, k), rng.uniform(-0.03, 0.03, k), rng.uniform(-4, 4, k)]
        ).astype(np.float32)
        illums = rng.uniform(0.85, 1.15, k).astype(np.float32)
        frames = render_frames(ident, aus, cfg.render_size, poses, illums, rng=rng)
        frames = centre_crop(frames, cfg.crop)
        if frames.shape[1] != cfg.image_size:
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
            x = F.interpolate(
                x, size=(cfg.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
            frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        images[i * k : (i + 1) * k] = frames
        for c in cls:
            label = cfg.classes[int(c)]
            text, word, noisy = make_caption(label, rng, freqs, mention, cfg.noise_rate)
            captions.append(text)
            labels.append(label)
            n_noisy += noisy
            if word is None:
                n_plain += 1
            else:
                words[word] = words.get(word, 0) + 1
        if progress is not None and (i + 1) % 50 == 0:
            progress(i + 1, cfg.n_identities, {"phase": "render"})
    stats = {
        "n_images": len(captions),
        "images_per_class": {c: labels.count(c) for c in cfg.classes},
        "mention_probability": {c: round(p, 4) for c, p in mention.items()},
        "captions_per_word": dict(sorted(words.items(), key=lambda kv: -kv[1])),
        "share_no_emotion_word": n_plain / len(captions),
        "share_noisy": n_noisy / len(captions),
        "examples": captions[:5],
    }
    return images, captions, stats


__all__ = [
    "WEB_STREAM",
    "build_web_pool",
    "make_caption",
    "mention_probabilities",
    "web_identity_rng",
    "word_frequencies",
]
