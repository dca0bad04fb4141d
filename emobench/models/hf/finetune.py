"""``finetune = "lora"`` of the ``hf:`` family: LoRA fine-tuning of a generative VLM on the
fold's training clips, with every re-balancing recipe (the study's "pretrain, then
class-balanced fine-tune").

What is trained, and on what:

* **Prompt and target.** Each training clip is asked *exactly* as the evaluation asks it:
  :meth:`FineTunable._clip_request` builds the request (question, options in the clip's option
  order, instruction, images or one video, fps) and :meth:`FineTunable.encode` renders it with
  the model's chat template. The target is ``answer_prefix + label`` followed by the
  end-of-turn token (the model's first ``eos_token_id``); the loss sees only those tokens.
* **Frames.** Whole clips are decoded per batch through ``ctx.load_frames`` (the engine's
  frame cache; clips that fail are skipped, counted and reported); every epoch draws
  ``finetune_frames`` = K frames per clip TSN-style (one random frame in each of K equal
  segments); validation uses the K segment centres. Training clips are plain clips (no
  MSCE context): a cell with ``msce`` enrichment scores a fine-tuned model on prompts that
  carry descriptions it was not trained with.
* **Loss.** The class logits are the per-label answer log-likelihoods — the very scores of
  ``scoring = "loglik"`` (sum, or mean with ``length_norm``), computed differentiably by
  :func:`answer_logprobs` (one prefill, then every label's continuation over the prefill's
  KV cache; this works whether or not the labels' first tokens differ). The recipe's loss
  (``ce``, ``class-balanced``, ``logit-adjusted`` from
  :func:`emobench.longtail.rebalance.make_loss`) applies to them unchanged, and the recipe's
  sampling draws each epoch (:func:`~emobench.longtail.rebalance.draw_epoch`). Because a
  softmax over the labels alone does not make the model *say* the label (the class loss
  is satisfied as soon as the right label out-scores the others, however unlikely all of
  them are), ``finetune_lm_weight`` × the mean per-token NLL of the target (answer tokens +
  end-of-turn) is added: what ``scoring = "generate"`` needs. That term is not
  re-weighted: under the loss-based recipes (``cb-loss``, ``logit-adjusted``) only the
  class loss carries the re-balancing (sampling-based recipes shape both terms); set
  ``finetune_lm_weight = 0`` to train on the recipe's loss alone (enough for ``loglik``).
* **decoupled-crt.** Stage 1 trains the LoRA adapters on the instance-balanced data
  (plain CE); stage 2 continues from them class-balanced (``crt_sampling``, CE) with only the
  stage-2 parameters trainable: ``decoupled_stage2 = "last-layers"`` → the LoRA matrices of
  the last ``stage2_layers`` language-model layers; ``"label-rows"`` → a zero-initialised
  delta on the LM-head rows of the label tokens (the analogue of cRT's classifier; a delta
  rather than the rows themselves so that the base weights never change, even when the
  head is tied to the input embeddings). Stage 2 continues from stage 1 instead of
  re-initialising, since a re-initialised LoRA block is the base model again.
* **Protocol.** A stratified validation split of the training clips
  (:func:`~emobench.training.loop.stratified_split`, ``val_fraction``); after each epoch
  the validation clips are scored by the loglik path itself and early stopping keeps the
  adapters of the best validation UAR (:class:`~emobench.training.loop.EarlyStopper`
  over the trainable tensors only). Seeded (:func:`~emobench.training.loop.seeded` and a
  numpy generator): on CPU the same seed gives the same adapters bit for bit. On CUDA bf16
  autocast; ``finetune_grad_accum`` micro-batches per optimizer step.
* **Checkpoints.** One folder per (dataset, fold, seed — the engine's checkpoint folder —
  re-balancing, model hash, recipe hash): peft's ``save_pretrained`` output (plus
  ``label_rows.safetensors`` for the label-row delta) and ``emobench.json`` (recipe,
  training history, adapter fingerprint), written to a temporary folder that is renamed
  into place. A rerun loads it (no training step); a damaged one is reported through
  ``ctx.warn``, removed and trained again.

Scoring then goes through the adapter's usual generate / loglik paths with the adapters in
the model; the answer cache keys carry the adapter fingerprint. MSCE gap descriptions are
always made by the base model (adapters switched off), also when the describer is the model
itself: the descriptions are the same as zero-shot's (and shared with it through the
cache), and only the final classification is fine-tuned.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.data.index import fingerprint as data_fingerprint
from emobench.longtail import rebalance
from emobench.models.base import FitContext
from emobench.models.hf.loaded import release_loaded
from emobench.models.hf.loglik import answer_logprobs, end_of_turn_id  # noqa: F401
from emobench.models.hf.lora import (  # noqa: F401  (re-exported: importable from here)
    DEFAULT_TARGETS,
    FORMAT,
    LABEL_ROWS_FILE,
    SIDECAR,
    Adapter,
    FineTuneError,
    _json_ready,
    _make_label_rows,
    adapters_off,
    attach,
    fingerprint,
    language_layers,
    lora_target_names,
    read_adapter,
    save_adapter,
    stage2_lora_params,
    vision_blocks,
)
from emobench.models.hf.options import FINETUNE_SETTINGS
from emobench.models.hf.protocol import FineTunable
from emobench.training.checkpoint import recipe_hash
from emobench.training.loop import TrainConfig, run_summary, seeded
from emobench.training.lora import TRAIN_STEPS, _trainable_holder, _Trainer  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    pass


# --------------------------------------------------------------------------- recipe


def train_config(hf: FineTunable, ctx: FitContext) -> Any:
    """The run's ``[train]`` table with the ``finetune_*`` overrides, seed and device."""

    o = hf.opts
    over = {
        "epochs": o.finetune_epochs,
        "crt_epochs": o.finetune_crt_epochs,
        "lr": o.finetune_lr,
        "batch_size": o.finetune_batch_size,
    }
    opts = {**ctx.train_options, **{k: v for k, v in over.items() if v is not None}}
    return TrainConfig(**{**opts, "seed": ctx.seed, "device": str(ctx.device)})


