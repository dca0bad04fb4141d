"""``finetune = "lora"`` of the ``hf:`` family: LoRA fine-tuning of a generative VLM on the
fold's training clips, with every re-balancing recipe (the study's "pretrain, then
class-balanced fine-tune").

What is trained, and on what:

* **Prompt and target.** Each training clip is asked *exactly* as the evaluation asks it:
  :meth:`HFModel._clip_request` builds the request (question, options in the clip's option
  order, instruction, images or one video, fps) and :meth:`HFModel.encode` renders it with
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
  (:func:`~emobench.models.training.stratified_split`, ``val_fraction``); after each epoch
  the validation clips are scored by the loglik path itself and early stopping keeps the
  adapters of the best validation UAR (:class:`~emobench.models.training.EarlyStopper`
  over the trainable tensors only). Seeded (:func:`~emobench.models.training.seeded` and a
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

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.errors import EmobenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from emobench.models.base import FitContext
    from emobench.models.hf.adapter import HFModel

#: Default LoRA targets: the attention and MLP projections of the language model.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Module names under which VLMs keep their vision tower.
VISION_NAMES = ("visual", "vision_tower", "vision_model", "vision_encoder")
SIDECAR = "emobench.json"
LABEL_ROWS_FILE = "label_rows.safetensors"
FORMAT = "emobench-hf-lora/1"
#: Optimizer steps taken in this process (tests check that a rerun takes none).
TRAIN_STEPS = {"optimizer": 0}


class FineTuneError(EmobenchError):
    """A model that cannot be fine-tuned as configured (no language model layers, no
    matching LoRA targets, no usable training clips)."""


@dataclass
class Adapter:
    """Fine-tuned adapters of one fit: where they are and what they are."""

    folder: Path
    fingerprint: str
    summary: dict[str, Any] = field(default_factory=dict)
    trained_now: bool = False


# --------------------------------------------------------------------------- model parts


def _module_name(model: nn.Module, target: nn.Module) -> str | None:
    for name, mod in model.named_modules():
        if mod is target:
            return name
    return None


def _layer_list(root: nn.Module) -> tuple[str, int]:
    """The longest ``ModuleList`` under ``root`` (its blocks / decoder layers): (name, len)."""
    from torch import nn

    best = ("", 0)
    for name, mod in root.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > best[1]:
            best = (name, len(mod))
    return best


def language_layers(model: nn.Module) -> tuple[str, int]:
    """``(prefix, n)``: the language model's decoder layers are ``<prefix>.<i>``."""
    get = getattr(model, "get_decoder", None)
    lm = get() if callable(get) else None
    lm_name = _module_name(model, lm) if lm is not None else None
    if lm_name is None:
        raise FineTuneError(f"{type(model).__name__}: cannot find its language model")
    name, n = _layer_list(lm)
    if not n:
        raise FineTuneError(f"{type(model).__name__}: its language model has no layer list")
    return ".".join(p for p in (lm_name, name) if p), n


def vision_blocks(model: nn.Module) -> tuple[str, int] | None:
    """``(prefix, n)`` of the vision tower's blocks, or None when there is no vision tower."""
    for name, mod in model.named_modules():
        if name.rsplit(".", 1)[-1] in VISION_NAMES:
            sub, n = _layer_list(mod)
            if n:
                return f"{name}.{sub}", n
    return None


def lora_target_names(model: nn.Module, targets: list[str] | None, n_vision: int) -> list[str]:
    """Full names of the linears to adapt: those of the language model's layers whose leaf
    name is in ``targets`` (default :data:`DEFAULT_TARGETS`), plus every linear of the
    vision tower's last ``n_vision`` blocks. Found by module name, so the vision tower's own
    ``gate_proj``/``up_proj`` are never picked up by the language-model targets."""
    from torch import nn

    prefix, _ = language_layers(model)
    leaves = set(targets or DEFAULT_TARGETS)
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear)
        and n.startswith(prefix + ".")
        and n.rsplit(".", 1)[-1] in leaves
    ]
    if not names:
        raise FineTuneError(
            f"{type(model).__name__}: no linear of the language model is named "
            f"{sorted(leaves)} (options.lora_targets)"
        )
    if n_vision:
        vis = vision_blocks(model)
        if vis is None:
            raise FineTuneError(
                f"{type(model).__name__}: lora_vision_blocks = {n_vision} but no vision tower "
                "blocks were found"
            )
        vprefix, nv = vis
        if n_vision > nv:
            raise FineTuneError(
                f"lora_vision_blocks = {n_vision} but the vision tower has {nv} blocks"
            )
        keep = tuple(f"{vprefix}.{i}." for i in range(nv - n_vision, nv))
        names += [
            n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.startswith(keep)
        ]
    return names


