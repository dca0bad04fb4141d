"""LoRA adapters of the ``hf:`` family as files and modules: which linears get adapters
(:func:`lora_target_names`), the label-row delta of decoupled-crt's stage 2, loading saved
adapters into a model (:func:`attach`), switching them off (:func:`adapters_off`) and the
checkpoint folder (:func:`save_adapter`, :func:`read_adapter`, :func:`fingerprint`). The
training that makes them is :mod:`emobench.models.hf.finetune`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emobench.errors import EmobenchError
from emobench.io import to_json
from emobench.models.weights_file import describe_read_error, read_errors

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Default LoRA targets: the attention and MLP projections of the language model.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Module names under which VLMs keep their vision tower.
VISION_NAMES = ("visual", "vision_tower", "vision_model", "vision_encoder")
SIDECAR = "emobench.json"
LABEL_ROWS_FILE = "label_rows.safetensors"
FORMAT = "emobench-hf-lora/1"


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
    except (OSError, ValueError, KeyError, RuntimeError, *read_errors()) as exc:
        why = describe_read_error(exc)[:300]
        raise FineTuneError(f"cannot load the LoRA adapters in {folder}: {why}") from None
    got = {n for n, m in peft_model.get_base_model().named_modules() if hasattr(m, "lora_A")}
    if names and got != set(names):
        raise FineTuneError(
            f"{folder.name}: adapters on {len(got)} modules, the sidecar names {len(names)}"
        )
    rows = None
    path = folder / LABEL_ROWS_FILE
    if path.is_file():
        try:
            tensors = load_file(str(path))
        except (OSError, ValueError, *read_errors()) as exc:
            why = describe_read_error(exc)
            raise FineTuneError(f"cannot load {path}: {why}") from None
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
