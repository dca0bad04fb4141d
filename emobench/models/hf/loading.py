"""Finding, fingerprinting and loading ``hf:`` models offline (local folder or HF cache only)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emobench.errors import EmobenchError
from emobench.models.hf.architectures import arch_of
from emobench.models.weights_file import describe_read_error, read_errors
from emobench.provenance import file_sha256

#: Files up to this size are hashed whole; larger ones (weights) by size + head + tail.
_SMALL = 1 << 20


class HFModelNotFoundError(EmobenchError):
    """An ``hf:`` model that is neither a local folder nor in the local Hugging Face cache."""


#: Optional file in a model folder with emobench's preprocessing defaults for it:
#: ``{"preprocess": {"frame_size": 112, "crop": 64}}`` (decode side, centre crop side).
PREPROCESS_FILE = "emobench.json"


def folder_preprocess(folder: Path) -> dict[str, int]:
    """The folder's preprocessing defaults (``frame_size``, ``crop``) from
    :data:`PREPROCESS_FILE`, ``{}`` when it has none; an unreadable file is one error line."""
    import json

    path = Path(folder) / PREPROCESS_FILE
    if not path.is_file():
        return {}
    try:
        pre = json.loads(path.read_text()).get("preprocess", {})
        return {k: int(pre[k]) for k in ("frame_size", "crop") if pre.get(k) is not None}
    except (ValueError, TypeError, AttributeError) as exc:
        raise EmobenchError(f"{path}: unreadable preprocessing defaults ({exc})") from None


@contextlib.contextmanager
def no_progress_bars(errors_only: bool = False) -> Iterator[None]:
    """transformers' own progress bars off while loading (emobench shows its own), and with
    ``errors_only`` its warnings too; both restored afterwards."""
    from transformers.utils import logging as tlog

    level = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    if errors_only:
        tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or os.sep in name and Path(name).exists()


def hub_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub ships with transformers
        return os.path.expanduser("~/.cache/huggingface/hub")


def resolve_model(name: str, revision: str | None = None) -> Path:
    """The local folder holding ``name`` (a folder, a model folder shipped with emobench
    under ``emobench/models/weights/``, or a hub id in the local HF cache).

    Nothing is downloaded; a missing model is one :class:`HFModelNotFoundError` line naming
    what is missing and where it was looked for.
    """
    if _looks_like_path(name):
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            what = (
                "has no config.json"
                if folder.is_dir()
                else "is a file, not a model folder"
                if folder.exists()
                else "does not exist"
            )
            raise HFModelNotFoundError(
                f"hf:{name}: model folder {folder} {what} (give a folder written by "
                "save_pretrained or downloaded with `hf download <id> --local-dir <folder>`)"
            )
        return folder
    shipped = Path(__file__).resolve().parents[1] / "weights" / name  # e.g. emobench-tiny-vlm
    if "/" not in name and (shipped / "config.json").is_file():
        return shipped
    cache = hub_cache_dir()
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(name, revision=revision, local_files_only=True)
    except Exception:
        path = None
    if path is None or not (Path(path) / "config.json").is_file():
        rev = f" at revision {revision}" if revision else ""
        raise HFModelNotFoundError(
            f"hf:{name}: model{rev} not found: not a local folder and not in the local "
            f"Hugging Face cache ({cache}); nothing is downloaded: run "
            f"`hf download {name}` where there is network, or give a local folder"
        )
    return Path(path)


def model_hash(folder: Path) -> str:
    """A content fingerprint of a model folder: every file's name and bytes (large ones,
    the weights, through :func:`emobench.provenance.file_sha256`, memoised per process; about
    1 GB/s, so a 15 GB model costs ~15 s once per run). A model changed anywhere, e.g. a few
    layers merged from a LoRA adapter and saved over the folder at the same sizes, is another
    model: its first and last MiB alone did not see that."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        h.update(path.read_bytes() if size <= _SMALL else file_sha256(path).encode())
    return h.hexdigest()[:16]


def torch_dtype(name: str, device: Any) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, name)


def load_model(
    folder: Path,
    *,
    device: Any,
    dtype: str = "auto",
    device_map: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    processor_kwargs: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """(model, processor) from a local folder, in eval mode on ``device`` (or ``device_map``)."""
    from transformers import AutoProcessor

    kw: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    try:
        processor = AutoProcessor.from_pretrained(folder, **kw, **(processor_kwargs or {}))
        mkw: dict[str, Any] = {"dtype": torch_dtype(dtype, device)}
        if device_map:
            mkw["device_map"] = device_map
        if attn_implementation:
            mkw["attn_implementation"] = attn_implementation
        with no_progress_bars():
            model = _model_class(folder, kw, mkw)
    except ImportError as exc:  # a processor's optional package (e.g. SmolVLM2: num2words)
        raise EmobenchError(f"hf: cannot load the processor in {folder}: {exc}") from None
    except (OSError, ValueError, KeyError, *read_errors()) as exc:
        reason = describe_read_error(exc)  # a damaged or unsafe weights file among them
        raise EmobenchError(f"hf: cannot load the model in {folder}: {reason}") from None
    if not device_map:
        model = model.to(device)
    model.eval()
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
    return model, processor


def _model_class(folder: Path, kw: dict[str, Any], mkw: dict[str, Any]) -> Any:
    """The model of ``folder``: ``AutoModelForImageTextToText``, or the class its
    architecture's registry entry names (:mod:`emobench.models.hf.architectures`; e.g. a
    full Qwen2.5-Omni folder loads its thinker with the folder's ``thinker_config``)."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(folder, **kw)
    arch = arch_of(config)
    if arch.load_class is None:
        return AutoModelForImageTextToText.from_pretrained(folder, **kw, **mkw)
    cls = getattr(transformers, arch.load_class)
    if arch.sub_config:
        mkw = {**mkw, "config": getattr(config, arch.sub_config)}
    return cls.from_pretrained(folder, **kw, **mkw)
