"""``maedfer:``: parity with the released architecture, safe checkpoint loading, class
order, the authors' test protocol, evaluation and fine-tuning through the engine."""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATA = Path(__file__).parent / "data"
TINY = DATA / "maedfer_tiny.pth"
#: what the tiny checkpoint's shapes cannot tell (its args give size, frames and regions)
TINY_OPTS = {"heads": 4}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _tiny_net(pooling: str | None = None, path: Path = TINY):
    from emobench.models.maedfer.checkpoint import infer_config, load_network, released_tensors

    rel = released_tensors(path, "maedfer:tiny")
    cfg = infer_config(rel, {**TINY_OPTS, "pooling": pooling}, None, "maedfer:tiny")
    return load_network(rel, cfg, "maedfer:tiny", pretrained=False), cfg


@pytest.mark.parametrize("pooling", ["region", "org", "all"])
def test_logits_match_the_released_architecture(pooling: str) -> None:
    """The tiny checkpoint (released key layout) gives the reference logits computed with
    the authors' own model file (tests/data/maedfer_tiny.md): same argmax, probabilities
    within 1e-4 (observed: ~3e-7)."""
    ref = np.load(DATA / "maedfer_tiny_reference.npz")
    net, cfg = _tiny_net(pooling)
    assert (cfg.depth, cfg.dim, cfg.num_classes, cfg.region_size) == (2, 32, 7, (2, 1, 2))
    with torch.no_grad():
        logits = net(torch.from_numpy(ref["frames"])).double().numpy()
    want = ref[f"logits_{pooling}"]
    assert (logits.argmax(1) == want.argmax(1)).all()
    assert np.abs(_softmax(logits) - _softmax(want)).max() < 1e-4


def test_released_args_give_the_defaults_shapes_cannot() -> None:
    """Image size, frames, regions and pooling come from the pickled ``args``; the
    default pooling of the released scripts is the region tokens."""
    _, cfg = _tiny_net()
    assert (cfg.image_size, cfg.frames, cfg.pooling, cfg.heads) == (32, 8, "region", 4)


def test_safetensors_and_pretraining_layouts_load(tmp_path: Path) -> None:
    """The same tensors as safetensors, and in the pre-training layout (``encoder.``
    prefix, decoder, no head) as a fine-tuning start."""
    from safetensors.torch import save_file

    from emobench.models.maedfer.checkpoint import infer_config, load_network, released_tensors
    from emobench.models.videovit import read_state_dict

    tensors = read_state_dict(TINY, "t").tensors
    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(st))
    rel = released_tensors(st, "t")
    cfg = infer_config(rel, {**TINY_OPTS, "image_size": 32, "frames": 8,
                             "region_size": [2, 1, 2]}, None, "t")  # fmt: skip
    load_network(rel, cfg, "t", pretrained=False)
    enc = {f"encoder.{k}": v for k, v in tensors.items() if not k.startswith(("head", "fc_norm"))}
    enc["decoder.head.weight"] = torch.zeros(3, 3)
    enc["encoder.norm.weight"] = torch.ones(32)
    enc["mask_token"] = torch.zeros(1, 1, 32)
    pre = tmp_path / "pretrained.pth"
    torch.save({"model": enc, "args": argparse.Namespace(input_size=32, num_frames=8,
                lg_region_size=[2, 1, 2])}, pre)  # fmt: skip
    rel = released_tensors(pre, "t")
    assert not rel.has_head
    cfg = infer_config(rel, TINY_OPTS, 5, "t")
    net = load_network(rel, cfg, "t", pretrained=True)
    assert net.head.out_features == 5
    assert torch.equal(net.blocks[1].third_attn.kv.weight, tensors["blocks.1.third_attn.kv.weight"])


def test_a_checkpoint_pickling_another_class_is_refused(tmp_path: Path) -> None:
    from emobench.models.maedfer.checkpoint import released_tensors
    from emobench.models.videovit import CheckpointError, read_state_dict

    bad = tmp_path / "bad.pth"
    tensors = read_state_dict(TINY, "t").tensors
    torch.save({"model": tensors, "extra": fractions.Fraction(1, 3)}, bad)
    with pytest.raises(CheckpointError) as err:
        released_tensors(bad, "maedfer:bad.pth")
    msg = str(err.value)
    assert "\n" not in msg and "fractions.Fraction" in msg and "weights_only=True" in msg


def test_region_count_mismatch_is_one_line() -> None:
    from emobench.models.maedfer.checkpoint import infer_config, released_tensors
    from emobench.models.videovit import CheckpointError

    rel = released_tensors(TINY, "t")
    with pytest.raises(CheckpointError, match="region tokens") as err:
        infer_config(rel, {**TINY_OPTS, "region_size": [1, 1, 2]}, None, "t")
    assert "\n" not in str(err.value)