def stage2_lora_params(peft_model: Any, n_layers: int) -> list[str]:
    """Names of the LoRA tensors of the last ``n_layers`` language-model layers."""
    base = peft_model.get_base_model()
    prefix, n = language_layers(base)
    keep = tuple(f"{prefix}.{i}." for i in range(max(n - n_layers, 0), n))
    out = []
    for name, _ in peft_model.named_parameters():
        if "lora_" not in name:
            continue
        inner = name.split("base_model.model.", 1)[-1]
        if inner.startswith(keep):
            out.append(name)
    return out


# --------------------------------------------------------------------------- label rows


def _make_label_rows(model: nn.Module, token_ids: list[int]) -> Any:
    """A zero delta on the LM-head rows of ``token_ids``, added by a forward hook."""
    import torch
    from torch import nn

    head = model.get_output_embeddings()

    class LabelRows(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("ids", torch.tensor(sorted(set(token_ids)), dtype=torch.long))
            w = head.weight
            self.delta = nn.Parameter(torch.zeros(len(self.ids), w.shape[1], dtype=torch.float32))
            self.enabled = True

        def hook(self, _mod: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> Any:
            if not self.enabled:
                return out
            h = inputs[0]
            add = torch.matmul(h.to(self.delta.dtype), self.delta.t()).to(out.dtype)
            return out.index_add(-1, self.ids.to(out.device), add)

    rows = LabelRows().to(head.weight.device)
    rows.handle = head.register_forward_hook(rows.hook)
    return rows


# --------------------------------------------------------------------------- attach / off


def attach(base: nn.Module, folder: Path) -> tuple[Any, Any]:
    """Load the adapters in ``folder`` into ``base`` (in place): (peft model, label rows).

    The adapted modules are the exact names recorded in the sidecar (peft may save a
    long target list as name suffixes); a mismatch is a :class:`FineTuneError`."""
    from peft import LoraConfig, PeftModel
    from safetensors.torch import load_file

    try:
        names = json.loads((folder / SIDECAR).read_text()).get("lora_modules")
        config = LoraConfig.from_pretrained(str(folder))
        if names:
            config.target_modules = list(names)
        peft_model = PeftModel.from_pretrained(base, str(folder), is_trainable=False, config=config)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise FineTuneError(f"cannot load the LoRA adapters in {folder}: {first}") from None
    got = {n for n, m in peft_model.get_base_model().named_modules() if hasattr(m, "lora_A")}
    if names and got != set(names):
        raise FineTuneError(
            f"{folder.name}: adapters on {len(got)} modules, the sidecar names {len(names)}"
        )
    rows = None
    path = folder / LABEL_ROWS_FILE
    if path.is_file():
        tensors = load_file(str(path))
        rows = _make_label_rows(peft_model.get_base_model(), tensors["ids"].tolist())
        rows.delta.data.copy_(tensors["delta"].to(rows.delta.device))
    peft_model.eval()
    return peft_model, rows


@contextlib.contextmanager
def adapters_off(loaded: tuple[Any, Any] | None) -> Iterator[None]:
    """The base model's behaviour: LoRA layers and the label-row delta switched off."""
    if loaded is None:
        yield
        return
    peft_model, rows = loaded
    if rows is not None:
        rows.enabled = False
    try:
        with peft_model.disable_adapter():
            yield
    finally:
        if rows is not None:
            rows.enabled = True


def fingerprint(folder: Path) -> str:
    """16 hex digits over the adapter files (weights and peft config, not the sidecar)."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != SIDECAR:
            h.update(p.name.encode() + b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def read_adapter(folder: Path) -> Adapter:
    """A saved adapter folder, checked (sidecar format, weights present); a
    :class:`FineTuneError` naming what is wrong otherwise."""
    side = folder / SIDECAR
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise FineTuneError(f"unreadable {SIDECAR} ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FineTuneError(f"{SIDECAR} is not an {FORMAT} sidecar")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (folder / name).is_file():
            raise FineTuneError(f"{name} is missing")
    fp = fingerprint(folder)
    if fp != meta.get("fingerprint"):
        raise FineTuneError("its files do not match the fingerprint in the sidecar")
    return Adapter(folder, fp, meta.get("summary", {}))


# --------------------------------------------------------------------------- log-likelihoods


def answer_logprobs(
    hf: HFModel, enc: Any, answers: list[list[int]], eot: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(z, e)``, both ``(B, C)``: ``z`` the summed log-probability of each
    label's answer tokens after each prompt (what ``scoring = "loglik"`` computes), ``e`` the
    log-probability of the end-of-turn token right after that answer.

    As :func:`emobench.models.hf.loglik.label_loglik`: one prefill of the (left-padded)
    prompts, then one forward of every label's continuation over the prefill's KV cache
    repeated per label; here the continuation holds the whole answer, so that its last
    position predicts the end-of-turn token, and no inference mode is used."""
    import torch

    from emobench.models.hf.loglik import continuation_inputs, prefill_inputs

    model = hf._model
    n_b, n_c = enc["input_ids"].shape[0], len(answers)
    kw, rope = prefill_inputs(model, enc)
    out = model(**kw, use_cache=True, logits_to_keep=1)
    dev = out.logits.device
    first = out.logits[:, -1].float().log_softmax(-1)
    z = first[:, torch.tensor([a[0] for a in answers], device=dev)]
    n_cont = max(len(a) for a in answers)
    ids = torch.zeros((n_c, n_cont), dtype=torch.long)
    tgt = torch.zeros((n_c, n_cont), dtype=torch.long)
    is_ans = torch.zeros((n_c, n_cont), dtype=torch.bool)
    is_eot = torch.zeros((n_c, n_cont), dtype=torch.bool)
    for c, a in enumerate(answers):
        ids[c, : len(a)] = torch.tensor(a)
        tgt[c, : len(a)] = torch.tensor([*a[1:], eot])
        is_ans[c, : len(a) - 1] = True
        is_eot[c, len(a) - 1] = True
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    cache.batch_repeat_interleave(n_c)
    dev_in = enc["input_ids"].device
    full_mask, pos = continuation_inputs(enc, rope, n_c, n_cont)
    out2 = model(
        input_ids=ids.to(dev_in).repeat(n_b, 1),
        attention_mask=full_mask,
        position_ids=pos,
        use_cache=True,
        **{hf._cache_kw(): cache},
    )
    lp = out2.logits.float().log_softmax(-1)
    got = lp.gather(-1, tgt.to(dev).repeat(n_b, 1)[..., None])[..., 0]
    z = z + (got * is_ans.to(dev).repeat(n_b, 1)).sum(-1).view(n_b, n_c)
    e = (got * is_eot.to(dev).repeat(n_b, 1)).sum(-1).view(n_b, n_c)
    return z, e


def end_of_turn_id(model: Any, processor: Any) -> int:
    """The token that ends the assistant's turn: the model's first ``eos_token_id``."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    if eos is None:
        eos = getattr(getattr(processor, "tokenizer", processor), "eos_token_id", None)
    if eos is None:
        raise FineTuneError("the model has no end-of-turn (eos) token to train towards")
    return int(eos)


# --------------------------------------------------------------------------- recipe


def train_config(hf: HFModel, ctx: FitContext) -> Any:
    """The run's ``[train]`` table with the ``finetune_*`` overrides, seed and device."""
    from emobench.models.training import TrainConfig

    o = hf.opts
    over = {
        "epochs": o.finetune_epochs,
        "crt_epochs": o.finetune_crt_epochs,
        "lr": o.finetune_lr,
        "batch_size": o.finetune_batch_size,
    }
    opts = {**ctx.train_options, **{k: v for k, v in over.items() if v is not None}}
    return TrainConfig(**{**opts, "seed": ctx.seed, "device": str(ctx.device)})


def recipe(hf: HFModel, ctx: FitContext, cfg: Any) -> dict[str, Any]:
    """Everything that changes the adapters: data, labels, prompt, frames, LoRA, training."""
    from emobench.data.index import fingerprint as data_fingerprint
    from emobench.models.hf.options import FINETUNE_SETTINGS

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


def adapter_folder(ctx: FitContext, hf: HFModel, rec: dict[str, Any]) -> Path:
    from emobench.models.checkpoint import recipe_hash

    return Path(ctx.checkpoint_dir) / f"hf-lora-{ctx.rebalancing}-{hf._hash}-{recipe_hash(rec)}"


def fit_lora(hf: HFModel, ctx: FitContext) -> Adapter:
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


def _trainable_holder(params: dict[str, Any]) -> Any:
    """A module whose state dict is exactly ``params`` (the same tensors), so that
    :class:`EarlyStopper` copies and restores only the trainable tensors."""
    from torch import nn

    holder = nn.Module()
    holder.params = nn.ParameterList(list(params.values()))
    return holder


class _Trainer:
    """One fine-tuning run over the fold's training clips (see the module docstring)."""

    def __init__(self, hf: HFModel, ctx: FitContext, cfg: Any) -> None:
        import torch

        from emobench.models.device import resolve_device
        from emobench.models.training import stratified_split

        self.hf, self.ctx, self.cfg = hf, ctx, cfg
        self.device = resolve_device(ctx.device)
        rows = ctx.train_index.sort("clip_id")
        names = rows["label"].to_list()
        unknown = sorted({lb for lb in names if lb not in hf.labels})
        if unknown:
            raise FineTuneError(f"training clips with labels not in the label set: {unknown}")
        self.rows = rows
        self.y = np.array([hf.labels.index(lb) for lb in names], dtype=np.int64)
        if len(self.y) < 2:
            raise FineTuneError(f"need at least 2 training clips, got {len(self.y)}")
        self.train_idx, self.val_idx = stratified_split(self.y, cfg.val_fraction, cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.k = hf.opts.finetune_frames
        self.skipped: set[str] = set()
        self.history: dict[str, Any] = {
            "epoch": [], "train_loss": [], "val_uar": [], "val_acc": [], "val_loss": [],
            "phase": [], "steps": 0,
        }  # fmt: skip
        self._val_frames: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.torch = torch

    # ---------------------------------------------------------------- data

    def _decode(self, positions: np.ndarray) -> dict[int, np.ndarray]:
        """All frames of the clips at ``positions`` (unique), decoded via the engine."""
        uniq = np.unique(positions)
        frames, kept = self.ctx.load_frames(self.hf, self.rows[uniq.tolist()])
        out = {}
        kept_set = set()
        for arr, k in zip(frames, kept, strict=True):
            arr = np.asarray(arr)
            if arr.ndim == 4 and len(arr):
                out[int(uniq[k])] = arr
                kept_set.add(int(uniq[k]))
        for p in uniq:
            if int(p) not in kept_set:
                self.skipped.add(self.rows["clip_id"][int(p)])
        return out

    def _requests(
        self, positions: np.ndarray, frames: dict[int, tuple[np.ndarray, np.ndarray]]
    ) -> tuple[list[Any], np.ndarray]:
        """The evaluation's request for each clip at ``positions`` that has frames, and
        their class indices."""
        from emobench.models.base import ClipInput

        reqs, ys = [], []
        fps = self.rows["fps"].to_list()
        ids = self.rows["clip_id"].to_list()
        for p in positions:
            if int(p) not in frames:
                continue
            idx, arr = frames[int(p)]
            clip = ClipInput(clip_id=ids[p], frames=arr, indices=idx, fps=float(fps[p]))
            req, _ = self.hf._clip_request(clip)
            reqs.append(req)
            ys.append(self.y[p])
        return reqs, np.array(ys, dtype=np.int64)

    def _sampled(self, decoded: dict[int, np.ndarray], centres: bool) -> dict[int, Any]:
        """``(indices, frames)`` of K frames per clip: TSN segment-random, or the centres."""
        from emobench.video.sampling import segment_centres, segment_random

        out = {}
        for p in sorted(decoded):
            arr = decoded[p]
            idx = (
                segment_centres(len(arr), self.k)
                if centres
                else segment_random(len(arr), self.k, self.rng)
            )
            out[p] = (np.asarray(idx, np.int64), arr[idx])
        return out

    # ---------------------------------------------------------------- validation

    def _prepare_val(self) -> None:
        """Decode the validation clips once (K segment centres each); a clip that fails to
        decode leaves the validation set (it is reported as skipped)."""
        if self._val_frames is None:
            self._val_frames = self._sampled(self._decode(self.val_idx), centres=True)
            have = [p for p in self.val_idx if int(p) in self._val_frames]
            self.val_idx = np.asarray(have, dtype=np.int64)

    def val_logits(self, positions: np.ndarray) -> np.ndarray:
        """Loglik scores of validation clips, by the scoring path itself."""
        self._prepare_val()
        assert self._val_frames is not None
        hf = self.hf
        hf._model.eval()
        out = np.full((len(positions), len(hf.labels)), -1e30)
        step = max(hf.opts.batch_size, 1)
        for s in range(0, len(positions), step):
            sel = positions[s : s + step]
            have = [i for i, p in enumerate(sel) if int(p) in self._val_frames]
            reqs, _ = self._requests(sel[have], self._val_frames)
            if reqs:
                scores = [e["scores"] for e in hf._loglik(reqs)]
                out[s + np.array(have)] = np.asarray(scores)
        return out

    # ---------------------------------------------------------------- one phase

    def phase(
        self,
        name: str,
        params: dict[str, Any],
        sampling: str,
        loss_fn: Any,
        epochs: int,
    ) -> Any:
        """One training phase (``train`` or ``crt``) of ``params``; restores the phase's
        best tensors by validation UAR. Out of GPU memory is one error line."""
        try:
            return self._phase(name, params, sampling, loss_fn, epochs)
        except self.torch.cuda.OutOfMemoryError:
            raise FineTuneError(
                f"hf:{self.hf.name}: out of GPU memory while fine-tuning {self.cfg.batch_size} "
                "clips per batch (lower finetune_batch_size and raise finetune_grad_accum, or "
                "lower finetune_frames / max_pixels)"
            ) from None

    def _phase(
        self,
        name: str,
        params: dict[str, Any],
        sampling: str,
        loss_fn: Any,
        epochs: int,
    ) -> Any:
        from emobench.longtail.rebalance import draw_epoch
        from emobench.models.device import autocast
        from emobench.models.training import (
            EarlyStopper,
            batches,
            make_optimizer,
            record_epoch,
            validate,
        )

        torch, hf, cfg = self.torch, self.hf, self.cfg
        self._prepare_val()
        accum = hf.opts.finetune_grad_accum
        n_micro = -(-len(self.train_idx) // cfg.batch_size)
        steps = max(1, -(-n_micro // accum))
        opt, sched = make_optimizer(list(params.values()), cfg, epochs, steps)
        stopper = EarlyStopper(_trainable_holder(params), cfg.patience)
        answers = hf.answer_ids()
        lengths = torch.tensor([len(a) for a in answers], dtype=torch.float32)
        eot = end_of_turn_id(hf._model, hf._processor)
        n_c = len(hf.labels)
        lm_w = float(hf.opts.finetune_lm_weight)
        for epoch in range(1, epochs + 1):
            hf._model.train()
            order = self.train_idx[
                draw_epoch(sampling, self.y[self.train_idx], n_c, epoch - 1, epochs, self.rng)
            ]
            losses: list[float] = []
            opt.zero_grad(set_to_none=True)
            pending = 0
            for clips in batches(order, cfg.batch_size):
                frames = self._sampled(self._decode(clips), centres=False)
                reqs, y = self._requests(clips, frames)
                if not reqs:
                    continue
                enc, _ = hf.encode(reqs)
                with autocast(self.device):
                    z, e = answer_logprobs(hf, enc, answers, eot)
                yt = torch.from_numpy(y).to(z.device)  # the logits' device (device_map)
                lz = z / lengths.to(z.device) if hf.opts.length_norm else z
                loss = loss_fn(lz, yt)
                if lm_w > 0:
                    rows = torch.arange(len(y), device=z.device)
                    nll = -(z[rows, yt] + e[rows, yt]) / (lengths.to(z.device)[yt] + 1)
                    loss = loss + lm_w * nll.mean()
                (loss / accum).backward()
                losses.append(float(loss.detach()))
                pending += 1
                if pending == accum:
                    self._step(opt, sched)
                    pending = 0
            if pending:
                self._step(opt, sched)
            if not losses:
                raise FineTuneError(
                    f"hf:{hf.name}: no training clip of this epoch could be decoded "
                    f"({len(self.skipped)} skipped)"
                )
            hf._model.eval()
            with torch.no_grad():
                metrics = validate(self.val_logits, self.y, self.val_idx)
            mean = float(np.mean(losses)) if losses else float("nan")
            stop = record_epoch(self.history, epoch, mean, metrics, stopper, name)
            self.ctx.progress(f"LoRA fine-tuning hf:{hf.name} ({name})", epoch, epochs)
            if stop:
                break
        stopper.restore()
        hf._model.eval()
        return stopper

    def _step(self, opt: Any, sched: Any) -> None:
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        TRAIN_STEPS["optimizer"] += 1
        self.history["steps"] += 1


def _stage2_last_layers(hf: HFModel, peft_model: Any) -> tuple[dict[str, Any], None]:
    """decoupled-crt stage 2: the LoRA tensors of the last ``stage2_layers`` LM layers."""
    names = set(stage2_lora_params(peft_model, hf.opts.stage2_layers))
    return {n: p for n, p in peft_model.named_parameters() if n in names}, None


def _stage2_label_rows(hf: HFModel, peft_model: Any) -> tuple[dict[str, Any], Any]:
    """decoupled-crt stage 2: a new zero delta on the LM-head rows of the label tokens."""
    rows = _make_label_rows(hf._model, sorted({t for a in hf.answer_ids() for t in a}))
    return {"label_rows.delta": rows.delta}, rows


#: ``decoupled_stage2`` → (hf model, peft model) → (stage-2 tensors by name, label rows).
STAGE2 = {"last-layers": _stage2_last_layers, "label-rows": _stage2_label_rows}


def _train(hf: HFModel, ctx: FitContext, cfg: Any, rec: dict[str, Any], folder: Path) -> Adapter:
    from peft import LoraConfig, get_peft_model

    from emobench.longtail.rebalance import class_counts, get_rebalancing, make_loss
    from emobench.models.hf.adapter import release_loaded
    from emobench.models.training import run_summary, seeded

    o = hf.opts
    started = time.perf_counter()
    trainer = _Trainer(hf, ctx, cfg)
    plan = get_rebalancing(ctx.rebalancing)
    counts = class_counts(trainer.y[trainer.train_idx], len(hf.labels))
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
            "train", lora, plan.sampling, make_loss(plan.loss, counts, plan.params), cfg.epochs
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
                "crt", stage2, plan.crt_sampling, make_loss("ce", counts), cfg.crt_epochs
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


def _json_ready(obj: Any) -> Any:
    """``obj`` with NaN / infinite floats as None (no validation split gives NaN metrics)."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def save_adapter(
    peft_model: Any,
    rows: Any,
    folder: Path,
    rec: dict[str, Any],
    history: dict[str, Any],
    summary: dict[str, Any],
    targets: list[str],
) -> str:
    """Write the adapters into a temporary folder beside ``folder``, then rename it into
    place; returns the adapter fingerprint (also recorded in the sidecar)."""
    from safetensors.torch import save_file

    from emobench.io import to_json

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        peft_model.save_pretrained(str(tmp))
        if rows is not None:
            tensors = {"ids": rows.ids.cpu(), "delta": rows.delta.detach().float().cpu()}
            save_file(tensors, str(tmp / LABEL_ROWS_FILE))
        fp = fingerprint(tmp)
        meta = {
            "format": FORMAT,
            "fingerprint": fp,
            "recipe": rec,
            "summary": summary,
            "history": history,
            "lora_modules": list(targets),
        }
        (tmp / SIDECAR).write_text(to_json(meta) + "\n")
        # an older folder is renamed aside (not deleted in place) just before the new one
        # takes its name: a reader on another rank finds a whole folder or none, never half
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # else another process saved the same adapters first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fp


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
