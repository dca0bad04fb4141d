"""``hfvideo:<model id or local folder>``: pretrained video classifiers, fine-tuned per fold.

The vision-only side of the study's comparison (MAE-DFER, HiCMAE: a VideoMAE-style
encoder fine-tuned on each DFER fold), for any ``AutoModelForVideoClassification``
checkpoint transformers supports (VideoMAE, TimeSformer, ViViT, V-JEPA 2), loaded from a
local folder or the local Hugging Face cache only (nothing is downloaded; a missing model
is one error line).

A :class:`~emobench.models.base.ClipModel` that gives scores (its logits, in label order):

* ``fit`` loads the pretrained weights with a new classification head for the dataset's
  labels and fine-tunes the whole network on the fold's training clips with the cell's
  re-balancing recipe (:mod:`emobench.models.hfvideo.train`), or, with ``frozen = true``,
  trains a linear probe (:func:`emobench.models.training.train_probe`) on the frozen
  backbone's pooled clip features. Checkpoints live in the run's checkpoint folder (one per
  dataset, fold, seed, re-balancing, model fingerprint and recipe) and are reused on rerun.
* The model takes a fixed number of frames (``num_frames``, e.g. 16 for VideoMAE). The
  engine's sampler decides which frames a cell presents; when it presents K ≠ num_frames,
  the presented sequence is resampled to num_frames (nearest frame to each of num_frames
  evenly spaced points, order kept: :func:`resample_indices`). A density sweep therefore
  changes the *span and rate* of the frames at a fixed count; ``describe()`` records
  ``frames_in``, ``frames_model`` and ``resampled`` per cell so the report can say so.
* Enrichment: ``msce-dense`` is a denser clip (resampled like any other); ``msce`` and
  ``msce-text`` give the model text, which a vision-only classifier cannot read: one
  error line (the fitted checkpoint stays, so a corrected rerun does not train again).
* Frozen features are cached on disk, keyed by the model fingerprint, dataset, clip id,
  presented frame indices (in order), frame size and normalisation, so density and order
  sweeps and reruns reuse them (``<run cache>/hfvideo-features``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from emobench.chat.prompt import value_summary
from emobench.errors import EmobenchError
from emobench.io import atomic_open
from emobench.longtail.rebalance import get_rebalancing
from emobench.models.base import ClipInput, ClipModel, ClipOutput, FitContext
from emobench.models.hf.loading import HFModelNotFoundError, model_hash, resolve_model
from emobench.models.hfvideo.loading import (
    HFVideoError,
    input_shape,
    inspect_folder,
    load_classifier,
    load_finetuned,
    load_normalisation,
    save_finetuned,
)
from emobench.models.hfvideo.options import FEATURE_VERSION, FINETUNE_LR, HFVideoOptions
from emobench.models.registry import parse_options, register_model
from emobench.models.roles import TRAINED_VIDEO_ENCODER
from emobench.training.checkpoint import load_checkpoint, recipe_hash, save_module
from emobench.video.sampling import segment_centres

#: frozen features computed / served from the cache in this process (tests, benchmarks)
FEATURE_STATS = {"computed": 0, "cached": 0}


@register_model(
    "hfvideo",
    "pretrained video classifier (VideoMAE, TimeSformer, ViViT, V-JEPA 2) fine-tuned per "
    "fold, or a linear probe on its frozen features (frozen = true); "
    "hfvideo:<hub id in the local cache | local folder>, e.g. hfvideo:MCG-NJU/videomae-base",
    options=HFVideoOptions,
    kind="clip",
    role=TRAINED_VIDEO_ENCODER,
)
def _create(argument: str, options: dict[str, Any]) -> HFVideoModel:
    return HFVideoModel(argument, options)


def resample_indices(k: int, num_frames: int) -> np.ndarray:
    """Positions in a presented sequence of ``k`` frames to feed a model that takes
    ``num_frames``: the frame nearest the centre of each of ``num_frames`` equal segments
    (``floor((2i+1)·k / (2·num_frames))``), in order; frames repeat when ``k`` is smaller,
    are skipped evenly when it is larger, and ``k == num_frames`` is the identity."""

    if k < 1:
        raise HFVideoError("a clip must present at least one frame")
    return segment_centres(int(k), int(num_frames)).astype(np.int64)


def _resolve(name: str, revision: str | None) -> Path:
    """The model folder (:func:`emobench.models.hf.loading.resolve_model`), with errors
    naming this family."""

    try:
        return resolve_model(name, revision)
    except HFModelNotFoundError as exc:
        msg = str(exc)
        raise HFVideoError("hfvideo:" + msg.removeprefix("hf:")) from None


class HFVideoModel(ClipModel):
    """An ``AutoModelForVideoClassification`` checkpoint as a :class:`ClipModel` (module
    docstring)."""

    def __init__(self, argument: str, options: dict[str, Any]) -> None:
        self.name = argument
        self.options = dict(options)
        self.opts: HFVideoOptions = parse_options(f"hfvideo:{argument}", HFVideoOptions, options)
        self.folder = _resolve(argument, self.opts.revision)
        self.info = inspect_folder(self.folder, argument)
        self.num_frames, self.frame_size = input_shape(self.info, self.opts, argument)
        self.batch_size = self.opts.batch_size
        self.labels: list[str] = []
        self._device: Any = "cpu"
        self._hash = ""
        self._norm: Any = None
        self._net: Any = None  # the (fine-tuned or frozen) VideoClassifier
        self._probe: Any = None  # frozen mode: the linear probe
        self._dataset = ""
        self._seed = 0
        self._cache: Path | None = None
        self._media_token: Any = lambda clip_id: ""
        self._checkpoint: str | None = None
        self._reused = False
        self._training: dict[str, Any] = {}
        self.history: dict[str, Any] = {}
        self.reset_stats()

    # ------------------------------------------------------------ setup

    @property
    def _where(self) -> str:
        return f"hfvideo:{self.name}"

    @property
    def _autocast(self) -> bool:
        return self.opts.dtype == "auto"

    def _train_config(self, ctx: FitContext) -> Any:
        # lazy: pulls in torch
        from emobench.training.loop import TrainConfig

        settings = {**ctx.train_options, **self.opts.train}
        if self.opts.epochs is not None:
            settings["epochs"] = self.opts.epochs
        if self.opts.frozen and self.opts.lr is not None:
            settings["lr"] = self.opts.lr
        return TrainConfig(**{**settings, "seed": ctx.seed, "device": str(ctx.device)})

    def _recipe(self, ctx: FitContext, cfg: Any) -> dict[str, Any]:
        """Everything the trained weights depend on (the checkpoint's file-name hash)."""
        rows = ctx.train_index.sort("clip_id").select(["clip_id", "label", "n_frames"])
        data = hashlib.sha256(rows.write_csv().encode()).hexdigest()[:16]
        o = self.opts
        return {
            "family": "hfvideo",
            "model_hash": self._hash,
            "data": data,
            "labels": list(ctx.labels),
            "rebalancing": ctx.rebalancing,
            "mode": "frozen-probe" if o.frozen else "fine-tuned",
            "num_frames": self.num_frames,
            "frame_size": self.frame_size,
            "normalisation": self._norm.describe(),
            "train": cfg.to_dict(),
            "lr": o.lr if o.frozen else (o.lr or FINETUNE_LR),
            "batch_size": o.batch_size,
            "grad_accum": o.grad_accum,
            "layer_decay": o.layer_decay,
            "warmup_epochs": o.warmup_epochs,
            "autocast": self._autocast,
        }

    def fit(self, ctx: FitContext) -> None:
        """Fine-tune (or probe) on the fold's training clips, or load the checkpoint of the
        same recipe (module docstring)."""

        get_rebalancing(ctx.rebalancing)  # an unknown recipe is one line before any work
        if ctx.train_index is None or ctx.train_index.height < 2:
            raise HFVideoError(f"{self._where}: needs at least 2 training clips to fine-tune")
        unknown = sorted(set(ctx.train_index["label"].to_list()) - set(ctx.labels))
        if unknown:
            raise HFVideoError(f"{self._where}: training label {unknown[0]!r} is not a class")
        self.labels = list(ctx.labels)
        self._device = ctx.device
        self._dataset, self._seed = ctx.dataset, ctx.seed
        self._hash = model_hash(self.folder)
        self._norm = load_normalisation(self.folder, self.opts.trust_remote_code)
        if self._norm.source.startswith("imagenet"):
            ctx.warn(f"{self._where}: no image/video processor in {self.folder}: ImageNet "
                     "mean/std used")  # fmt: skip
        self._cache = None
        self._media_token = ctx.media_token
        if self.opts.feature_cache and ctx.cache_dir is not None:
            self._cache = Path(ctx.cache_dir) / "hfvideo-features"
        cfg = self._train_config(ctx)
        recipe = self._recipe(ctx, cfg)
        stem = f"hfvideo-{ctx.rebalancing}-{recipe_hash(recipe)}"
        ckpt = Path(ctx.checkpoint_dir)
        if self.opts.frozen:
            self._fit_probe(ctx, cfg, recipe, ckpt / f"{stem}-probe.safetensors")
        else:
            self._fit_finetune(ctx, cfg, recipe, ckpt / f"{stem}.safetensors")

    def _label_codes(self, rows: Any) -> np.ndarray:
        return np.array([self.labels.index(lb) for lb in rows["label"].to_list()], np.int64)

    def _load_net(self) -> Any:
        return load_classifier(
            self.folder, self.info, self.labels, self._norm, self._seed, self._where,
            self.opts.trust_remote_code,
        )  # fmt: skip

    def _fit_finetune(self, ctx: FitContext, cfg: Any, recipe: dict[str, Any], path: Path) -> None:
        """Fine-tune the whole network, or load the checkpoint at ``path``. The training
        clips are decoded once when their frames fit in ``preload_max_gb``, else batch by
        batch (:class:`~emobench.models.hfvideo.train.ClipStore`)."""
        # lazy: pulls in torch
        from emobench.training.video import ClipStore, FinetuneSettings, finetune

        net = self._load_net()
        meta = load_finetuned(net, path, ctx.warn) if self.opts.reuse_checkpoints else None
        self._checkpoint, self._reused = path.name, meta is not None
        if meta is not None:
            self.history = meta.get("history", {})
        else:
            train = ctx.train_index.sort("clip_id")
            gib = float(train["n_frames"].sum()) * self.frame_size**2 * 3 / 2**30
            store = ClipStore(
                train,
                lambda rows: ctx.load_frames(self, rows),
                preload=gib <= self.opts.preload_max_gb,
            )
            settings = FinetuneSettings(
                num_frames=self.num_frames,
                batch_size=self.opts.batch_size,
                grad_accum=self.opts.grad_accum,
                layer_decay=self.opts.layer_decay,
                warmup_epochs=self.opts.warmup_epochs,
                lr=self.opts.lr or FINETUNE_LR,
                epochs=cfg.epochs,
                autocast=self._autocast,
            )
            self.history = finetune(
                net,
                store,
                self._label_codes(train),
                len(self.labels),
                ctx.rebalancing,
                cfg,
                settings,
                progress=_epochs(ctx, f"fine-tuning {self._where} ({ctx.rebalancing})"),
            )
            self.history["preloaded"] = store.preload
            save_finetuned(net, path, {"recipe": recipe, "history": self.history})
        self._net = net.to(self._device).eval()
        self._training = _summary(self.history)

    def _fit_probe(self, ctx: FitContext, cfg: Any, recipe: dict[str, Any], path: Path) -> None:
        """Linear probe on frozen features, or load the one at ``path``. Each training clip
        is one view, its ``num_frames`` segment centres (the validation view of
        fine-tuning), so its feature is computed once and cached across recipes, seeds and
        reruns; only the uncached clips are decoded."""
        # lazy: pulls in torch
        from emobench.training.heads import train_probe

        head = load_checkpoint(path, ctx.warn) if self.opts.reuse_checkpoints else None
        self._checkpoint, self._reused = path.name, head is not None
        if head is not None:
            self.history = head.emobench_config.get("history", {})
        else:
            train = ctx.train_index.sort("clip_id")
            ids = train["clip_id"].to_list()
            views = [segment_centres(int(n), self.num_frames) for n in train["n_frames"]]
            feats = self._features_of_rows(ctx, train, ids, views)
            kept = [i for i in range(len(ids)) if feats[i] is not None]
            head, self.history = train_probe(
                [feats[i][None, :] for i in kept],
                self._label_codes(train)[kept],
                len(self.labels),
                ctx.rebalancing,
                cfg,
                progress=_epochs(ctx, f"training {self._where} probe ({ctx.rebalancing})"),
            )
            save_module(head, path, {"recipe": recipe, "history": self.history})
        self._probe = head.eval()
        self._training = _summary(self.history)

    # ------------------------------------------------------------ frozen features

    def _feature_key(self, clip_id: str, indices: np.ndarray) -> str:
        key = {
            "v": FEATURE_VERSION,
            "model": self._hash,
            "dataset": self._dataset,
            "clip": clip_id,
            "media": self._media_token(clip_id),  # the clip's bytes, decoder and code
            "indices": [int(i) for i in indices],
            "size": self.frame_size,
            "norm": self._norm.describe(),
            "autocast": self._autocast and str(self._device).startswith("cuda"),
        }
        text = json.dumps(key, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _cache_path(self, key: str) -> Path | None:
        return None if self._cache is None else self._cache / key[:2] / f"{key}.npy"

    def _cached(self, key: str) -> np.ndarray | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # damaged: computed again
            return None
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
            path.unlink(missing_ok=True)  # not a feature vector (e.g. NaN): computed again
            return None
        return arr.astype(np.float32)

    def _store(self, key: str, feat: np.ndarray) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            np.save(fh, np.asarray(feat, np.float32), allow_pickle=False)

    def _backbone(self) -> Any:
        """The frozen pretrained network (loaded on the first feature that is not cached)."""
        if self._net is None:
            self._net = self._load_net().to(self._device).eval()
        return self._net

    def _encode(self, clips: list[np.ndarray]) -> np.ndarray:
        # lazy: pulls in torch
        from emobench.training.video import run_batches

        return run_batches(
            self._backbone(), clips, self.batch_size, self._device, self._autocast, True
        )

    def _features_of_rows(
        self, ctx: FitContext, rows: Any, ids: list[str], views: list[np.ndarray]
    ) -> list[np.ndarray | None]:
        """Frozen features of training rows at the given frame indices: cached ones read,
        the others decoded a chunk of clips at a time (bounded memory), encoded and stored;
        None for a clip that failed to decode (reported by the engine)."""
        keys = [self._feature_key(c, v) for c, v in zip(ids, views, strict=True)]
        out: list[np.ndarray | None] = [self._cached(k) for k in keys]
        FEATURE_STATS["cached"] += sum(f is not None for f in out)
        self._stats["feature_cache_hits"] += sum(f is not None for f in out)
        missing = [i for i, f in enumerate(out) if f is None]
        chunk = max(4 * self.batch_size, 32)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            frames, kept = ctx.load_frames(self, rows[part])
            clips = [f[views[part[k]]] for k, f in zip(kept, frames, strict=True)]
            feats = self._encode(clips)
            for k, feat in zip(kept, feats, strict=True):
                out[part[k]] = feat
                self._store(keys[part[k]], feat)
            FEATURE_STATS["computed"] += len(kept)
            self._stats["feature_cache_misses"] += len(kept)
        return out

    # ------------------------------------------------------------ inference

    def predict(self, clips: list[ClipInput]) -> list[ClipOutput]:
        """Logits in :attr:`labels` order for each clip (frozen: the probe's logits on the
        cached or computed features), from ``num_frames`` frames resampled from the
        presented ones."""
        import torch  # noqa: F401  (inference below needs torch loaded)

        if self._net is None and self._probe is None:
            raise EmobenchError(f"{self._where}: predict() before fit()")
        views = []
        for clip in clips:
            if clip.enrichment in ("msce", "msce-text"):
                raise HFVideoError(
                    f"{self._where} is a vision-only classifier: it cannot read the text of "
                    f"enrichment {clip.enrichment!r}; give it enrichment 'none' or "
                    "'msce-dense' (the in-between frames as a denser clip)"
                )
            frames = np.asarray(clip.frames)
            if frames.ndim != 4 or frames.shape[1:] != (self.frame_size, self.frame_size, 3):
                raise HFVideoError(
                    f"{self._where}: clip {clip.clip_id!r} frames have shape {frames.shape}, "
                    f"expected (T, {self.frame_size}, {self.frame_size}, 3)"
                )
            pos = resample_indices(len(frames), self.num_frames)
            self._stats["frames_in"].append(len(frames))
            self._stats["resampled"] += int(len(frames) != self.num_frames)
            views.append((frames[pos], np.asarray(clip.indices)[pos]))
        if self.opts.frozen:
            scores = self._probe_scores(clips, views)
        else:
            # lazy: pulls in torch
            from emobench.training.video import run_batches

            scores = run_batches(
                self._net, [v[0] for v in views], self.batch_size, self._device, self._autocast
            )
        self._stats["clips"] += len(clips)
        return [ClipOutput(scores=s.astype(np.float64)) for s in scores]

    def _probe_scores(
        self, clips: list[ClipInput], views: list[tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        # lazy: pulls in torch
        from emobench.training.heads import predict_head

        keys = [self._feature_key(c.clip_id, v[1]) for c, v in zip(clips, views, strict=True)]
        feats: list[np.ndarray | None] = [self._cached(k) for k in keys]
        hits = sum(f is not None for f in feats)
        FEATURE_STATS["cached"] += hits
        self._stats["feature_cache_hits"] += hits
        missing = [i for i, f in enumerate(feats) if f is None]
        if missing:
            new = self._encode([views[i][0] for i in missing])
            for i, feat in zip(missing, new, strict=True):
                feats[i] = feat
                self._store(keys[i], feat)
            FEATURE_STATS["computed"] += len(missing)
            self._stats["feature_cache_misses"] += len(missing)
        x = [np.asarray(f, np.float32)[None, :] for f in feats]  # type: ignore[index]
        return predict_head(self._probe, x, batch_size=256, device=self._device)

    # ------------------------------------------------------------ records

    def reset_stats(self) -> None:
        self._stats: dict[str, Any] = {
            "frames_in": [],
            "resampled": 0,
            "clips": 0,
            "feature_cache_hits": 0,
            "feature_cache_misses": 0,
        }

    def describe(self) -> dict[str, Any]:
        s = self._stats
        info: dict[str, Any] = {
            "model": self._where,
            "model_hash": self._hash,
            "architecture": self.info.model_type,
            "mode": "frozen-probe" if self.opts.frozen else "fine-tuned",
            "frames_in": value_summary(s["frames_in"]),
            "frames_model": self.num_frames,
            "resampled": s["resampled"] > 0,
            "resampled_clips": s["resampled"],
            "frame_size": self.frame_size,
            "normalisation": self._norm.describe() if self._norm is not None else None,
            "checkpoint": self._checkpoint,
            "checkpoint_reused": self._reused,
            "training": self._training,
        }
        if self.opts.frozen:
            info["feature_cache_hits"] = s["feature_cache_hits"]
            info["feature_cache_misses"] = s["feature_cache_misses"]
        return info


def _summary(history: dict[str, Any]) -> dict[str, Any]:
    """The training record of ``describe()``: JSON-ready (no validation split: None)."""
    keys = ("best_epoch", "best_val_uar", "epochs_run", "phase1_best_val_uar", "n_train",
            "n_val", "seconds")  # fmt: skip
    out = {}
    for k in keys:
        if k in history:
            v = history[k]
            finite = v is not None and np.isfinite(v) and v >= 0
            out[k] = v if finite else None
    return out


def _epochs(ctx: FitContext, what: str) -> Any:
    def cb(epoch: int, n_epochs: int, metrics: dict[str, Any]) -> None:
        ctx.progress(what, epoch, n_epochs)

    return cb
