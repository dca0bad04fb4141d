"""``hf:<model id or local folder>``: generative video VLMs through Hugging Face transformers.

A :class:`~emobench.models.base.ClipModel`: each clip's sampled frames (already sampled and
ordered by the engine) go to the model as one video (``input = "video"``) or as a list of
images (``input = "images"``), never re-sampled by the processor, followed by the question,
the label set as options (``option_order = "fixed"`` or ``"permuted"`` per clip, seeded by
the clip id) and a one-word answer instruction, rendered with the model's own chat template.

* ``scoring = "generate"`` (default): greedy decoding of ``max_new_tokens`` tokens; the raw
  answer is returned as text and parsed by the engine.
* ``scoring = "loglik"``: the log-probability of each label's answer string after the
  prompt, all labels from one prefill (the prompt's KV cache is shared by the label
  continuations); ``length_norm = true`` takes the mean per-token log-probability.

Models load from a local folder or the local Hugging Face cache only (nothing is
downloaded; a missing model is one error line). Every answer is cached under the run's
cache folder (``hf-generations/``), keyed by the model files' fingerprint, the processor
and generation settings, the prompt and the frames' bytes, so a rerun or a sweep that
repeats a setting makes no model call. With ``msce``/``msce-text`` enrichment the gaps
between keyframes are described first (:mod:`emobench.chat.msce`) by the same model
or by ``msce_describer``.

``pipeline = true`` (default) runs the throughput path of :mod:`emobench.models.hf.pipeline`:
the clips that miss the cache are ordered by estimated prompt length so each batch pads
little, and the processor encodes the next batch in a thread while the model runs this one;
the engine hands ``batch_size × bucket_batches`` clips per call so there is room to sort.
Answers equal the naive path's (``pipeline = false``). Attention uses the kernel
transformers chooses (sdpa where the model supports it) unless ``attn_implementation``
names one (e.g. ``flash_attention_2``).

``finetune = "lora"`` trains LoRA adapters in :meth:`HFModel.fit` on the fold's training
clips with the cell's re-balancing recipe (:mod:`emobench.models.hf.finetune`); scoring then
runs with the adapters, the answer cache keys carry the adapters' fingerprint, and the model
with adapters is kept apart from the zero-shot one in the loaded-model cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.cache import content_digest
from emobench.chat.prompt import ChatPromptMixin
from emobench.chat.request import (  # noqa: F401  (re-exported: importable from here)
    DEFAULT_INSTRUCTION,
    DEFAULT_QUESTION,
    Request,
)
from emobench.errors import EmobenchError
from emobench.io import write_json_atomic
from emobench.models.base import ClipInput, ClipModel, ClipOutput, FitContext
from emobench.models.hf.batching import run_batches
from emobench.models.hf.encoding import encode_batch
from emobench.models.hf.kernels import batched_vision_attention
from emobench.models.hf.loaded import _LOADED, release_loaded, remember  # noqa: F401
from emobench.models.hf.loading import (
    folder_preprocess,
    load_model,
    model_hash,
    resolve_model,
    torch_dtype,
)
from emobench.models.hf.loglik import label_loglik
from emobench.models.hf.lora import adapters_off, attach
from emobench.models.hf.options import (  # noqa: F401  (re-exported: importable from here)
    CACHE_VERSION,
    FINETUNE_SETTINGS,
    MODEL_CALLS,
    HFOptions,
    crop_clip,
)
from emobench.models.hf.pipeline import estimate_tokens, stage_for_device
from emobench.models.hf.records import cell_record, check_frames, note_answers
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import FamilyRole, option_on
from emobench.provenance import code_version


@register_model(
    "hf",
    "generative video VLM through transformers (greedy answer or label log-likelihood; "
    'zero-shot, or LoRA fine-tuned per fold with finetune = "lora"), '
    "hf:<hub id in the local cache | local folder>, e.g. hf:Qwen/Qwen2.5-VL-7B-Instruct",
    options=HFOptions,
    kind="clip",
    gives_scores=lambda o: o.get("scoring", "generate") == "loglik",
    # a generative VLM: zero-shot unless fine-tuned (finetune = "lora")
    role=FamilyRole("vlm", trained=option_on("finetune")),
)
def _create(argument: str, options: dict[str, Any]) -> HFModel:
    return HFModel(argument, options)


class HFModel(ChatPromptMixin, ClipModel):
    """A transformers image-text-to-text model as a :class:`ClipModel` (module docstring)."""

    family = "hf"

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.name = argument
        self.options = dict(options)
        self.opts: HFOptions = parse_options(f"hf:{argument}", HFOptions, options)
        self.folder = resolve_model(argument, self.opts.revision)
        #: clips per predict() call: room to sort by length on the pipelined path
        self.batch_size = self.opts.batch_size * (
            self.opts.bucket_batches if self.opts.pipeline else 1
        )
        #: batches the processor may run ahead of the model (pipelined path)
        self.lookahead = 1
        #: the processor and tokenizer are used by one thread at a time (fast tokenizers
        #: refuse concurrent use)
        self._proc_lock = threading.Lock()
        #: (batch, future, prefetcher) of the batch being run, whose encoding is prepared
        self._prepared: tuple[Any, Any, Any] | None = None
        #: prompt length of each request encoded in the current _compute, by id
        self._lengths: dict[int, int] = {}
        self.gap_frames = self.opts.gap_frames
        pre = folder_preprocess(self.folder)
        self.frame_size = self.opts.frame_size or pre.get("frame_size")
        #: centre crop side of the frames shown to the model (None: whole frames)
        self.crop = self.opts.crop if self.opts.crop is not None else pre.get("crop")
        self.labels: list[str] = []
        self.describer: HFModel | None = None
        if self.opts.msce_describer:
            family, _, arg = self.opts.msce_describer.partition(":")
            if family != "hf" or not arg:
                raise EmobenchError(
                    f"hf:{argument}: options.msce_describer must be an hf:<model> name, "
                    f"got {self.opts.msce_describer!r}"
                )
            # the describer is the base model: no msce settings, no fine-tuning
            keep = {
                k: v
                for k, v in options.items()
                if not k.startswith("msce_") and k not in FINETUNE_SETTINGS and k != "finetune"
            }
            if self.opts.msce_describer_input is not None:
                keep["input"] = self.opts.msce_describer_input
            self.describer = HFModel(arg, keep)
        self._device: Any = "cpu"
        self._model: Any = None
        self._processor: Any = None
        self._hash = ""
        self._cache_dir: Path | None = None
        self._inner_batch = self.opts.batch_size
        #: fine-tuned adapters of the current fit (finetune = "lora"), else None
        self._adapter: Any = None
        #: (peft model, label-row delta) while a model with adapters is loaded
        self._adapted: tuple[Any, Any] | None = None
        self.reset_stats()

    # ------------------------------------------------------------ setup

    def fit(self, ctx: FitContext) -> None:
        """Zero-shot: remember the labels and device, fingerprint the model files, choose
        the answer cache folder; weights load on the first answer that is not cached."""
        self.labels = list(ctx.labels)
        self._device = ctx.device
        self._hash = model_hash(self.folder)
        self._cache_dir = self._open_cache(ctx, self.opts.cache_dir, "hf-generations")
        self._warn = ctx.warn
        if self.describer is not None:
            self.describer.fit(ctx)
        if self.opts.finetune == "lora":
            # lazy: the fine-tuning loop imports torch: loaded when a fit needs it
            from emobench.models.hf.finetune import fit_lora

            self._model = self._processor = self._adapted = None
            self._adapter = fit_lora(self, ctx)
            self.reset_stats()  # validation scoring during training is not a cell's work

    def _install_adapted(self, peft_model: Any, rows: Any, fingerprint: str) -> None:
        """Keep a just-trained model with adapters for scoring, in the loaded-model cache
        under a key that carries the adapter fingerprint."""
        self._model = peft_model.get_base_model()
        self._adapted = (peft_model, rows)
        remember(self._load_key(fingerprint), (self._model, self._processor, self._adapted))

    def _processor_kwargs(self) -> dict[str, Any]:
        o = self.opts
        kw: dict[str, Any] = {}
        if o.min_pixels is not None:
            kw["min_pixels"] = o.min_pixels
        if o.max_pixels is not None:
            kw["max_pixels"] = o.max_pixels
        if o.size is not None:
            kw["size"] = dict(o.size)
        return kw

    def _load_key(self, adapter: str | None) -> tuple[Any, ...]:
        o = self.opts
        return (
            str(self.folder),
            self._hash,
            o.dtype,
            o.device_map,
            o.attn_implementation,
            str(self._device),
            json.dumps(self._processor_kwargs(), sort_keys=True),
            adapter,  # None: the plain model; a fingerprint: that model with those adapters
        )

    def load_fresh(self, device: Any) -> tuple[Any, Any]:
        """A new (model, processor) from the folder with this model's load options (dtype,
        device map, attention, processor pixel settings), shared with nobody."""
        o = self.opts
        return load_model(
            self.folder,
            device=device,
            dtype=o.dtype,
            device_map=o.device_map,
            attn_implementation=o.attn_implementation,
            trust_remote_code=o.trust_remote_code,
            processor_kwargs=self._processor_kwargs(),
        )

    def _load(self) -> None:
        if self._model is not None:
            return
        fp = self._adapter.fingerprint if self._adapter is not None else None
        key = self._load_key(fp)
        if key not in _LOADED:
            model, processor = self.load_fresh(self._device)
            adapted = None
            if self._adapter is not None:  # a fresh copy: peft wraps it in place
                adapted = attach(model, self._adapter.folder)
                model = adapted[0].get_base_model()
            remember(key, (model, processor, adapted))
        self._model, self._processor, self._adapted = _LOADED[key]

    @property
    def _input_device(self) -> Any:
        return getattr(self._model, "device", self._device)

    # ------------------------------------------------------------ stats

    def reset_stats(self) -> None:
        self._stats: dict[str, Any] = {
            "frames": [],
            "pixels": [],
            "fps": [],
            "visual_tokens": [],
            "model_calls": 0,
            "cache_hits": 0,
            "describer_calls": 0,
            "prompt": None,
            "options": None,
            "orders": set(),
            "tokens": 0,
            "pad_tokens": 0,
            "unbucketed_tokens": 0,
            "unbucketed_pad_tokens": 0,
            "prefetch_peak": 0,
            "processor_wait_s": 0.0,
            "describer": {"visual_tokens": [], "pixels": [], "input": set()},
            "input_shown": set(),
        }
        if self.describer is not None:
            self.describer.reset_stats()

    def describe(self) -> dict[str, Any]:
        return cell_record(self)

    # ------------------------------------------------------------ prompts

    def _prepare_clip(self, clip: ClipInput) -> ClipInput:
        return crop_clip(clip, self.crop)

    def _describer_chat(self, fps: float) -> Any:
        describer = self.describer or self  # the msce_describer option, else this model

        def chat(contents: list[list[dict[str, Any]]]) -> list[str]:
            return describer.chat(contents, fps=fps)

        return chat

    def _gaps_as_video(self) -> bool:
        describer = self.describer or self
        return (self.opts.msce_describer_input or describer.opts.input) == "video"

    def chat(self, contents: list[list[dict[str, Any]]], fps: float | None = None) -> list[str]:
        """Greedy answers (``msce_max_new_tokens``) to user turns given as content items
        (``{"type": "image"|"video"|"text", ...}``, in order): MSCE's describer primitive.
        Cached like every answer."""
        reqs = [Request(list(c), fps) for c in contents]
        # descriptions come from the base model, also when this model is fine-tuned
        entries = self._answer(
            reqs, "generate", self.opts.msce_max_new_tokens, adapters=False, role="describer"
        )
        return [e["text"] for e in entries]

    # ------------------------------------------------------------ predict

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        if not self.labels:
            raise EmobenchError(f"hf:{self.name}: predict() before fit()")
        pairs = [self._clip_request(c) for c in clips]
        check_frames(self, [len(c.frames) for c in clips])
        reqs, contexts = [r for r, _ in pairs], [c for _, c in pairs]
        mode = self.opts.scoring
        entries = self._answer(reqs, mode, self.opts.max_new_tokens)
        outs = []
        for e, ctx in zip(entries, contexts, strict=True):
            if mode == "loglik":
                outs.append(ClipOutput(scores=np.asarray(e["scores"], np.float64), context=ctx))
            else:
                outs.append(ClipOutput(text=e["text"], context=ctx))
        return outs

    # ------------------------------------------------------------ the answer cache

    def _key(self, req: Request, mode: str, max_new_tokens: int, adapters: bool = True) -> str:
        import torch  # noqa: F401  (dtype names below are torch's)

        o = self.opts
        head: dict[str, Any] = {
            "v": CACHE_VERSION,
            "code": code_version()["source"],  # how prompts become tokens and answers
            "model": self._hash,
            "dtype": str(torch_dtype(o.dtype, self._device)),
            "attn": o.attn_implementation,
            "processor": self._processor_kwargs(),
            "fps": None if req.fps is None else round(float(req.fps), 6),
            "mode": mode,
        }
        if adapters and self._adapter is not None:  # fine-tuned answers never meet zero-shot
            head["adapter"] = self._adapter.fingerprint
        if mode == "generate":
            head["max_new_tokens"] = max_new_tokens
        else:
            head["answers"] = [o.answer_prefix + lb for lb in self.labels]
            head["length_norm"] = o.length_norm
        head["content"] = content_digest(req)
        return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()

    def _answer(
        self,
        reqs: list[Request],
        mode: str,
        max_new_tokens: int,
        adapters: bool = True,
        role: str = "classifier",
    ) -> list[dict[str, Any]]:
        """One cache entry per request (``text`` or ``scores``, with visual token and pixel
        counts, recorded under ``role``: MSCE's describer apart from the classifier),
        computing the missing ones in batches; ``adapters=False`` answers as the base
        model (fine-tuned adapters switched off)."""
        keys = [self._key(r, mode, max_new_tokens, adapters) for r in reqs]
        entries, missing = self._cached(keys, ("scores",) if mode == "loglik" else ("text",))
        if missing:
            # requests with one key (e.g. msce-text contexts that came out alike) are
            # computed once: one answer per key, whatever batch it would have landed in
            first: dict[str, int] = {}
            for i in missing:
                first.setdefault(keys[i], i)
            todo = list(first.values())
            self._load()
            if adapters or self._adapted is None:
                done = self._compute([reqs[i] for i in todo], mode, max_new_tokens)
            else:
                with adapters_off(self._adapted):
                    done = self._compute([reqs[i] for i in todo], mode, max_new_tokens)
            for i, e in zip(todo, done, strict=True):
                path = self._cache_path(keys[i])
                if path is not None:
                    write_json_atomic(path, e)
            by_key = {keys[i]: e for i, e in zip(todo, done, strict=True)}
            for i in missing:
                entries[i] = by_key[keys[i]]
        note_answers(self._stats, role, entries)  # type: ignore[arg-type]
        return entries  # type: ignore[return-value]

    def _compute(self, reqs: list[Request], mode: str, max_new_tokens: int) -> list[dict[str, Any]]:
        """Run the model on ``reqs`` in batches of one frame count where the architecture
        needs it (:mod:`emobench.models.hf.batching`); on CUDA out-of-memory halve the batch.

        Pipelined (module docstring): the requests run longest first, the processor one
        batch ahead in a thread; the answers come back in the order of ``reqs``."""
        with batched_vision_attention(self._model, self.opts.pipeline):
            return run_batches(self, reqs, mode, max_new_tokens)

    def _encode_staged(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]:
        """:meth:`_encode_cpu`, then ready for the copy to the device (pixels in the model's
        dtype where it casts them anyway, pinned for CUDA): the pipeline thread's work."""
        enc, stats = self._encode_cpu(reqs)
        return stage_for_device(enc, self._model, self._input_device), stats

    def _estimate(self, req: Request) -> int:
        """The request's estimated prompt length (:func:`~emobench.models.hf.pipeline.
        estimate_tokens`). A Qwen-VL-style processor (one with ``merge_size``) gives the
        pixels per token, the temporal patch and the pixel bounds its resize clamps to
        (``size`` shortest/longest edge are pixel counts there; the options override);
        other processors are ordered by raw pixels × frames."""
        kw: dict[str, Any] = {}
        p = getattr(self._processor, "video_processor", None) or getattr(
            self._processor, "image_processor", None
        )
        merge = getattr(p, "merge_size", None)
        if isinstance(merge, int) and isinstance(getattr(p, "patch_size", None), int):
            kw["pixels_per_token"] = (p.patch_size * merge) ** 2
            kw["temporal_patch"] = int(getattr(p, "temporal_patch_size", 1) or 1)
            size = dict(self.opts.size or {}) or {
                k: getattr(getattr(p, "size", None), k, None)
                for k in ("shortest_edge", "longest_edge")
            }
            kw["min_pixels"] = self.opts.min_pixels or size.get("shortest_edge")
            kw["max_pixels"] = self.opts.max_pixels or size.get("longest_edge")
        return estimate_tokens(req.content, **kw)

    def _attn_implementation(self) -> str | None:
        """The attention kernel the loaded model runs (transformers' choice when the
        option is unset: sdpa where the model supports it)."""
        cfg = getattr(self._model, "config", None)
        got = getattr(cfg, "_attn_implementation", None) if cfg is not None else None
        return got or self.opts.attn_implementation

    # ------------------------------------------------------------ model calls

    def encode(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]:
        """The processor's batch for ``reqs`` (left-padded) on the model's device, and
        per-request visual stats; on the pipelined path the batch the background thread
        prepared (its error, if the processor failed, raised here as is)."""
        prep = self._prepared
        if prep is not None and prep[0] is reqs and prep[1] is not None:
            enc, stats = prep[2].result(prep[1])
        else:
            enc, stats = self._encode_cpu(reqs)
        mask = enc.get("attention_mask")
        if mask is not None:
            real = mask.sum(dim=1).tolist()
            self._stats["tokens"] += int(mask.numel())
            self._stats["pad_tokens"] += int(mask.numel() - sum(real))
            for r, n in zip(reqs, real, strict=True):
                self._lengths[id(r)] = int(n)
        return enc.to(self._input_device, non_blocking=True), stats

    def _encode_cpu(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]:
        """The processor's batch for ``reqs`` (left-padded, on the CPU) and per-request
        visual stats (:func:`emobench.models.hf.encoding.encode_batch`); safe to run in the
        pipeline's thread."""
        with self._proc_lock:
            return self._encode_locked(reqs)

    def _encode_locked(self, reqs: list[Request]) -> tuple[Any, list[dict[str, Any]]]:
        kw = self._processor_kwargs()
        return encode_batch(self._model, self._processor, reqs, kw, self.name)

    def _generate(self, reqs: list[Request], max_new_tokens: int) -> list[dict[str, Any]]:
        import torch

        enc, stats = self.encode(reqs)
        with torch.inference_mode():
            seq = self._model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
        MODEL_CALLS["generate"] += 1
        self._stats["model_calls"] += 1
        new = seq[:, enc["input_ids"].shape[1] :]
        with self._proc_lock:
            texts = self._processor.batch_decode(new, skip_special_tokens=True)
        return [{**s, "text": t.strip()} for s, t in zip(stats, texts, strict=True)]

    def answer_ids(self) -> list[list[int]]:
        """Token ids of each label's answer string (``answer_prefix + label``)."""
        tok = self._processor.tokenizer
        out = []
        for lb in self.labels:
            with self._proc_lock:
                ids = tok(self.opts.answer_prefix + lb, add_special_tokens=False)["input_ids"]
            if not ids:
                raise EmobenchError(f"hf:{self.name}: the answer for {lb!r} has no tokens")
            out.append(list(ids))
        return out

    def _cache_kw(self) -> str:
        params = inspect.signature(self._model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _loglik(self, reqs: list[Request]) -> list[dict[str, Any]]:
        return label_loglik(self, reqs)
