"""The recipe of the synthetic "web" pre-training of ``emobench-tiny``, emobench's default
contrastive VLM (:class:`PretrainConfig`), and the names of the files it writes.

Recipe (the model card ``emobench/models/weights/emobench-tiny-synth-web.md`` gives its
figures):

* **Images**: a pool of generated faces (:mod:`emobench.data.synth.faces`) whose identities
  come from their own seed stream (``[WEB_STREAM, 1, seed, identity]``; the benchmark uses
  ``[seed, 1, subject]``), so no web identity is a benchmark subject. Each identity gets
  ``images_per_identity`` still images, each with one of the 11 synth expressions drawn
  uniformly, at intensity 0.4–1.0 plus small AU jitter, pose, light and sensor noise;
  rendered at ``render_size``, centre-cropped to ``crop`` pixels (the face from brows to
  chin, so that action units cover many pixels) and resized (antialiased) to the model's
  input size if needed. The weights record this as ``preprocess`` metadata, and the adapter
  prepares benchmark frames the same way.
* **Captions**: a short templated sentence ("a photo of a person."). With
  probability ``mention_rate · F_c / F_max`` it names the face's emotion, with ``F_c`` the
  summed English frequency (``wordfreq``) of that emotion's words and the word itself drawn
  in proportion to its frequency; so "happy" faces are captioned as happy far more often
  than disgusted ones are captioned "disgusted", as on the web. Otherwise the caption has
  no emotion word. A share ``noise_rate`` of captions is noisy: their emotion word is drawn
  from all emotion words by frequency, whatever the face shows (biased toward "happy",
  "afraid", "sad" ...).
* **Training**: open_clip's ``ClipLoss`` (symmetric InfoNCE) on batches of several faces of
  each of a few identities (``per_identity``), AdamW with cosine decay and warm-up, no
  weight decay on gains, biases, embeddings and the logit scale. CPU, seeded: the same
  seed gives the same weights on the same torch build.

The zero-shot classifier therefore inherits a word-frequency prior: the head-class bias the
study attributes to web-scale pre-training.
:func:`~emobench.pretrain.synth_web.command.pretrain_synth_web` writes the weights (float16
safetensors, a few MB) and a card;
:func:`~emobench.pretrain.synth_web.evaluate.evaluate_zero_shot` measures UAR/WAR on a synth
test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emobench.data.synth.aus import SYNTH_LABELS
from emobench.errors import PretrainError
from emobench.models.openclip.weights import WEIGHTS_DIR

ARCH = "emobench-tiny"
TAG = "synth-web"
WEIGHTS_NAME = "emobench-tiny-synth-web.safetensors"
CARD_NAME = "emobench-tiny-synth-web.md"
#: Where the shipped weights and card live (the command's default ``--out``).
SHIPPED_DIR = WEIGHTS_DIR


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of the synthetic web pre-training (defaults: the shipped weights)."""

    seed: int = 0
    n_identities: int = 1000
    images_per_identity: int = 16
    image_size: int = 64
    render_size: int = 112
    crop: int = 64
    mention_rate: float = 0.9
    noise_rate: float = 0.15
    steps: int = 1200
    batch_size: int = 128
    per_identity: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 50
    classes: tuple[str, ...] = field(default_factory=lambda: tuple(SYNTH_LABELS))

    def __post_init__(self) -> None:
        checks = {
            "n_identities": self.n_identities >= 1,
            "images_per_identity": self.images_per_identity >= 1,
            "image_size": self.image_size >= 16,
            "render_size": self.render_size >= 16 and self.render_size % 2 == 0,
            "crop": 0 <= self.crop <= self.render_size and self.crop % 2 == 0,
            "mention_rate": 0.0 <= self.mention_rate <= 1.0,
            "noise_rate": 0.0 <= self.noise_rate <= 1.0,
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 2,
            "per_identity": self.per_identity >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup": self.warmup >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise PretrainError(
                "bad pre-training setting(s): "
                + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )

    @property
    def n_images(self) -> int:
        return self.n_identities * self.images_per_identity

    @property
    def preprocess(self) -> dict[str, int]:
        """How benchmark frames must be prepared to look like the web pool: decode at
        ``frame_size`` (the render size), centre-crop ``crop`` pixels (0: none)."""
        return {"frame_size": self.render_size, "crop": self.crop}


__all__ = ["ARCH", "CARD_NAME", "SHIPPED_DIR", "TAG", "WEIGHTS_NAME", "PretrainConfig"]
