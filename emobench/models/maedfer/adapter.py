"""``maedfer:<checkpoint file or folder>``: MAE-DFER (Sun et al., ACM MM 2023) from its
released checkpoints, evaluated as released or fine-tuned per fold.

* ``finetune = false`` (default): each fold loads its own fine-tuned checkpoint (``{fold}``
  in the path, e.g. ``maedfer:/w/dfew/fold{fold}/checkpoint-best.pth``) and its head is
  used as is. Head index ``i`` is class ``i`` of the dataset's official order (DFEW:
  1 Happy … 7 Fear; MAFW's 11; FERV39k's 7: :data:`emobench.labels.DATASET_ORDERS`),
  mapped to emobench's names; ``classes = [...]`` overrides. Scores come out in the run's
  label order; a head class the run does not have is left out (a warning says so).
* ``finetune = true``: the checkpoint's encoder (the VoxCeleb2 pre-trained one) gets a
  new head for the run's labels and is fine-tuned on the fold with the cell's
  re-balancing recipe by :func:`emobench.models.hfvideo.train.finetune` (TSN frame draws,
  layer-wise lr decay 0.75, warm-up, cosine, bf16 autocast on CUDA, decoupled cRT),
  checkpointed and reused like ``hfvideo:``. The released recipe's mixup / cutmix, label
  smoothing, RandAugment and random erasing are not reproduced (emobench's recipes
  decide the loss and sampling).
* Frames are decoded at ``image_size`` (160) and ImageNet-normalised (``/255``, mean/std:
  the released loaders; the 0.5 values of their ``_cfg`` are unused). Which frames the
  network sees: :mod:`emobench.models.maedfer.protocol`. fp32 on CPU; ``dtype = "auto"``
  uses bf16 autocast on CUDA, which moves probabilities by ~0.02 (``describe()`` says
  which was used).
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
from emobench.models.hfvideo.adapter import resample_indices
from emobench.models.hfvideo.loading import load_finetuned, save_finetuned
from emobench.models.maedfer.checkpoint import (
    RELEASED,
    infer_config,
    load_network,
    missing_folds,
    released_tensors,
    resolve_checkpoint,
    sampling_rate,
)
from emobench.models.maedfer.options import MAEDFEROptions
from emobench.models.maedfer.protocol import authors_views, average_softmax
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import TRAINED_VIDEO_ENCODER
from emobench.models.videovit import CheckpointError
from emobench.provenance import file_sha256
from emobench.training.checkpoint import recipe_hash


@register_model(
    "maedfer",
    "MAE-DFER (LGI-Former) from its released checkpoints: the fine-tuned head per fold "
    "({fold} in the path), or fine-tuned here from the pre-trained encoder "
    "(finetune = true); maedfer:<checkpoint file or folder>",
    options=MAEDFEROptions,
    kind="clip",
    role=TRAINED_VIDEO_ENCODER,
)
def _create(argument: str, options: dict[str, Any]) -> MAEDFERModel:
    return MAEDFERModel(argument, options)


def _fingerprint(path: Path) -> str:
    """Name and SHA-256 of all of a weights file's bytes (memoised per process): a file
    changed anywhere, e.g. some layers re-trained and saved over it at the same size, is
    another model (its first and last MiB alone did not see that)."""
    h = hashlib.sha256(f"{path.name}\0{file_sha256(path)}".encode())
    return h.hexdigest()[:16]


class MAEDFERModel(ClipModel):
    """MAE-DFER as a :class:`ClipModel` (module docstring)."""

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.name = argument
        self.opts: MAEDFEROptions = parse_options(f"maedfer:{argument}", MAEDFEROptions, options)
        missing = missing_folds(argument)
        if missing is not None and len(missing) == 5:
            first = argument.replace("{fold}", "1")
            raise CheckpointError(
                f"{self._where}: no checkpoint for any of folds 1-5 (e.g. {first}): give "
                "the released per-fold checkpoints' path with {fold} for the fold number"
            )
        if missing is None:
            resolve_checkpoint(argument, None, self._where)  # a missing file: one line now
        self.frame_size = self.opts.image_size or RELEASED["image_size"]
        self.num_frames = self.opts.frames or RELEASED["frames"]
        self.batch_size = self.opts.batch_size
        self.labels: list[str] = []
        self._net: Any = None
        self._columns: list[int] = []
        self._device: Any = "cpu"
        self._rate = RELEASED["sampling_rate"]
        self._info: dict[str, Any] = {}
        self.history: dict[str, Any] = {}
        self.reset_stats()

    @property
    def _where(self) -> str:
        return f"maedfer:{self.name}"

    @property
    def _autocast(self) -> bool:
        return self.opts.dtype == "auto"

    # ------------------------------------------------------------ setup

    def _load(self, ctx: FitContext, pretrained: bool) -> Any:
        path = resolve_checkpoint(self.name, ctx.fold, self._where)
        rel = released_tensors(path, self._where)
        if not pretrained and not rel.has_head:
            raise CheckpointError(
                f"{self._where}: {path.name} has no classification head (a pre-trained "
                "encoder): set options.finetune = true to fine-tune it on each fold"
            )
        shape = self.opts.shape_options()
        if pretrained:
            shape["drop_path"] = self.opts.drop_path
        cfg = infer_config(rel, shape, len(ctx.labels) if pretrained else None, self._where)
        if (cfg.image_size, cfg.frames) != (self.frame_size, self.num_frames):
            raise CheckpointError(
                f"{self._where}: {path.name} was trained on {cfg.frames} frames of "
                f"{cfg.image_size} px: set options.image_size = {cfg.image_size} and "
                f"options.frames = {cfg.frames}"
            )
        self._rate = sampling_rate(rel, self.opts.sampling_rate)
        self._info = {
            "checkpoint": str(path),
            "checkpoint_hash": _fingerprint(path),
            "config": cfg.describe(),
            "args_in_checkpoint": sorted(rel.args),
        }
        return load_network(rel, cfg, self._where, pretrained=pretrained)

    def _head_classes(self, ctx: FitContext, n: int) -> list[str]:
        classes = self.opts.classes or list(DATASET_ORDERS.get(ctx.dataset, ()))
        if not classes:
            raise CheckpointError(
                f"{self._where}: no official class order for dataset {ctx.dataset!r}: give "
                "options.classes (the head's classes in head order)"
            )
        if len(classes) != n:
            raise CheckpointError(
                f"{self._where}: the head has {n} classes, the class order has "
                f"{len(classes)} ({', '.join(classes)}): give options.classes"
            )
        return classes

    def fit(self, ctx: FitContext) -> None:
        """Load the fold's released checkpoint, or fine-tune from the pre-trained encoder
        (module docstring)."""
        self.labels = list(ctx.labels)
        self._device = ctx.device
        if self.opts.finetune:
            self._fit_finetune(ctx)
        else:
            net = self._load(ctx, pretrained=False)
            classes = self._head_classes(ctx, net.head.out_features)
            absent = [lb for lb in self.labels if lb not in classes]
            if absent:
                raise CheckpointError(
                    f"{self._where}: label {absent[0]!r} of {ctx.dataset} is not a class of "
                    f"the head ({', '.join(classes)}): give options.classes"
                )
            extra = [c for c in classes if c not in self.labels]
            if extra:
                ctx.warn(f"{self._where}: head classes {extra} are not in the run's labels: "
                         "their scores are left out")  # fmt: skip
            self._columns = [classes.index(lb) for lb in self.labels]
            self._info["head_classes"] = classes
            self._net = net.to(self._device).eval()

    def _fit_finetune(self, ctx: FitContext) -> None:
        # lazy: pulls in torch
        from emobench.training.loop import TrainConfig
        from emobench.training.video import ClipStore, FinetuneSettings, finetune

        get_rebalancing(ctx.rebalancing)
        if ctx.train_index is None or ctx.train_index.height < 2:
            raise EmobenchError(f"{self._where}: needs at least 2 training clips to fine-tune")
        unknown = sorted(set(ctx.train_index["label"].to_list()) - set(self.labels))
        if unknown:
            raise EmobenchError(f"{self._where}: training label {unknown[0]!r} is not a class")
        net = self._load(ctx, pretrained=True)
        net.reset_head(ctx.seed, self.opts.init_scale)
        o = self.opts
        settings_in = {**ctx.train_options, **o.train}
        if o.epochs is not None:
            settings_in["epochs"] = o.epochs
        cfg = TrainConfig(**{**settings_in, "seed": ctx.seed, "device": str(ctx.device)})
        lr = o.finetune_lr()
        train = ctx.train_index.sort("clip_id")
        data = hashlib.sha256(
            train.select(["clip_id", "label", "n_frames"]).write_csv().encode()
        ).hexdigest()[:16]
        recipe = {
            "family": "maedfer", "checkpoint": self._info["checkpoint_hash"], "data": data,
            "labels": self.labels, "rebalancing": ctx.rebalancing,
            "config": self._info["config"], "train": cfg.to_dict(), "lr": lr,
            "options": o.model_dump(exclude={"reuse_checkpoints", "preload_max_gb"}),
        }  # fmt: skip
        stem = f"maedfer-{ctx.rebalancing}-{recipe_hash(recipe)}"
        path = Path(ctx.checkpoint_dir) / f"{stem}.safetensors"
        meta = load_finetuned(net, path, ctx.warn) if o.reuse_checkpoints else None
        self._info.update(finetuned=path.name, finetuned_reused=meta is not None)
        if meta is not None:
            self.history = meta.get("history", {})
        else:
            gib = float(train["n_frames"].sum()) * self.frame_size**2 * 3 / 2**30
            store = ClipStore(train, lambda rows: ctx.load_frames(self, rows),
                              preload=gib <= o.preload_max_gb)  # fmt: skip
            s = FinetuneSettings(
                num_frames=self.num_frames, batch_size=o.batch_size, grad_accum=o.grad_accum,
                lr=lr, epochs=cfg.epochs, autocast=self._autocast, layer_decay=o.layer_decay,
                warmup_epochs=o.warmup_epochs,
            )  # fmt: skip
            codes = np.array([self.labels.index(lb) for lb in train["label"].to_list()])

            def progress(epoch: int, n: int, _metrics: dict[str, Any]) -> None:
                ctx.progress(f"fine-tuning {self._where} ({ctx.rebalancing})", epoch, n)

            self.history = finetune(net, store, codes, len(self.labels), ctx.rebalancing,
                                    cfg, s, progress=progress)  # fmt: skip
            save_finetuned(net, path, {"recipe": recipe, "history": self.history})
        self._columns = list(range(len(self.labels)))
        self._net = net.to(self._device).eval()

    # ------------------------------------------------------------ inference

    def _views(self, clip: ClipInput) -> list[np.ndarray]:
        n = len(clip.frames)
        if self.opts.test_protocol == "authors":
            return authors_views(n, self._rate, self.num_frames, self.opts.test_segments)
        return [resample_indices(n, self.num_frames)]

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        """Scores in :attr:`labels` order: the logits of the one resampled view, or
        ``log`` of the mean softmax of the authors' test views."""
        # lazy: pulls in torch
        from emobench.training.video import run_batches

        if self._net is None:
            raise EmobenchError(f"{self._where}: predict() before fit()")
        views, counts = [], []
        for clip in clips:
            if clip.enrichment in ("msce", "msce-text"):
                raise EmobenchError(
                    f"{self._where} is a vision-only classifier: it cannot read the text of "
                    f"enrichment {clip.enrichment!r}; use 'none' or 'msce-dense'"
                )
            frames = np.asarray(clip.frames)
            side = self.frame_size
            if frames.ndim != 4 or frames.shape[1:] != (side, side, 3):
                raise EmobenchError(
                    f"{self._where}: clip {clip.clip_id!r} frames have shape {frames.shape}, "
                    f"expected (T, {side}, {side}, 3)"
                )
            positions = self._views(clip)
            views.extend(frames[p] for p in positions)
            counts.append(len(positions))
            self._stats["frames_in"].append(len(frames))
            self._stats["resampled"] += int(len(frames) != self.num_frames)
        logits = run_batches(self._net, views, self.batch_size, self._device, self._autocast)
        logits = logits[:, self._columns]
        if self.opts.test_protocol == "authors":
            scores = average_softmax(logits, counts)
        else:
            scores = logits.astype(np.float64)
        self._stats["clips"] += len(clips)
        self._stats["views"] += len(views)
        return [ClipOutput(scores=s) for s in scores]

    # ------------------------------------------------------------ records

    def reset_stats(self) -> None:
        self._stats: dict[str, Any] = {"frames_in": [], "resampled": 0, "clips": 0, "views": 0}

    def describe(self) -> dict[str, Any]:
        s = self._stats
        bf16 = self._autocast and str(self._device).startswith("cuda")
        out = {
            "model": self._where,
            "mode": "fine-tuned here" if self.opts.finetune else "released head",
            "test_protocol": self.opts.test_protocol,
            "sampling_rate": self._rate if self.opts.test_protocol == "authors" else None,
            "views": s["views"],
            "frames_in": value_summary(s["frames_in"]),
            "frames_model": self.num_frames,
            "resampled_clips": s["resampled"],
            "frame_size": self.frame_size,
            "normalisation": "imagenet (x/255 - mean) / std",
            "precision": "bf16 autocast (probabilities move by ~0.02)" if bf16 else "fp32",
            **self._info,
        }
        if self.history:
            keys = ("best_epoch", "best_val_uar", "epochs_run", "n_train", "n_val", "seconds")
            out["training"] = {k: self.history.get(k) for k in keys if k in self.history}
        return out


__all__ = ["MAEDFERModel"]