def recipe(hf: FineTunable, ctx: FitContext, cfg: Any) -> dict[str, Any]:
    """Everything that changes the adapters: data, labels, prompt, frames, LoRA, training."""

    o = hf.opts
    prompt_keys = (
        "input", "question", "instruction", "option_order", "answer_prefix", "length_norm",
        "dtype", "fps", "frame_size", "crop", "seed", "min_pixels", "max_pixels", "size",
    )  # fmt: skip
    return {
        "format": FORMAT,
        "model": hf._hash,
        "dataset": ctx.dataset,
        "fold": ctx.fold,
        "seed": ctx.seed,
        "rebalancing": ctx.rebalancing,
        "data": data_fingerprint(ctx.train_index.sort("clip_id")),
        "labels": list(hf.labels),
        "prompt": {k: getattr(o, k) for k in prompt_keys},
        "finetune": {k: getattr(o, k) for k in sorted(FINETUNE_SETTINGS)},
        "train": {k: v for k, v in cfg.to_dict().items() if k != "device"},
        "device": str(ctx.device).split(":")[0],
    }


def adapter_folder(ctx: FitContext, hf: FineTunable, rec: dict[str, Any]) -> Path:

    return Path(ctx.checkpoint_dir) / f"hf-lora-{ctx.rebalancing}-{hf._hash}-{recipe_hash(rec)}"


def fit_lora(hf: FineTunable, ctx: FitContext) -> Adapter:
    """The adapters of this context: reused from the checkpoint folder when present and
    sound, else trained (and saved). After training the LoRA-wrapped model stays loaded."""
    cfg = train_config(hf, ctx)
    rec = recipe(hf, ctx, cfg)
    folder = adapter_folder(ctx, hf, rec)
    if folder.exists():
        try:
            return read_adapter(folder)
        except FineTuneError as exc:
            ctx.warn(f"damaged LoRA adapters {folder.name} ({exc}): removed, trained again")
            shutil.rmtree(folder, ignore_errors=True)
    return _train(hf, ctx, cfg, rec, folder)


# --------------------------------------------------------------------------- training


def _stage2_last_layers(hf: FineTunable, peft_model: Any) -> tuple[dict[str, Any], None]:
    """decoupled-crt stage 2: the LoRA tensors of the last ``stage2_layers`` LM layers."""
    names = set(stage2_lora_params(peft_model, hf.opts.stage2_layers))
    return {n: p for n, p in peft_model.named_parameters() if n in names}, None


