"""What part a model plays in the study's comparisons: a VLM or a vision-only baseline,
zero-shot or trained on the benchmark, order-aware or not.

The report's findings (:mod:`emobench.report.findings`) pick their cells by these roles,
never by model names. A role belongs to a model *family* (the part of the registry name
before ``:``, e.g. ``baseline`` in ``baseline:gru``) and is declared by the family on its
registration (``register_model(..., role=FamilyRole(...))``, :mod:`emobench.models.roles`);
this module names no family. What a family's cells are is read from the run's manifest:
each cell's ``adapter`` (else its display name) gives the family and argument, the run
configuration's ``models`` entry gives the options (e.g. an ``openclip`` linear probe is
trained, its zero-shot use is not).

A model whose family has no role (or is not installed here) is left out of the findings,
and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emobench.models.registry import family_role
from emobench.models.roles import Role
from emobench.results import Manifest


@dataclass(frozen=True)
class ModelRole:
    """The role of one model of a run (by display name)."""

    model: str
    adapter: str
    family: str
    role: Role | None  # None: the family has no registered role
    trained: bool
    temporal: bool
    order_invariant: bool = False

    @property
    def zero_shot_vlm(self) -> bool:
        """A VLM used as it was pre-trained (no training on the benchmark)."""
        return self.role == "vlm" and not self.trained

    @property
    def temporal_baseline(self) -> bool:
        """A vision-only model whose output depends on the frame order."""
        return self.role == "vision-only" and self.temporal


def model_roles(manifest: Any, models: list[str]) -> dict[str, ModelRole]:
    """The :class:`ModelRole` of each display name in ``models``, from the manifest."""
    man = Manifest.from_dict(manifest)
    adapters: dict[str, str] = {}
    for cell in man.cells:
        if cell.get("model") is not None and cell.get("adapter"):
            adapters.setdefault(str(cell["model"]), str(cell["adapter"]))
    options: dict[str, Mapping[str, Any]] = {}
    for entry in man.config.get("models") or []:
        if not isinstance(entry, Mapping) or not entry.get("adapter"):
            continue
        name = str(entry.get("name") or entry["adapter"])
        adapters.setdefault(name, str(entry["adapter"]))
        opts = entry.get("options")
        options[name] = opts if isinstance(opts, Mapping) else {}
    out = {}
    for model in models:
        adapter = adapters.get(model, model)
        family, _, argument = adapter.partition(":")
        entry = family_role(family)
        opts = options.get(model, {})
        out[model] = ModelRole(
            model=model,
            adapter=adapter,
            family=family,
            role=None if entry is None else entry.role_of(argument, opts),
            trained=entry is not None and entry.trained(argument, opts),
            temporal=entry is not None and entry.temporal(argument, opts),
            order_invariant=entry is not None and entry.order_invariant(argument, opts),
        )
    return out


def vlm_rank(role: ModelRole) -> tuple[bool, bool, str]:
    """Sort key of the VLMs for a finding's primary comparison: the study's VLM first
    (one that sees frame order, zero-shot), then by name."""
    return (role.order_invariant, role.trained, role.model)


def specialist_rank(role: ModelRole) -> tuple[bool, bool, str]:
    """Sort key of the vision-only models for a finding's primary comparison: the
    study's specialist first (trained on the benchmark, order-aware), then by name."""
    return (not role.trained, not role.temporal, role.model)
