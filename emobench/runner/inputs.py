"""What a fold's trained artefacts are made from, and where they are kept.

Checkpoints (encoders, heads, probes, fine-tunes) and LoRA adapters depend on more than
their own recipe (settings, labels, clip index): on the bytes of the training media, on
whose pixels the decoder produced, and on the code that trained them. :func:`training_inputs`
names those; :func:`checkpoint_dir` keys the fold's checkpoint folder by them
(``checkpoints/<dataset>/fold<k>/seed<s>/inputs-<hash>/``, with an ``inputs.json`` that says
what the hash covers). So a changed training video, another ``--backend`` or a new emobench
version trains afresh in a new folder (what ``--recompute`` then recomputes), and an
unchanged one finds its checkpoints again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emobench.io import write_json_atomic
from emobench.provenance import media_fingerprint

#: The file in a checkpoint folder that records what its key covers.
INPUTS_FILE = "inputs.json"


def training_inputs(
    clips: Iterable[tuple[str, str]], frames: str, code: str, fingerprint: str
) -> dict[str, str]:
    """The inputs of a fold's training, beside each model's own recipe: the training
    ``clips``' (id, path) media fingerprint, whose pixels (``frames``: ``pyav`` for both
    ``pyav`` and ``auto``, or ``decord``), the ``code`` version and the fingerprint mode."""
    return {
        "media": media_fingerprint(clips, fingerprint),
        "fingerprint": fingerprint,
        "frames": frames,
        "code": code,
    }


def inputs_key(inputs: dict[str, str]) -> str:
    """12 hex digits of SHA-256 over the inputs as sorted-key JSON."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def checkpoint_dir(base: Path, inputs: dict[str, str]) -> Path:
    """The checkpoint folder of these inputs under ``base`` (the fold and seed's folder);
    its ``inputs.json`` is written when the folder is first used."""

    folder = Path(base) / f"inputs-{inputs_key(inputs)}"
    record = folder / INPUTS_FILE
    if not record.is_file():
        write_json_atomic(record, {"inputs": inputs, "covers": _COVERS})
    return folder


_COVERS: dict[str, Any] = {
    "media": "the training clips' media files (see fingerprint)",
    "fingerprint": "stat: size + modification time; content: BLAKE2b of the bytes",
    "frames": "whose pixels the decoder gave (auto gives PyAV's exactly)",
    "code": "hash of emobench's source files",
}

__all__ = ["INPUTS_FILE", "checkpoint_dir", "inputs_key", "training_inputs"]
