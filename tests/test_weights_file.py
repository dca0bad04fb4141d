"""save_safetensors: the same tensors and metadata give the same bytes in every process
(safetensors' own writer orders the metadata by a per-process hash), and the file reads back
exactly with safetensors itself."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save

from emobench.models.weights_file import canonical_header, save_safetensors

META = {"tag": "t", "recipe": '{"seed": 0, "é": 1}', "preprocess": "{}", "arch": "a", "b": "2"}

_WRITE = """
import sys, torch
from emobench.models.weights_file import save_safetensors
g = torch.Generator().manual_seed(0)
t = {"w": torch.randn(3, 5, generator=g), "b": torch.arange(7), "h": torch.ones(2).half()}
save_safetensors(t, sys.argv[1], {"tag": "t", "recipe": "r", "preprocess": "p", "arch": "a",
                                  "x": "1", "y": "2", "z": "3"})
"""


def test_bytes_are_the_same_in_every_process(tmp_path):
    digests = set()
    for i in range(4):  # 7 metadata keys: safetensors alone agrees in 1 of 5040 orders
        out = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", _WRITE, str(out)], check=True)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_reads_back_exactly(tmp_path):
    tensors = {"w": torch.randn(4, 3), "i": torch.arange(5), "h": torch.rand(2).half()}
    path = save_safetensors(tensors, tmp_path / "x.safetensors", META)
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == META
        back = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    assert size % 8 == 0  # the header stays aligned
    assert raw[8 : 8 + size].index(b'"__metadata__":{"arch"') == 1  # sorted keys first


def test_canonical_header_only_reorders_the_metadata():
    tensors = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    blob = save(tensors, metadata=META)
    canon = canonical_header(blob)
    assert canonical_header(canon) == canon
    # the data section is untouched, byte for byte
    n_old = int.from_bytes(blob[:8], "little")
    n_new = int.from_bytes(canon[:8], "little")
    assert blob[8 + n_old :] == canon[8 + n_new :]
    # without metadata there is nothing to reorder: safetensors' own bytes come back
    no_meta = save(tensors)
    assert canonical_header(no_meta) == no_meta
