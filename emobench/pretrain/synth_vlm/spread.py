"""Other seeds' runs of the same recipe (``--spread``): their zero-shot figures for the
card's seed spread, checked to be the same recipe."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emobench.errors import PretrainError
from emobench.pretrain.synth_vlm.config import PretrainConfig


def load_spread(folders: list[Path], cfg: PretrainConfig) -> list[dict[str, Any]]:
    """Seed and zero-shot figures of other seeds' folders of the same recipe (their
    ``recipe.json``); a folder of another recipe or without figures is one error line."""
    out = []
    mine = _recipe_without_seed(asdict(cfg))
    for folder in folders:
        path = Path(folder) / "recipe.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PretrainError(f"--spread {folder}: no readable recipe.json ({exc})") from None
        theirs = _recipe_without_seed(rec.get("config", {}))
        differ = sorted(k for k in mine if _plain(theirs.get(k)) != _plain(mine[k]))
        if differ or "eval" not in rec:
            why = f"its recipe differs in {', '.join(differ)}" if differ else "it has no eval"
            raise PretrainError(f"--spread {folder}: {why}")
        out.append({"seed": rec["config"]["seed"], "eval": rec["eval"]})
    return out


def _recipe_without_seed(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k != "seed"}
    if isinstance(out.get("corpus"), dict):
        out["corpus"] = {k: v for k, v in out["corpus"].items() if k != "seed"}
    return out


def _plain(v: Any) -> Any:
    """JSON-comparable form (tuples as lists)."""
    return json.loads(json.dumps(v, default=list))


__all__ = ["load_spread"]
