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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import EmobenchError
from emobench.models.synthvlm.build import ArchConfig
from emobench.models.synthvlm.corpus import Corpus, CorpusConfig, Example

NAME = "emobench-tiny-vlm"
#: The shipped model folder (``hf:emobench/models/weights/emobench-tiny-vlm`` from a checkout).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights" / NAME

#: ``progress(step, total, metrics)``; ``metrics["phase"]`` names the stage
ProgressFn = Callable[[int, int, dict[str, Any]], None]


class PretrainError(EmobenchError):
    """Bad pre-training settings or an output folder that cannot be written."""


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
    #: stage 1, vision alignment: steps × still faces of an auxiliary classifier on the
    #: mean-pooled merger outputs (vision tower + merger + head; the head is discarded)
    align_steps: int = 0
    align_batch: int = 32
    #: faces per identity in a warm-up batch (one identity, distinct expressions)
    align_group: int = 8
    align_lr: float = 3e-3
    #: weight of the same auxiliary loss kept alongside the LM loss in stage 2 (0: off)
    aux_weight: float = 0.0
    #: learning-rate multiplier of the vision tower and merger in stage 2
    vision_lr_mult: float = 1.0
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
            "align_steps": self.align_steps >= 0,
            "align_batch": self.align_batch >= 1,
            "align_group": 2 <= self.align_group <= self.align_batch,
            "align_lr": self.align_lr > 0,
            "aux_weight": self.aux_weight >= 0,
            "vision_lr_mult": self.vision_lr_mult > 0,
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


def _param_groups(
    model: Any, weight_decay: float, vision_mult: float = 1.0, extra: Any = None
) -> list[dict[str, Any]]:
    """AdamW groups: (decay?, vision?) with ``lr_mult`` 1 or ``vision_mult`` (the vision
    tower and merger); ``extra`` (the auxiliary head) counts as vision."""
    groups: dict[tuple[bool, bool], list[Any]] = {}
    named = list(model.named_parameters())
    if extra is not None:
        named += [(f"visual.aux.{n}", p) for n, p in extra.named_parameters()]
    for name, p in named:
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "embed_tokens" in name or "bias" in name
        groups.setdefault((not skip, "visual" in name), []).append(p)
    return [
        {
            "params": ps,
            "weight_decay": weight_decay if decay else 0.0,
            "lr_mult": vision_mult if vis else 1.0,
        }
        for (decay, vis), ps in sorted(groups.items())
    ]


# --------------------------------------------------------------------------- vision alignment


def _pooled(merged: Any, grid_thw: Any) -> Any:
    """Mean of each visual item's merged tokens: ``(items, hidden)`` from the vision
    tower's ``pooler_output`` (tokens of all items, in order) and its ``grid_thw``."""
    import torch

    sizes = (grid_thw.prod(-1) // 4).tolist()
    return torch.stack([t.mean(0) for t in torch.split(merged, sizes)])


def align_targets(corpus: Corpus, batch: list[Example], classes: tuple[str, ...]) -> Any:
    """Auxiliary targets of a batch's visual items: (image targets, video targets), the
    class index each item's example text names (:meth:`Corpus.named_class`) or -100."""
    import torch

    img, vid = [], []
    for ex in batch:
        name = corpus.named_class(ex)
        t = classes.index(name) if name is not None else -100
        for c in ex.content:
            if c["type"] == "image":
                img.append(t)
            elif c["type"] == "video":
                vid.append(t)
    return torch.tensor(img, dtype=torch.long), torch.tensor(vid, dtype=torch.long)


class VisionTap:
    """Forward hook on the vision tower that keeps each call's pooled outputs, so that
    the auxiliary loss reuses the LM forward's own visual features (no second pass).
    Qwen2.5-VL encodes a batch's images first, then its videos."""

    def __init__(self, visual: Any) -> None:
        self.calls: list[Any] = []
        self.handle = visual.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: Any, kwargs: Any, out: Any) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.calls.append(_pooled(out.pooler_output, grid))

    def take(self) -> list[Any]:
        calls, self.calls = self.calls, []
        return calls

    def close(self) -> None:
        self.handle.remove()


def _aux_loss(head: Any, tap: VisionTap, enc: Any, targets: tuple[Any, Any]) -> Any:
    """Cross-entropy of the auxiliary head on the tapped pooled features, over the items
    with a target; ``None`` when the batch has none."""
    import torch
    import torch.nn.functional as F

    calls = tap.take()
    feats, tg = [], []
    for key, t in zip(("pixel_values", "pixel_values_videos"), targets, strict=True):
        if key not in enc:
            continue
        feats.append(calls.pop(0))
        tg.append(t)
    if not feats:
        return None
    x, y = torch.cat(feats), torch.cat(tg)
    if not bool((y >= 0).any()):
        return None
    return F.cross_entropy(head(x), y, ignore_index=-100)


