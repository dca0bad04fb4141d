"""Pre-training ``emobench-tiny-vlm``: a tiny Qwen2.5-VL trained here on the synthetic web corpus.

Recipe (the card ``emobench/models/weights/emobench-tiny-vlm/README.md`` gives its figures):

1. A byte-level BPE tokenizer is trained on the texts of the first ``tokenizer_examples``
   corpus examples plus every label, emotion word and fixed prompt
   (:meth:`emobench.models.synthvlm.corpus.Corpus.texts`).
2. A fresh tiny Qwen2.5-VL (:mod:`emobench.models.synthvlm.build`) is trained with next-token
   cross-entropy on the answers only (prompt, visual and padding tokens are masked), on a
   stream of ``steps × batch_size`` never-repeated examples
   (:class:`~emobench.models.synthvlm.corpus.Corpus`): captions, questions, MSCE stage-2
   questions and gap descriptions. Each batch goes through the model's own processor and
   chat template exactly as the ``hf:`` family sends a request (same prompt text, videos
   with ``do_sample_frames=False`` and the presented frames' rate), so what the model sees
   in training is what it sees in the benchmark.
3. AdamW, linear warm-up then cosine decay, no weight decay on norms, biases and embeddings.
   CPU, seeded: the same seed and settings give bit-identical weights on the same torch
   build and thread count.

:func:`pretrain_synth_vlm` writes the folder (``config.json``, ``generation_config.json``,
``model.safetensors``, tokenizer, processor and chat template, ``recipe.json`` and a card
``README.md``); ``hf:<folder>`` loads it like any downloaded checkpoint.
:func:`evaluate_zero_shot` measures it on a synth test split through the ``hf:`` family.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import PretrainError
from emobench.models.synthvlm.build import ArchConfig
from emobench.models.synthvlm.corpus import Corpus, CorpusConfig, Example
from emobench.progress import ProgressFn

NAME = "emobench-tiny-vlm"
#: The shipped model folder (``hf:emobench/models/weights/emobench-tiny-vlm`` from a checkout).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights" / NAME


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
            object.__setattr__(self, "corpus", _with_seed(self.corpus, self.seed))


def _with_seed(c: CorpusConfig, seed: int) -> CorpusConfig:
    from dataclasses import replace

    return replace(c, seed=seed)


# --------------------------------------------------------------------------- batches


def encode_batch(processor: Any, examples: list[Example]) -> tuple[Any, int]:
    """The processor's training batch for ``examples`` (right-padded) with ``labels``:
    the answer tokens and the closing ``<|im_end|>``, everything else -100.

    The prompt is rendered with the chat template and processed exactly as
    :meth:`emobench.models.hf.adapter.HFModel.encode` does it; the answer ids are those
    the tokenizer gives the answer alone (what ``loglik`` scores), appended after the
    prompt's ``assistant\\n``. Returns the batch and its number of answer tokens.
    """
    import torch

    from emobench.models.hf.options import chat_inputs

    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    texts, images, videos, metas, answers = [], [], [], [], []
    for ex in examples:
        prompt, imgs, vids, ms = chat_inputs(processor, ex.content, ex.fps)
        texts.append(prompt + ex.answer + "<|im_end|>")
        answers.append([*tok(ex.answer, add_special_tokens=False)["input_ids"], end])
        images.append(imgs)
        videos += vids
        metas += ms
    kw: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
    if any(images):
        kw["images"] = images
    if videos:
        kw.update(videos=videos, video_metadata=metas, do_sample_frames=False)
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = processor(**kw)
    finally:
        tok.padding_side = side
    ids = enc["input_ids"]
    labels = torch.full_like(ids, -100)
    lengths = enc["attention_mask"].sum(1).tolist()
    for b, (ans, n) in enumerate(zip(answers, lengths, strict=True)):
        got = ids[b, n - len(ans) : n].tolist()
        if got != ans:  # the joint tokenization must split where the answer starts
            raise PretrainError(f"answer tokens differ in context: {got} vs {ans}")
        labels[b, n - len(ans) : n] = ids[b, n - len(ans) : n]
    enc["labels"] = labels
    return enc, sum(len(a) for a in answers)


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: decayed matrices, and norms, biases and
    embeddings without weight decay."""
    groups: dict[bool, list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "embed_tokens" in name or "bias" in name
        groups.setdefault(not skip, []).append(p)
    return [
        {"params": ps, "weight_decay": weight_decay if decay else 0.0}
        for decay, ps in sorted(groups.items())
    ]


# --------------------------------------------------------------------------- vision distillation


def _pooled(merged: Any, grid_thw: Any) -> Any:
    """Mean of each visual item's merged tokens: ``(items, hidden)`` from the vision
    tower's ``pooler_output`` (tokens of all items, in order) and its ``grid_thw``."""
    import torch

    sizes = (grid_thw.prod(-1) // 4).tolist()
    return torch.stack([t.mean(0) for t in torch.split(merged, sizes)])


class Teacher:
    """The tiny CLIP (``openclip:emobench-tiny@synth-web`` or ``weights``) as a frozen
    image encoder: L2-normalised embeddings of uint8 faces, preprocessed as the
    ``openclip:`` family does (resize to its image size, CLIP mean / std)."""

    def __init__(self, weights: str | None = None) -> None:
        from emobench.models.openclip.weights import (
            SHIPPED,
            WEIGHTS_DIR,
            load_openclip,
            pixel_normalisation,
        )

        path = weights or str(WEIGHTS_DIR / SHIPPED[("emobench-tiny", "synth-web")])
        if not Path(path).is_file():
            raise PretrainError(f"distillation teacher {path}: no such file")
        self.model, _ = load_openclip("emobench-tiny", path)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.size, self.mean, self.std = pixel_normalisation(self.model, 64)
        #: embedding width
        self.dim = int(self.embed(np.zeros((1, self.size, self.size, 3), np.uint8)).shape[1])

    def embed(self, faces: np.ndarray) -> Any:
        """``(n, embed_dim)`` unit embeddings of uint8 faces ``(n, H, W, 3)``."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size,) * 2, mode="bilinear", antialias=True)
        with torch.no_grad():
            return F.normalize(self.model.encode_image((x - self.mean) / self.std), dim=-1)


def distill_loss(student: Any, teacher: Any, group: int) -> Any:
    """Cosine distance between student and teacher embeddings plus the squared error of
    the same embeddings centred per identity group (rows ``[k·group, (k+1)·group)``
    show one identity), relative to the teacher's centred energy.

    The first term alone is matched within a few dozen steps by copying what every face
    shares (identity, lighting) and leaves the expression directions, a small part of
    the teacher's variance, unlearnt (a probe on the student stayed at chance); the
    centred term is the expression part alone."""
    import torch.nn.functional as F

    s = F.normalize(student, dim=-1)
    cos = (1.0 - (s * teacher).sum(-1)).mean()
    sc = s.view(-1, group, s.shape[-1])
    tc = teacher.view(-1, group, teacher.shape[-1])
    sc = sc - sc.mean(1, keepdim=True)
    tc = tc - tc.mean(1, keepdim=True)
    rel = ((sc - tc) ** 2).sum(-1).mean() / (tc**2).sum(-1).mean().clamp(min=1e-8)
    return cos + rel


def distill_vision(
    model: Any,
    processor: Any,
    corpus: Corpus,
    cfg: PretrainConfig,
    progress: ProgressFn | None = None,
) -> dict[str, list[float]]:
    """Stage 1: the vision tower and merger learn the tiny CLIP's image embedding (through
    a linear map of their mean-pooled outputs, discarded afterwards) on still web faces,
    ``distill_groups`` identities × ``distill_group`` expressions per step
    (:meth:`Corpus.still_group`), loss :func:`distill_loss`. The LM is untouched.

    This is how real VLMs get their eyes: Qwen-VL's and LLaVA's vision towers start from
    CLIP-style encoders pre-trained on web captions, so the tiny CLIP's word-frequency
    skew comes along. A from-scratch tower trained by the LM's answer loss (the first
    shipped model) or by a classifier on caption words learnt identities, not
    expressions (probe UAR 0.16–0.18 on the quickstart, chance 0.14)."""
    import torch

    teacher = Teacher(cfg.teacher or None)
    visual = model.model.visual
    head = torch.nn.Linear(cfg.arch.hidden_size, teacher.dim)
    params = list(visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.distill_lr, betas=(0.9, 0.98), weight_decay=0.01)
    hist: dict[str, list[float]] = {"step": [], "loss": []}
    run: list[float] = []
    k = 0
    for step in range(cfg.distill_steps):
        faces: list[np.ndarray] = []
        for _ in range(cfg.distill_groups):
            group, _ = corpus.still_group(k, cfg.distill_group)
            k += 1
            faces += group
        target = teacher.embed(np.stack(faces))
        px = processor.image_processor(images=faces, return_tensors="pt")
        out = visual(px["pixel_values"], grid_thw=px["image_grid_thw"])
        loss = distill_loss(
            head(_pooled(out.pooler_output, px["image_grid_thw"])), target, cfg.distill_group
        )
        t = (step + 1) / cfg.distill_steps  # warm-up over 10%, cosine to 0
        for g in opt.param_groups:
            g["lr"] = cfg.distill_lr * min(1.0, 10 * t) * 0.5 * (1 + math.cos(math.pi * t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        run.append(float(loss.detach()))
        if (step + 1) % 10 == 0 or step + 1 == cfg.distill_steps:
            hist["step"].append(step + 1)
            hist["loss"].append(float(np.mean(run)))
            run = []
            if progress is not None:
                progress(
                    step + 1, cfg.distill_steps, {"phase": "distill", "loss": hist["loss"][-1]}
                )
    return hist


def lr_at(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(t, 1.0)))


# --------------------------------------------------------------------------- training


def train(cfg: PretrainConfig, progress: ProgressFn | None = None) -> tuple[Any, Any, dict]:
    """Tokenizer, processor and a trained model for ``cfg`` (CPU; module docstring).

    Returns ``(model, processor, history)``; ``history`` holds the mean loss per answer
    token every 10 steps (``step``, ``loss``), per kind (``loss_by_kind``: the last 100
    steps' mean per kind), the examples seen per kind and the seconds spent.
    """
    import torch

    from emobench.models.synthvlm.build import build_model, build_processor, train_tokenizer

    started = time.perf_counter()
    corpus = Corpus(cfg.corpus)
    if progress is not None:
        progress(0, cfg.steps, {"phase": "tokenizer"})
    tokenizer = train_tokenizer(corpus.texts(cfg.tokenizer_examples), cfg.arch.vocab_size)
    processor = build_processor(tokenizer, cfg.arch)
    model = build_model(tokenizer, cfg.arch, cfg.seed)
    history: dict[str, Any] = {"step": [], "loss": [], "examples_per_kind": {}}
    recent: dict[str, list[float]] = {}
    seen: dict[str, int] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model.train()
        if cfg.distill_steps:
            history["distill"] = distill_vision(model, processor, corpus, cfg, progress)
        if not cfg.train_vision:
            model.model.visual.requires_grad_(False)
        opt = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8
        )
        running: list[float] = []
        for step in range(cfg.steps):
            first = step * cfg.batch_size
            batch = [corpus.example(first + j) for j in range(cfg.batch_size)]
            enc, _ = encode_batch(processor, batch)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            out = model(**enc)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            running.append(float(out.loss.detach()))
            if step >= cfg.steps - 100:
                _per_kind_loss(out.logits.detach(), enc["labels"], batch, recent)
            for ex in batch:
                seen[ex.kind] = seen.get(ex.kind, 0) + 1
            if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
                history["step"].append(step + 1)
                history["loss"].append(float(np.mean(running)))
                running = []
                if progress is not None:
                    progress(step + 1, cfg.steps, {"phase": "train", "loss": history["loss"][-1]})
        model.model.visual.requires_grad_(True)
    model.eval()
    history["loss_by_kind"] = {k: float(np.mean(v)) for k, v in sorted(recent.items())}
    history["examples_per_kind"] = dict(sorted(seen.items()))
    history["seconds"] = time.perf_counter() - started
    return model, processor, history


def _per_kind_loss(logits: Any, labels: Any, batch: list[Example], acc: dict) -> None:
    """Mean answer-token loss of each example, gathered by kind (for the card)."""
    import torch.nn.functional as F

    lg = logits[:, :-1].float()
    tg = labels[:, 1:]
    nll = F.cross_entropy(lg.transpose(1, 2), tg, ignore_index=-100, reduction="none")
    mask = (tg != -100).float()
    per = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
    for ex, v in zip(batch, per.tolist(), strict=True):
        acc.setdefault(ex.kind, []).append(v)


def save_folder(model: Any, processor: Any, out: Path) -> list[Path]:
    """``save_pretrained`` of model (float32 safetensors) and processor into ``out``,
    written to a temporary sibling folder first and moved in file by file, so a failed
    save never leaves a half-written model behind."""
    import shutil
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        model.save_pretrained(tmp)
        processor.tokenizer.padding_side = "left"
        processor.save_pretrained(tmp)
        for p in sorted(Path(tmp).iterdir()):
            target = out / p.name
            shutil.move(str(p), str(target))
            written.append(target)
    return written


# --------------------------------------------------------------------------- evaluation


def evaluate_zero_shot(
    folder: str | Path,
    root: str | Path,
    sampler: str = "uniform:8",
    modes: tuple[str, ...] = ("generate", "loglik"),
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Zero-shot UAR/WAR of the model in ``folder`` through the ``hf:`` family on a synth
    split (frames decoded at 112 px, ``sampler``), for each scoring mode in ``modes``
    (``generate``, ``loglik``, ``msce``: generate with MSCE enrichment, the model describing
    its own gaps): per-class recall, each class's share of the predictions, the invalid
    share (generate), and clips per second."""
    import polars as pl
    import torch

    from emobench.answers import parse_answer
    from emobench.data.registry import load_index
    from emobench.models.base import ClipInput, FitContext
    from emobench.models.hf.adapter import HFModel
    from emobench.video.frames import read_clip
    from emobench.video.sampling import between_indices, sample

    index = load_index("synth", Path(root))
    rows = index.filter(pl.col("split") == split).sort("clip_id")
    if limit is not None:
        rows = rows.head(limit)
    if rows.height == 0:
        raise PretrainError(f"{root}: no {split!r} clips to evaluate on")
    labels = sorted(set(rows["label"].to_list()))
    y = np.array([labels.index(lb) for lb in rows["label"].to_list()])
    clips: list[ClipInput] = []
    gap_clips: list[ClipInput] = []
    for r in rows.iter_rows(named=True):
        idx = sample(r["n_frames"], r["fps"], sampler, seed)
        frames = read_clip(r, idx, size=112)
        clips.append(ClipInput(r["clip_id"], frames, idx, float(r["fps"])))
        if "msce" in modes:
            gaps = [between_indices(a, b, 4) for a, b in zip(idx[:-1], idx[1:], strict=True)]
            between = [read_clip(r, g, size=112) if len(g) else frames[:0] for g in gaps]
            gap_clips.append(
                ClipInput(r["clip_id"], frames, idx, float(r["fps"]), "msce", between, gaps)
            )
    out: dict[str, Any] = {"split": split, "sampler": sampler, "n_clips": len(y), "labels": labels}
    for n, mode in enumerate(modes):
        scoring = "loglik" if mode == "loglik" else "generate"
        model = HFModel(
            str(Path(folder).resolve()),
            {"scoring": scoring, "batch_size": 16, "max_new_tokens": 4, "cache": False},
        )
        model.fit(
            FitContext(
                dataset="synth", fold=1, seed=seed, rebalancing="none", labels=labels,
                train_index=None, checkpoint_dir=Path("."), device=torch.device("cpu"),
                train_options={}, load_frames=None, load_features=None, cache_dir=None,
            )
        )  # fmt: skip
        todo = gap_clips if mode == "msce" else clips
        t0 = time.perf_counter()
        preds, invalid, contexts, scores = [], 0, [], []
        for s in range(0, len(todo), 16):
            for o in model.predict(todo[s : s + 16]):
                if o.scores is not None:
                    preds.append(int(np.argmax(o.scores)))
                    scores.append(np.asarray(o.scores, np.float64))
                else:
                    lb = parse_answer(o.text, labels)
                    invalid += lb not in labels
                    preds.append(labels.index(lb) if lb in labels else -1)
                if o.context and len(contexts) < 3:
                    contexts.append(o.context)
            if progress is not None:
                progress(min(s + 16, len(todo)), len(todo), {"phase": f"eval-{n}"})
        seconds = time.perf_counter() - t0
        pred = np.array(preds)
        recall = {lb: float(np.mean(pred[y == c] == c)) for c, lb in enumerate(labels)}
        out[mode] = {
            "uar": float(np.mean(list(recall.values()))),
            "war": float(np.mean(pred == y)),
            "recall": recall,
            "pred_share": {lb: float(np.mean(pred == c)) for c, lb in enumerate(labels)},
            "invalid_share": invalid / len(y),
            "clips_per_s": len(y) / seconds,
            "seconds": seconds,
        }
        if contexts:
            out[mode]["example_contexts"] = contexts
        if scores:  # is there class information under the prior? (estimated-prior correction)
            from emobench.longtail.prior_estimated import estimated_prior

            p2 = estimated_prior(np.stack(scores), None).argmax(1)
            rec2 = {lb: float(np.mean(p2[y == c] == c)) for c, lb in enumerate(labels)}
            out[mode]["estimated_prior"] = {
                "uar": float(np.mean(list(rec2.values()))),
                "war": float(np.mean(p2 == y)),
                "recall": rec2,
            }
    return out


# --------------------------------------------------------------------------- the command


def pretrain_synth_vlm(
    out: Path,
    cfg: PretrainConfig | None = None,
    eval_root: Path | None = None,
    eval_modes: tuple[str, ...] = ("generate", "loglik", "msce"),
    progress: ProgressFn | None = None,
    msce_limit: int | None = 100,
    spread: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train, write the model folder ``out`` (``save_pretrained`` files, ``recipe.json``,
    card ``README.md``) and, when ``eval_root`` holds a synth dataset, measure zero-shot
    UAR/WAR on its test split for the card; ``spread``: other seeds' figures
    (:func:`load_spread`) for the card's seed spread. Returns what the card reports."""
    import torch

    cfg = cfg or PretrainConfig()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainError(f"cannot create output folder {out}: {exc}") from None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: reproducible sums, and no spin-waiting on a busy CPU
    try:
        model, processor, hist = train(cfg, progress)
        info = _finish(out, cfg, model, processor, hist, wall0, cpu0)
        if eval_root is not None and (Path(eval_root) / "annotations.csv").is_file():
            plain = tuple(m for m in eval_modes if m != "msce")
            ev = evaluate_zero_shot(out, eval_root, modes=plain, progress=progress)
            if "msce" in eval_modes:  # MSCE describes every gap first: a subset keeps it short
                ms = evaluate_zero_shot(
                    out, eval_root, modes=("msce",), limit=msce_limit, progress=progress
                )
                ev["msce"] = {**ms["msce"], "n_clips": ms["n_clips"]}
            info["eval"] = ev
            info["eval_root"] = str(eval_root)
            info["spread"] = list(spread or [])
    finally:
        torch.set_num_threads(threads)
    from emobench.io import atomic_write_text, to_json

    atomic_write_text(out / "recipe.json", to_json({"config": asdict(cfg), **info}) + "\n")
    write_card(out / "README.md", cfg, info)
    return info


def _finish(
    out: Path,
    cfg: PretrainConfig,
    model: Any,
    processor: Any,
    hist: dict,
    wall0: float,
    cpu0: float,
) -> dict[str, Any]:
    """Save the folder; the training figures the card reports."""
    import hashlib

    import torch

    info: dict[str, Any] = {
        "history": hist,
        "seconds_wall": time.perf_counter() - wall0,
        "seconds_cpu": time.process_time() - cpu0,
        "final_loss": hist["loss"][-1],
        "first_loss": hist["loss"][0],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "torch": torch.__version__,
    }
    save_folder(model, processor, out)
    from emobench.io import atomic_write_text, to_json
    from emobench.models.hf.loading import PREPROCESS_FILE

    # how hf: shows benchmark frames to it: decoded at the render size, the face crop
    pre = {"frame_size": cfg.corpus.frame_size, "crop": cfg.corpus.crop}
    atomic_write_text(out / PREPROCESS_FILE, to_json({"preprocess": pre}) + "\n")
    weights = out / "model.safetensors"
    info["bytes"] = weights.stat().st_size
    info["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    info["caption_stats"] = Corpus(cfg.corpus).caption_stats(11000)
    return info


def write_card(path: Path, cfg: PretrainConfig, info: dict[str, Any]) -> Path:
    """The model card: what the model is, the recipe and data mix, timings, what it learns
    (zero-shot metrics, per-class recall and prediction shares) and how to regenerate it."""
    from emobench.io import atomic_write_text

    h = info["history"]
    mix = cfg.corpus.mix
    total = sum(mix.values())
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags: [emobench, synthetic, qwen2_5_vl]",
        "---",
        "",
        f"# {NAME}",
        "",
        "A tiny Qwen2.5-VL (transformers `Qwen2_5_VLForConditionalGeneration`, "
        f"{info['parameters'] / 1e6:.2f} M parameters, float32) that emobench pre-trains "
        'itself on synthetic "web" data, so that `emobench run` can show a *generative* VLM '
        "offline: `hf:<this folder>` loads it like any downloaded checkpoint "
        "(`AutoProcessor` / `AutoModelForImageTextToText`). Its tokenizer is a byte-level BPE "
        f"({cfg.arch.vocab_size} entries) trained in code on the corpus texts; chat template "
        "and processor are Qwen2.5-VL's. It looks at the face: `emobench.json` tells `hf:` to "
        f"decode frames at {cfg.corpus.frame_size} px and show the centre "
        f"{cfg.corpus.crop} px (brows to chin, as the tiny CLIP and the baselines see it), "
        f"which the processor resizes to {int(cfg.arch.max_pixels**0.5)} px: "
        f"{int(cfg.arch.max_pixels**0.5) // 28} × {int(cfg.arch.max_pixels**0.5) // 28} visual "
        "tokens per image or per 2 video frames.",
        "",
        "It is a diagnostic toy, not an emotion recogniser: it shows *how* a web-style "
        "word-frequency skew in pre-training turns into head-class bias, on a benchmark "
        "where the ground truth is total. Its eyes come from the tiny CLIP "
        "(`openclip:emobench-tiny@synth-web`), distilled into its vision tower, as real "
        "VLMs start from CLIP-style encoders.",
        "",
        "Regenerate (CPU; same seed and torch build give bit-identical weights):",
        "",
        "```",
        f"emobench pretrain synth-vlm --out DIR --seed {cfg.seed} --steps {cfg.steps}"
        + (
            f" --distill-steps {cfg.distill_steps}"
            if cfg.distill_steps != PretrainConfig.distill_steps
            else ""
        )
        + (" --spread SEED1_DIR --spread SEED2_DIR" if info.get("spread") else ""),
        "```",
        "",
        "## Data (synthetic web corpus, `emobench/models/synthvlm/corpus.py`)",
        "",
        f"Faces from the synth renderer at {cfg.corpus.frame_size} px, centre-cropped to "
        f"{cfg.corpus.crop} px, identities from the web pool's seed stream (disjoint from "
        "the benchmark's subjects); every example is new (no epochs).",
        "",
        "| kind | share | user turn → answer |",
        "|---|---|---|",
        f'| caption | {mix.get("caption", 0) / total:.0%} | one face + "Write a short caption '
        'for this photo." → web caption; names the emotion with probability '
        "0.9 · F_c / F_max (English `wordfreq` frequency of the class's words), noisy "
        "(frequent word whatever the face) 15% |",
        f"| qa | {mix.get('qa', 0) / total:.0%} | 2–16-frame video + the `hf:` family's "
        "default question, options and one-word instruction → the class named by the "
        "clip's web caption; clips whose caption names no emotion are not asked about |",
        f"| state | {mix.get('state', 0) / total:.0%} | one face + \"Describe the person's "
        'face." → the action units it holds, in words (no emotion words) |',
        f"| msce | {mix.get('msce', 0) / total:.0%} | MSCE stage 2: keyframes as images "
        'interleaved with "Between these frames: <description>" + the question → as qa |',
        f"| describe | {mix.get('describe', 0) / total:.0%} | an MSCE gap (keyframe, 4 "
        "in-between frames, keyframe; video) + MSCE's describe prompt → a motion "
        "description generated from those frames' action units |",
        "",
        'Answers seen per class follow word frequency, so "happiness" dominates and '
        '"disgust" / "contempt" are almost never answered: the mechanism the study '
        "names for web-scale pre-training.",
        "",
        "Caption statistics (own-emotion mention rate per class, "
        f"{info['caption_stats']['draws_per_class']} draws each):",
        "",
        "| class | mention rate |",
        "|---|---|",
    ]
    for c, r in info["caption_stats"]["own_mention_rate"].items():
        lines.append(f"| {c} | {r:.3f} |")
    lines += ["", "## Training", ""]
    d = h.get("distill")
    if cfg.distill_steps and d:
        lines += [
            f"- stage 1, vision distillation: {cfg.distill_steps} steps × "
            f"{cfg.distill_groups * cfg.distill_group} still faces ({cfg.distill_groups} web "
            f"identities × {cfg.distill_group} expressions); the vision tower and merger, "
            "through a linear map of their mean-pooled outputs (discarded afterwards), learn "
            "the tiny CLIP's image embedding: cosine distance plus the squared error of the "
            "embeddings centred per identity (the expression part), relative to the "
            f"teacher's; AdamW lr {cfg.distill_lr}, warm-up 10%, cosine. Loss "
            f"{d['loss'][0]:.3f} → {d['loss'][-1]:.3f}.",
            "- stage 2, language model"
            + ("" if cfg.train_vision else " (vision tower and merger frozen)")
            + ":",
        ]
    lines += [
        f"- {cfg.steps} steps × batch {cfg.batch_size} = {cfg.steps * cfg.batch_size} "
        f"examples ({', '.join(f'{k} {v}' for k, v in h['examples_per_kind'].items())})",
        f"- AdamW lr {cfg.lr}, warm-up {cfg.warmup}, cosine, weight decay "
        f"{cfg.weight_decay}, grad clip {cfg.grad_clip}; loss on answer tokens only",
        f"- answer-token loss {info['first_loss']:.3f} (first 10 steps) → "
        f"{info['final_loss']:.3f} (last 10); last 100 steps by kind: "
        + ", ".join(f"{k} {v:.3f}" for k, v in h["loss_by_kind"].items()),
        f"- time: {info['seconds_wall']:.0f} s wall, {info['seconds_cpu']:.0f} s CPU "
        f"(1 torch thread; torch {info['torch']})",
        f"- weights: `model.safetensors`, {info['bytes'] / 1e6:.1f} MB, sha256 prefix "
        f"`{info['sha256']}`",
        *_spread_lines(info),
        "",
    ]
    ev = info.get("eval")
    if ev:
        modes = [m for m in ("generate", "loglik", "msce") if m in ev]
        lines += [
            "## Zero-shot on the synth quickstart test split",
            "",
            f"Data `{info.get('eval_root')}`, {ev['n_clips']} clips, sampler "
            f"`{ev['sampler']}`, frames decoded at 112 px, video input, `hf:` defaults "
            "(fixed option order; `msce`: generate with MSCE enrichment, 4 gap frames, the "
            "model describing its own gaps). Chance UAR is "
            f"{1 / len(ev['labels']):.3f}.",
            "",
            "| scoring | clips | UAR | WAR | invalid answers | clips/s (eval, 1 thread) |",
            "|---|---|---|---|---|---|",
        ]
        for m in modes:
            e = ev[m]
            lines.append(
                f"| {m} | {e.get('n_clips', ev['n_clips'])} | {e['uar']:.3f} | {e['war']:.3f} "
                f"| {e['invalid_share']:.3f} | {e['clips_per_s']:.1f} |"
            )
        lines += ["", "| class | " + " | ".join(f"recall / share ({m})" for m in modes) + " |"]
        lines.append("|---|" + "---|" * len(modes))
        for lb in ev["labels"]:
            cells = [
                f"{ev[m]['recall'][lb]:.2f} / {ev[m]['pred_share'][lb]:.2f}"
                if lb in ev[m]["recall"]
                else "– (not in the subset)"
                for m in modes
            ]
            lines.append(f"| {lb} | " + " | ".join(cells) + " |")
        ep = ev.get("loglik", {}).get("estimated_prior")
        if ep:
            lines += [
                "",
                f"loglik with the `estimated-prior` correction: UAR {ep['uar']:.3f}, "
                f"WAR {ep['war']:.3f} (recall: "
                + ", ".join(f"{k} {v:.2f}" for k, v in ep["recall"].items())
                + ").",
            ]
        lines += ["", "### What it learns and does not", ""] + _findings(ev)
        ctx = ev.get("msce", {}).get("example_contexts")
        if ctx:
            lines += ["", "Example MSCE descriptions (stage 1, by this model):", "", "```"]
            lines += ctx[:1]
            lines += ["```"]
        lines.append("")
    else:
        lines += ["## Zero-shot metrics", "", "Not measured (no synth dataset given).", ""]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


#: What earlier recipes measured (the card keeps it: what did not work, and why).
HISTORY_NOTE = (
    "Earlier recipes that did not read faces (UAR at chance, every answer 'happiness'): a "
    "vision tower trained from scratch by the answer loss alone (1400 × 16 and 2800 × 8 "
    "steps, with or without the `state` kind); a vision-alignment stage (a classifier on "
    "the caption's emotion word, identity-centred); and distillation without the `state` "
    "kind (a linear probe on its pooled video features reached UAR 0.35, but the language "
    "model did not attend to them: its attention from the answer to the visual tokens "
    "stayed at their share of the sequence, even with true, class-balanced answers). "
    "Describing each face's action units in words (`state`) is what taught the language "
    "model to read the visual tokens."
)


def _spread_lines(info: dict[str, Any]) -> list[str]:
    """The card's seed-spread line: this model's and the other seeds' zero-shot UAR."""
    spread = info.get("spread") or []
    ev = info.get("eval") or {}
    if not spread or not ev:
        return ["- seed spread: not measured (one seed trained at this budget)"]
    lines = [f"- seed spread (same recipe, seeds {', '.join(str(x['seed']) for x in spread)}):"]
    for m in ("generate", "loglik"):
        if m not in ev:
            continue
        vals = [ev[m]["uar"]] + [x["eval"][m]["uar"] for x in spread if m in x["eval"]]
        lines.append(
            f"  - {m} UAR {ev[m]['uar']:.3f} here; over {len(vals)} seeds mean "
            f"{np.mean(vals):.3f}, range {min(vals):.3f}–{max(vals):.3f}"
        )
    return lines


def load_spread(folders: list[Path], cfg: PretrainConfig) -> list[dict[str, Any]]:
    """Seed and zero-shot figures of other seeds' folders of the same recipe (their
    ``recipe.json``); a folder of another recipe or without figures is one error line."""
    import json

    out = []
    mine = _recipe_without_seed(asdict(cfg))
    for folder in folders:
        path = Path(folder) / "recipe.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PretrainError(f"--spread {folder}: no readable recipe.json ({exc})") from None
        theirs = _recipe_without_seed(rec.get("config", {}))
        differ = sorted(k for k in mine if _plain(theirs.get(k)) != _plain(mine[k]))
        if differ or "eval" not in rec:
            why = f"its recipe differs in {', '.join(differ)}" if differ else "it has no eval"
            raise PretrainError(f"--spread {folder}: {why}")
        out.append({"seed": rec["config"]["seed"], "eval": rec["eval"]})
    return out


def _recipe_without_seed(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k != "seed"}
    if isinstance(out.get("corpus"), dict):
        out["corpus"] = {k: v for k, v in out["corpus"].items() if k != "seed"}
    return out


def _plain(v: Any) -> Any:
    """JSON-comparable form (tuples as lists)."""
    import json

    return json.loads(json.dumps(v, default=list))


def _findings(ev: dict[str, Any]) -> list[str]:
    """Plain-language reading of the zero-shot figures (collapse, chance level, MSCE)."""
    chance = 1 / len(ev["labels"])
    out = []
    for m in ("generate", "loglik", "msce"):
        if m not in ev:
            continue
        e = ev[m]
        top, share = max(e["pred_share"].items(), key=lambda kv: kv[1])
        level = "at chance" if e["uar"] < chance + 0.03 else "above chance"
        line = f"- {m}: UAR {e['uar']:.3f} ({level}, chance {chance:.3f}); "
        line += f"{share:.0%} of predictions are {top!r}"
        if share > 0.5:
            line += " (collapse into the class pre-training answered most often)"
        out.append(line + ".")
    if "msce" in ev and "generate" in ev:
        d = ev["msce"]["uar"] - ev["generate"]["uar"]
        out.append(f"- MSCE vs plain generate: UAR {d:+.3f}.")
    ep = ev.get("loglik", {}).get("estimated_prior")
    if ep and "loglik" in ev:
        d = ep["uar"] - ev["loglik"]["uar"]
        out.append(
            f"- loglik with the `estimated-prior` correction: UAR {d:+.3f} (the class "
            "information under the answer prior)."
        )
    out += ["", HISTORY_NOTE]
    return out


__all__ = [
    "NAME",
    "PretrainConfig",
    "PretrainError",
    "SHIPPED_DIR",
    "encode_batch",
    "evaluate_zero_shot",
    "lr_at",
    "pretrain_synth_vlm",
    "save_folder",
    "train",
    "write_card",
]
