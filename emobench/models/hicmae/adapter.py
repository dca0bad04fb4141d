"""``hicmae:<checkpoint file>``: HiCMAE (Sun et al., Information Fusion 2024), the study's
second vision-only specialist, ported from the authors' code (:mod:`.network`).

A :class:`~emobench.models.base.ClipModel` that gives scores (logits in label order):

* ``finetune = true`` (default): the released VoxCeleb2 pre-trained checkpoint (or any
  checkpoint in the authors' layout) gives the encoders — and for
  ``modality = "audio-visual"`` the fusion blocks; layer weights, ``fc_norm`` and a head
  for the dataset's labels start fresh (seeded), and the whole network is fine-tuned on
  the fold's training clips with the cell's re-balancing recipe by the ``hfvideo:`` loop
  (:mod:`.train`). Fine-tunes are saved in the run's checkpoint folder, keyed by
  everything they depend on, and reused.
* ``finetune = false``: a fine-tuned checkpoint's head is evaluated as is (``{fold}`` in
  the path is the fold number). Its index ``i`` is ``classes[i]``, by default the
  dataset's official order; scores are returned for the run's labels by name.
* Frames: the sampler's presented frames, resampled to ``num_frames`` (16) by segment
  centres (order kept), decoded at ``frame_size`` (160) — the authors resize faces to
  160 × 160, then ``/255`` and ImageNet mean/std. Audio (audio-visual only): the clip's own
  track (PyAV, 16 kHz mono), the span of the presented frames, the authors' Kaldi log-mel
  (:mod:`.fbank`); a clip without a track is given silence and counted (``no_audio``).
* Vision-only enrichment only: ``msce``/``msce-text`` text cannot be read (one error line).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.prompt import value_summary
from emobench.errors import EmobenchError
from emobench.labels import DATASET_ORDERS
from emobench.longtail.rebalance import get_rebalancing
from emobench.models.base import ClipInput, ClipModel, ClipOutput, FitContext
from emobench.models.hfvideo.loading import load_finetuned, save_finetuned
from emobench.models.hicmae.fbank import SAMPLE_RATE
from emobench.models.hicmae.options import HiCMAEError, HiCMAEOptions
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import TRAINED_VIDEO_ENCODER
from emobench.provenance import file_sha256
from emobench.training.checkpoint import recipe_hash
from emobench.video.audio import read_audio
from emobench.video.sampling import segment_centres

#: sidecar format of emobench's HiCMAE fine-tunes
FORMAT = "emobench-hicmae/1"


@register_model(
    "hicmae",
    "HiCMAE (audio-visual masked autoencoder, VoxCeleb2 pre-trained) fine-tuned per fold, "
    "visual (default) or audio-visual; hicmae:<checkpoint .pth | .safetensors> "
    "({fold} in the path: one file per fold)",
    options=HiCMAEOptions,
    kind="clip",
    role=TRAINED_VIDEO_ENCODER,
)
def _create(argument: str, options: dict[str, Any]) -> HiCMAEModel:
    return HiCMAEModel(argument, options)


class HiCMAEModel(ClipModel):
    """A HiCMAE checkpoint as a :class:`ClipModel` (module docstring)."""

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.name = argument
        self.opts: HiCMAEOptions = parse_options(f"hicmae:{argument}", HiCMAEOptions, options)
        self.frame_size = self.opts.frame_size
        self.batch_size = self.opts.batch_size
        self.labels: list[str] = []
        self._net: Any = None  # HiCMAEClassifier
        self._rows: np.ndarray | None = None  # head rows of self.labels (finetune = false)
        self._device: Any = "cpu"
        self._clip_path: Any = lambda clip_id: ""
        self._audio: dict[str, np.ndarray] = {}
        self._checkpoint: str | None = None
        self._reused = False
        self._hash = ""
        self._training: dict[str, Any] = {}
        self.history: dict[str, Any] = {}
        self.reset_stats()
        self._check_exists()

    def _check_exists(self) -> None:
        """A missing checkpoint is one line when the model is built (``--dry-run`` lists it)."""
        if "{fold}" not in self.name:
            self._path(0)
        elif not any(
            Path(self.name.replace("{fold}", str(i))).expanduser().is_file() for i in range(11)
        ):
            raise HiCMAEError(f"{self._where}: no checkpoint file for any fold (0-10)")

    @property
    def _where(self) -> str:
        return f"hicmae:{self.name}"

    @property
    def _av(self) -> bool:
        return self.opts.modality == "audio-visual"

    @property
    def _autocast(self) -> bool:
        return self.opts.dtype == "auto"

    # ------------------------------------------------------------ setup

    def _path(self, fold: int) -> Path:
        path = Path(self.name.replace("{fold}", str(fold))).expanduser()
        if not path.is_file():
            raise HiCMAEError(f"{self._where}: checkpoint file not found: {path}")
        return path

    def _build(self, tensors: dict[str, Any], num_classes: int, seed: int) -> Any:
        import torch

        # lazy: pulls in torch
        from emobench.models.hicmae.checkpoint import config_from_tensors, load_weights
        from emobench.models.hicmae.classifier import HiCMAEClassifier
        from emobench.models.hicmae.network import HiCMAE

        o = self.opts
        cfg = config_from_tensors(
            tensors, o.modality, num_classes, self._where, heads=o.heads,
            image_size=o.frame_size, num_frames=o.num_frames, audio_frames=o.audio_frames,
            mel_bins=o.mel_bins, drop_path=o.drop_path if o.finetune else 0.0,
        )  # fmt: skip
        if o.frame_size % cfg.patch_size or o.num_frames % cfg.tubelet:
            raise HiCMAEError(
                f"{self._where}: frame_size must be a multiple of {cfg.patch_size} and "
                f"num_frames of {cfg.tubelet}"
            )
        torch.manual_seed(seed)
        net = HiCMAE(cfg)
        load_weights(net, tensors, pretrained=o.finetune, where=self._where)
        return HiCMAEClassifier(net)

    def fit(self, ctx: FitContext) -> None:
        """Fine-tune from the checkpoint, or load the fold's fine-tuned head (module
        docstring)."""
        # lazy: pulls in torch
        from emobench.models.hicmae.checkpoint import head_modality, read_checkpoint

        get_rebalancing(ctx.rebalancing)  # an unknown recipe is one line before any work
        self.labels = list(ctx.labels)
        self._device = ctx.device
        self._clip_path = ctx.clip_path
        path = self._path(ctx.fold)
        tensors = read_checkpoint(str(path), self._where)
        self._hash = file_sha256(path)[:16]
        if not self.opts.finetune:
            released = head_modality(tensors)
            if released != self.opts.modality:
                has = (
                    "none (a pre-training checkpoint)" if released is None else f"a {released} one"
                )
                raise HiCMAEError(
                    f"{self._where}: finetune = false needs a fine-tuned "
                    f"{self.opts.modality} head, and {path.name} has {has}; set "
                    "finetune = true or options.modality to match"
                )
            n = int(tensors["head.weight"].shape[0])
            self._rows = self._head_rows(self._head_classes(ctx.dataset, n))
            self._net = self._build(tensors, n, ctx.seed).to(self._device).eval()
            self._checkpoint, self._reused = path.name, True
            return
        self._fit_finetune(ctx, tensors)

    def _head_classes(self, dataset: str, n: int) -> list[str]:
        classes = self.opts.classes
        if classes is None:
            order = DATASET_ORDERS.get(dataset)
            if order is None or len(order) != n:
                raise HiCMAEError(
                    f"{self._where}: the head has {n} classes and dataset {dataset!r} has no "
                    "official order of that size: give options.classes (names in head order)"
                )
            classes = list(order)
        if len(classes) != n:
            raise HiCMAEError(
                f"{self._where}: options.classes names {len(classes)} classes, the head has {n}"
            )
        return classes

    def _head_rows(self, classes: list[str]) -> np.ndarray:
        missing = [lb for lb in self.labels if lb not in classes]
        if missing:
            raise HiCMAEError(
                f"{self._where}: the head has no class {missing[0]!r} (it has {classes})"
            )
        return np.array([classes.index(lb) for lb in self.labels], np.int64)

    def _recipe(self, ctx: FitContext, cfg: Any) -> dict[str, Any]:
        rows = ctx.train_index.sort("clip_id").select(["clip_id", "label", "n_frames"])
        o = self.opts
        return {
            "family": "hicmae", "format": FORMAT, "weights": self._hash,
            "data": hashlib.sha256(rows.write_csv().encode()).hexdigest()[:16],
            "labels": list(ctx.labels), "rebalancing": ctx.rebalancing,
            "options": o.model_dump(exclude={"reuse_checkpoints", "preload_max_gb", "finetune"}),
            "lr": o.finetune_lr(), "train": cfg.to_dict(),
        }  # fmt: skip

    def _fit_finetune(self, ctx: FitContext, tensors: dict[str, Any]) -> None:
        # lazy: pulls in torch
        from emobench.training.loop import TrainConfig
        from emobench.training.video import (
            ClipStore,
            FinetuneSettings,
            finetune,  # numbers layers by net.layer_ids()
        )

        if ctx.train_index is None or ctx.train_index.height < 2:
            raise HiCMAEError(f"{self._where}: needs at least 2 training clips to fine-tune")
        unknown = sorted(set(ctx.train_index["label"].to_list()) - set(ctx.labels))
        if unknown:
            raise HiCMAEError(f"{self._where}: training label {unknown[0]!r} is not a class")
        o = self.opts
        settings = {**ctx.train_options, **o.train}
        if o.epochs is not None:
            settings["epochs"] = o.epochs
        cfg = TrainConfig(**{**settings, "seed": ctx.seed, "device": str(ctx.device)})
        recipe = self._recipe(ctx, cfg)
        path = (
            Path(ctx.checkpoint_dir) / f"hicmae-{ctx.rebalancing}-{recipe_hash(recipe)}.safetensors"
        )
        net = self._build(tensors, len(self.labels), ctx.seed)
        meta = load_finetuned(net, path, ctx.warn) if o.reuse_checkpoints else None
        self._checkpoint, self._reused = path.name, meta is not None
        if meta is not None:
            self.history = meta.get("history", {})
        else:
            train = ctx.train_index.sort("clip_id")
            gib = float(train["n_frames"].sum()) * self.frame_size**2 * 3 / 2**30
            store = ClipStore(
                train, lambda rows: self._load_train(ctx, rows), gib <= o.preload_max_gb
            )
            run = FinetuneSettings(
                num_frames=o.num_frames, batch_size=o.batch_size, grad_accum=o.grad_accum,
                lr=o.finetune_lr(), epochs=cfg.epochs, autocast=self._autocast,
                layer_decay=o.layer_decay, warmup_epochs=o.warmup_epochs,
            )  # fmt: skip
            codes = np.array([self.labels.index(lb) for lb in train["label"].to_list()], np.int64)
            what = f"fine-tuning {self._where} ({ctx.rebalancing})"
            self.history = finetune(
                net, store, codes, len(self.labels), ctx.rebalancing, cfg, run,
                progress=lambda epoch, n, _m: ctx.progress(what, epoch, n),
            )  # fmt: skip
            self.history["preloaded"] = store.preload
            save_finetuned(net, path, {"recipe": recipe, "history": self.history})
        self._net = net.to(self._device).eval()
        keys = (
            "best_epoch",
            "best_val_uar",
            "epochs_run",
            "phase1_best_val_uar",
            "n_train",
            "n_val",
        )
        self._training = {k: self.history[k] for k in keys if k in self.history}

    # ------------------------------------------------------------ audio

    def _samples(self, clip_id: str, path: str) -> np.ndarray:
        """The clip's 16 kHz mono track (cached), silence when it has none."""

        if clip_id not in self._audio:
            samples = read_audio(path, SAMPLE_RATE) if path else None
            if samples is None or samples.size == 0:
                self._stats["no_audio"] += 1
                samples = np.zeros(0, np.float32)
            self._audio[clip_id] = samples
        return self._audio[clip_id]

    def _rows_per_frame(self) -> int:
        # lazy: pulls in torch
        from emobench.models.hicmae.classifier import audio_rows

        o = self.opts
        return audio_rows(o.num_frames, o.frame_size, o.audio_frames, o.mel_bins)

    def _av_clip(self, frames: np.ndarray, samples: np.ndarray, fps: float) -> Any:
        # lazy: pulls in torch
        from emobench.models.hicmae.classifier import AVClip

        o = self.opts
        return AVClip(frames, samples, fps, self._rows_per_frame(), o.audio_frames, o.mel_bins)

    def _load_train(self, ctx: FitContext, rows: Any) -> tuple[list[Any], list[int]]:
        frames, kept = ctx.load_frames(self, rows)  # type: ignore[arg-type]
        if not self._av:
            return frames, kept
        clips = []
        for f, k in zip(frames, kept, strict=True):
            row = rows.row(k, named=True)
            clips.append(
                self._av_clip(f, self._samples(row["clip_id"], row["path"]), float(row["fps"]))
            )
        return clips, kept

    # ------------------------------------------------------------ inference

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        """Logits in :attr:`labels` order (module docstring)."""
        # lazy: pulls in torch
        from emobench.training.video import run_batches

        if self._net is None:
            raise EmobenchError(f"{self._where}: predict() before fit()")
        n, side = self.opts.num_frames, self.frame_size
        inputs = []
        for clip in clips:
            if clip.enrichment in ("msce", "msce-text"):
                raise HiCMAEError(
                    f"{self._where} is a vision-only classifier: it cannot read the text of "
                    f"enrichment {clip.enrichment!r}; give it 'none' or 'msce-dense'"
                )
            frames = np.asarray(clip.frames)
            if frames.ndim != 4 or frames.shape[1:] != (side, side, 3):
                raise HiCMAEError(
                    f"{self._where}: clip {clip.clip_id!r} frames have shape {frames.shape}, "
                    f"expected (T, {side}, {side}, 3)"
                )
            pos = segment_centres(len(frames), n).astype(np.int64)
            self._stats["frames_in"].append(len(frames))
            self._stats["resampled"] += int(len(frames) != n)
            if self._av:
                samples = self._samples(clip.clip_id, self._clip_path(clip.clip_id))
                av = self._av_clip(frames[pos], samples, clip.fps)
                inputs.append(av.pack_at(np.asarray(clip.indices)[pos]))
            else:
                inputs.append(frames[pos])
        scores = run_batches(self._net, inputs, self.batch_size, self._device, self._autocast)
        if self._rows is not None:
            scores = scores[:, self._rows]
        self._stats["clips"] += len(clips)
        return [ClipOutput(scores=s.astype(np.float64)) for s in scores]

    # ------------------------------------------------------------ records

    def reset_stats(self) -> None:
        self._stats: dict[str, Any] = {"frames_in": [], "resampled": 0, "clips": 0, "no_audio": 0}

    def describe(self) -> dict[str, Any]:
        s = self._stats
        return {
            "model": self._where, "weights_hash": self._hash, "modality": self.opts.modality,
            "mode": "fine-tuned" if self.opts.finetune else "released head",
            "frames_in": value_summary(s["frames_in"]), "frames_model": self.opts.num_frames,
            "resampled_clips": s["resampled"], "frame_size": self.frame_size,
            "normalisation": "imagenet", "no_audio": s["no_audio"] if self._av else None,
            "autocast_bf16": self._autocast and str(self._device).startswith("cuda"),
            "checkpoint": self._checkpoint, "checkpoint_reused": self._reused,
            "training": self._training,
        }  # fmt: skip


__all__ = ["HiCMAEModel"]