def align_vision(
    model: Any,
    processor: Any,
    corpus: Corpus,
    cfg: PretrainConfig,
    head: Any,
    progress: ProgressFn | None = None,
) -> dict[str, list[float]]:
    """Stage 1: train the vision tower, merger and ``head`` (a linear classifier on the
    mean-pooled merger outputs) to predict the class each still face's web caption names
    (word-frequency-skewed, noisy). The LM is untouched; the head is discarded after
    training. Faces come in groups of one identity (:meth:`Corpus.still_group`); the loss
    is the head's cross-entropy on the pooled features plus on the same features centred
    per group (identity removed), which alone made a from-scratch tower generalise here.
    Gives the LM stage visual tokens that already separate expressions, which a
    from-scratch LM's gradient alone did not produce (the card's first model)."""
    import torch
    import torch.nn.functional as F

    visual = model.model.visual
    params = list(visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.align_lr, betas=(0.9, 0.98), weight_decay=0.01)
    classes = corpus.cfg.classes
    hist: dict[str, list[float]] = {"step": [], "loss": [], "acc": []}
    run_l: list[float] = []
    run_a: list[float] = []
    k = 0
    for step in range(cfg.align_steps):
        faces, ys = [], []
        for _ in range(max(1, cfg.align_batch // cfg.align_group)):
            group, names = corpus.still_group(k, cfg.align_group)
            k += 1
            faces += [np.asarray(f) for f in group]
            # captions without an emotion word teach nothing here (-100: no target)
            ys += [classes.index(n) if n is not None else -100 for n in names]
        px = processor.image_processor(images=faces, return_tensors="pt")
        out = visual(px["pixel_values"], grid_thw=px["image_grid_thw"])
        feats = _pooled(out.pooler_output, px["image_grid_thw"])
        groups = feats.view(-1, cfg.align_group, feats.shape[-1])
        centred = (groups - groups.mean(1, keepdim=True)).reshape(feats.shape)
        logits = head(feats)
        y = torch.tensor(ys)
        keep = y >= 0
        if bool(keep.any()):  # else no caption in the batch named an emotion: no step
            # raw features (what the LM sees) + identity-centred ones (only the expression
            # is left: a fast, clean gradient toward expression directions)
            loss = F.cross_entropy(logits, y, ignore_index=-100) + F.cross_entropy(
                head(centred), y, ignore_index=-100
            )
            t = (step + 1) / max(1, cfg.align_steps)  # warm-up over 10%, cosine to 0
            for g in opt.param_groups:
                g["lr"] = cfg.align_lr * min(1.0, 10 * t) * 0.5 * (1 + math.cos(math.pi * t))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            run_l.append(float(loss.detach()))
            run_a.append(float((logits.argmax(1)[keep] == y[keep]).float().mean()))
        if (step + 1) % 10 == 0 or step + 1 == cfg.align_steps:
            hist["step"].append(step + 1)
            hist["loss"].append(float(np.mean(run_l)) if run_l else float("nan"))
            hist["acc"].append(float(np.mean(run_a)) if run_a else float("nan"))
            run_l, run_a = [], []
            if progress is not None:
                progress(step + 1, cfg.align_steps, {"phase": "align", "loss": hist["loss"][-1]})
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
    classes = corpus.cfg.classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = torch.nn.Linear(cfg.arch.hidden_size, len(classes))  # auxiliary, never saved
        model.train()
        if cfg.align_steps:
            history["align"] = align_vision(model, processor, corpus, cfg, head, progress)
        use_aux = cfg.aux_weight > 0
        tap = VisionTap(model.model.visual) if use_aux else None
        opt = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay, cfg.vision_lr_mult, head if use_aux else None),
            lr=cfg.lr,
            betas=(0.9, 0.98),
            eps=1e-8,
        )
        running: list[float] = []
        aux_run: list[float] = []
        history["aux_loss"] = []
        for step in range(cfg.steps):
            first = step * cfg.batch_size
            batch = [corpus.example(first + j) for j in range(cfg.batch_size)]
            enc, _ = encode_batch(processor, batch)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step) * g["lr_mult"]
            out = model(**enc)
            loss = out.loss
            if tap is not None:
                aux = _aux_loss(head, tap, enc, align_targets(corpus, batch, classes))
                if aux is not None:
                    aux_run.append(float(aux.detach()))
                    loss = loss + cfg.aux_weight * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
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
                history["aux_loss"].append(float(np.mean(aux_run)) if aux_run else None)
                running, aux_run = [], []
                if progress is not None:
                    progress(step + 1, cfg.steps, {"phase": "train", "loss": history["loss"][-1]})
        if tap is not None:
            tap.close()
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
) -> dict[str, Any]:
    """Train, write the model folder ``out`` (``save_pretrained`` files, ``recipe.json``,
    card ``README.md``) and, when ``eval_root`` holds a synth dataset, measure zero-shot
    UAR/WAR on its test split for the card. Returns what the card reports."""
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
        "and processor are Qwen2.5-VL's (112 px frames become "
        f"{int(cfg.arch.max_pixels**0.5)} px: 3 × 3 visual tokens per 2 frames).",
        "",
        "It is a diagnostic toy, not an emotion recogniser: it shows *how* a web-style "
        "word-frequency skew in pre-training turns into head-class bias, on a benchmark "
        "where the ground truth is total.",
        "",
        "Regenerate (CPU; same seed and torch build give bit-identical weights):",
        "",
        "```",
        f"emobench pretrain synth-vlm --out DIR --seed {cfg.seed} --steps {cfg.steps}",
        "```",
        "",
        "## Data (synthetic web corpus, `emobench/models/synthvlm/corpus.py`)",
        "",
        "Faces from the synth renderer at 112 px, identities from the web pool's seed stream "
        "(disjoint from the benchmark's subjects); every example is new (no epochs).",
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
    al = h.get("align")
    if cfg.align_steps and al:
        acc = [a for a in al["acc"][-10:] if a == a]
        lines += [
            f"- stage 1, vision alignment: {cfg.align_steps} steps × {cfg.align_batch} still "
            f"faces ({cfg.align_batch // cfg.align_group} web identities × "
            f"{cfg.align_group} distinct expressions), vision tower + merger + a linear "
            "head on the mean-pooled merger outputs, target: the class each face's own web "
            "caption names (word-frequency-skewed, noisy; faces whose caption names none "
            "are not scored); loss: cross-entropy on the pooled features plus on the same "
            f"features centred per identity; AdamW lr {cfg.align_lr}, warm-up 10%, cosine. "
            f"Loss {al['loss'][0]:.3f} → {al['loss'][-1]:.3f}, head accuracy on the "
            f"caption targets (last 100 steps) {np.mean(acc) if acc else float('nan'):.3f}. "
            "The head is discarded (not in the folder).",
            "- stage 2, everything:",
        ]
    lines += [
        f"- {cfg.steps} steps × batch {cfg.batch_size} = {cfg.steps * cfg.batch_size} "
        f"examples ({', '.join(f'{k} {v}' for k, v in h['examples_per_kind'].items())})",
        f"- AdamW lr {cfg.lr}, warm-up {cfg.warmup}, cosine, weight decay "
        f"{cfg.weight_decay}, grad clip {cfg.grad_clip}; loss on answer tokens only"
        + (
            f", plus {cfg.aux_weight} × the stage-1 head's cross-entropy on the pooled visual "
            "features of every caption, question and MSCE keyframe (same targets; the LM "
            "forward's own features, tapped)"
            if cfg.aux_weight > 0
            else ""
        )
        + (f"; vision lr × {cfg.vision_lr_mult}" if cfg.vision_lr_mult != 1 else ""),
        f"- answer-token loss {info['first_loss']:.3f} (first 10 steps) → "
        f"{info['final_loss']:.3f} (last 10); last 100 steps by kind: "
        + ", ".join(f"{k} {v:.3f}" for k, v in h["loss_by_kind"].items()),
        f"- time: {info['seconds_wall']:.0f} s wall, {info['seconds_cpu']:.0f} s CPU "
        f"(1 torch thread; torch {info['torch']})",
        f"- weights: `model.safetensors`, {info['bytes'] / 1e6:.1f} MB, sha256 prefix "
        f"`{info['sha256']}`",
        "- seed spread: not measured (one seed trained at the shipped budget)",
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


#: What the vision-alignment variant measured (the card quotes it while the model collapses).
ALIGN_NOTE = (
    " A third, a vision-alignment stage (`align_steps` 1500 × 32 still faces in groups of "
    "one identity, a discarded linear head on the pooled merger outputs predicting each "
    "caption's class, loss on raw plus identity-centred features; then 800 LM steps keeping "
    "0.5 × that loss, `aux_weight`), moved the vision tower only a little on benchmark clips "
    "(linear-probe UAR of its pooled video features, 5-fold on 500 train clips: 0.179 vs "
    "0.125 for this model, chance 0.143) and the LM still answered 'happiness' for every "
    "train clip; both settings are off in the shipped recipe."
)


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
    shares = [max(ev[m]["pred_share"].values()) for m in ("generate", "loglik") if m in ev]
    if shares and min(shares) > 0.95:
        out += [
            "",
            "At this budget the model answers from its pre-training prior alone: trained from "
            "scratch with the loss on answer tokens only (a few supervised tokens per "
            "example), its language model has learnt which answers are frequent but not to "
            "condition on the frames, the offered options or MSCE descriptions (probes with "
            "different faces, option lists and descriptions give the same answer; its "
            'descriptions of benchmark gaps are mostly "no visible change."). It '
            "demonstrates the word-frequency collapse in its extreme form, not expression "
            "reading. Levers: many more steps (a GPU), a loss on all text tokens, a vision "
            "tower initialised from a model that already encodes expression. Two variants "
            "tried here (an added `state` kind, 20–25% of the mix; 2800 steps × 8 at a larger "
            "share of questions) ended the same way." + ALIGN_NOTE,
        ]
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