def _stage2_label_rows(hf: FineTunable, peft_model: Any) -> tuple[dict[str, Any], Any]:
    """decoupled-crt stage 2: a new zero delta on the LM-head rows of the label tokens."""
    rows = _make_label_rows(hf._model, sorted({t for a in hf.answer_ids() for t in a}))
    return {"label_rows.delta": rows.delta}, rows


#: ``decoupled_stage2`` → (hf model, peft model) → (stage-2 tensors by name, label rows).
STAGE2 = {"last-layers": _stage2_last_layers, "label-rows": _stage2_label_rows}


def _train(
    hf: FineTunable, ctx: FitContext, cfg: Any, rec: dict[str, Any], folder: Path
) -> Adapter:
    from peft import LoraConfig, get_peft_model

    o = hf.opts
    started = time.perf_counter()
    trainer = _Trainer(hf, ctx, cfg)
    plan = rebalance.get_rebalancing(ctx.rebalancing)
    counts = rebalance.class_counts(trainer.y[trainer.train_idx], len(hf.labels))
    # a fresh copy of the base model: peft injects its layers in place, so the copy that
    # zero-shot scoring shares (adapter._LOADED) must never be the one that is wrapped;
    # the shared copies are dropped first, so training does not hold a model twice
    release_loaded()
    base, processor = hf.load_fresh(trainer.device)
    with seeded(cfg.seed, trainer.device):
        targets = lora_target_names(base, o.lora_targets, o.lora_vision_blocks)
        lcfg = LoraConfig(
            r=o.lora_r,
            lora_alpha=o.lora_alpha,
            lora_dropout=o.lora_dropout,
            target_modules=targets,
            bias="none",
        )
        peft_model = get_peft_model(base, lcfg)
        hf._model, hf._processor = peft_model.get_base_model(), processor
        rows = None
        lora = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        stopper = trainer.phase(
            "train",
            lora,
            plan.sampling,
            rebalance.make_loss(plan.loss, counts, plan.params),
            cfg.epochs,
        )
        if plan.decoupled:
            trainer.history["phase1_best_val_uar"] = stopper.best
            for p in peft_model.parameters():
                p.requires_grad_(False)
            stage2, rows = STAGE2[o.decoupled_stage2](hf, peft_model)
            if not stage2:
                raise FineTuneError(
                    f"hf:{hf.name}: decoupled-crt stage 2 ({o.decoupled_stage2}) found no "
                    "parameter to train"
                )
            for p in stage2.values():
                p.requires_grad_(True)
            stopper = trainer.phase(
                "crt", stage2, plan.crt_sampling, rebalance.make_loss("ce", counts), cfg.crt_epochs
            )
    for p in peft_model.parameters():
        p.requires_grad_(False)
    history = trainer.history
    history.update(run_summary(stopper, history, started, trainer.train_idx, trainer.val_idx))
    history["skipped_clips"] = sorted(trainer.skipped)
    history["targets"] = len(targets)
    history["trainable_parameters"] = int(sum(p.numel() for p in lora.values()))
    summary = {
        k: history[k]
        for k in ("best_epoch", "best_val_uar", "epochs_run", "steps", "n_train", "n_val")
    }
    summary["seconds"] = round(history["seconds"], 3)
    summary["skipped_clips"] = len(trainer.skipped)
    summary["train_loss_first_last"] = [history["train_loss"][0], history["train_loss"][-1]]
    history, summary = _json_ready(history), _json_ready(summary)
    fp = save_adapter(peft_model, rows, folder, rec, history, summary, targets)
    # keep the trained model for scoring (under a key that carries the adapter fingerprint)
    hf._install_adapted(peft_model, rows, fp)
    return Adapter(folder, fp, summary, trained_now=True)


__all__ = [
    "DEFAULT_TARGETS",
    "TRAIN_STEPS",
    "Adapter",
    "FineTuneError",
    "adapters_off",
    "answer_logprobs",
    "attach",
    "fit_lora",
    "language_layers",
    "lora_target_names",
    "read_adapter",
    "vision_blocks",
]
