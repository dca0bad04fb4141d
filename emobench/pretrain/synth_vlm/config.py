"""The recipe of ``emobench-tiny-vlm``, a tiny Qwen2.5-VL pre-trained here on the synthetic
web corpus (:class:`PretrainConfig`), and where the shipped model lives.

Recipe (the card ``emobench/models/weights/emobench-tiny-vlm/README.md`` gives its figures):

1. A byte-level BPE tokenizer is trained on the texts of the first ``tokenizer_examples``
   corpus examples plus every label, emotion word and fixed prompt
   (:meth:`.corpus.Corpus.texts`).
2. A fresh tiny Qwen2.5-VL (:mod:`.build`) is trained with next-token
   cross-entropy on the answers only (prompt, visual and padding tokens are masked), on a
   stream of ``steps × batch_size`` never-repeated examples
   (:class:`.corpus.Corpus`): captions, questions, MSCE stage-2
   questions and gap descriptions. Each batch goes through the model's own processor and
   chat template exactly as the ``hf:`` family sends a request (same prompt text, videos
   with ``do_sample_frames=False`` and the presented frames' rate), so what the model sees
   in training is what it sees in the benchmark.
3. AdamW, linear warm-up then cosine decay, no weight decay on norms, biases and embeddings.
   CPU, seeded: the same seed and settings give bit-identical weights on the same torch
   build and thread count.

:func:`.command.pretrain_synth_vlm` writes the folder (``config.json``,
``generation_config.json``, ``model.safetensors``, tokenizer, processor and chat template,
``recipe.json`` and a card ``README.md``); ``hf:<folder>`` loads it like any downloaded
checkpoint. :func:`.evaluate.evaluate_zero_shot` measures it on a synth test split through
the ``hf:`` family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from emobench.errors import PretrainError
from emobench.models.openclip.weights import WEIGHTS_DIR
from emobench.pretrain.synth_vlm.build import ArchConfig
from emobench.pretrain.synth_vlm.corpus import CorpusConfig

NAME = "emobench-tiny-vlm"
#: The shipped model folder (``hf:emobench/models/weights/emobench-tiny-vlm`` from a checkout).
SHIPPED_DIR = WEIGHTS_DIR / NAME


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of the pre-training (defaults: the shipped model)."""

    seed: int = 0
    steps: int = 1400
    batch_size: int = 16
    lr: float = 1.5e-3
    warmup: int = 60
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    tokenizer_examples: int = 4000
    #: stage 1, vision distillation from the tiny CLIP (:func:`distill_vision`): steps,
    #: web identities per step, faces (distinct expressions) per identity, peak lr
    distill_steps: int = 800
    distill_groups: int = 4
    distill_group: int = 16
    distill_lr: float = 2e-3
    #: the teacher's open_clip weights file ("": the shipped emobench-tiny@synth-web)
    teacher: str = ""
    #: stage 2 trains the vision tower and merger too (false: frozen after stage 1)
    train_vision: bool = False
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "warmup": self.warmup >= 0,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip > 0,
            "tokenizer_examples": self.tokenizer_examples >= 1,
            "distill_steps": self.distill_steps >= 0,
            "distill_groups": self.distill_groups >= 1,
            "distill_group": self.distill_group >= 2,
            "distill_lr": self.distill_lr > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise PretrainError(
                "bad pre-training setting(s): "
                + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )
        if self.corpus.seed != self.seed:
            object.__setattr__(self, "corpus", replace(self.corpus, seed=self.seed))


__all__ = ["NAME", "SHIPPED_DIR", "PretrainConfig"]
