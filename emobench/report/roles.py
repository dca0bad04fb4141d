"""What part a model plays in the study's comparisons: a VLM or a vision-only baseline,
zero-shot or trained on the benchmark, order-aware or not.

The report's findings (:mod:`emobench.report.findings`) pick their cells by these roles,
never by model names. A role belongs to a model *family* (the part of the registry name
before ``:``, e.g. ``baseline`` in ``baseline:gru``) and is registered here by name with
:func:`register_model_role`; a family from a plugin registers its own. What a family's
cells are is read from the run's manifest: each cell's ``adapter`` (else its display
name) gives the family and argument, the run configuration's ``models`` entry gives the
options (e.g. an ``openclip`` linear probe is trained, its zero-shot use is not).

A model whose family has no role is left out of the findings, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emobench.registry import Registry

#: The two sides of the study's comparison.
Role = Literal["vlm", "vision-only"]
#: ``(argument, options) -> bool`` of one family (argument: the name after ``family:``).
RoleTest = Callable[[str, Mapping[str, Any]], bool]
#: ``(argument, options) -> role or None``: for families whose role depends on the model
#: (imported predictions say in their options what made them).
RoleOf = Callable[[str, Mapping[str, Any]], "Role | None"]


def _never(argument: str, options: Mapping[str, Any]) -> bool:
    return False


def _always(argument: str, options: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class FamilyRole:
    """A model family's role: ``role``, whether a model is ``trained`` on the benchmark's
    training split (not zero-shot), whether it is ``temporal`` (its output depends on
    the frame order, so shuffling the frames can hurt it) and whether it is
    ``order_invariant`` by construction (it pools the frames, so shuffling cannot change
    a single answer: a frame-order comparison of it is no evidence)."""

    family: str
    role: Role | RoleOf
    trained: RoleTest = _never
    temporal: RoleTest = _never
    order_invariant: RoleTest = _never

    def role_of(self, argument: str, options: Mapping[str, Any]) -> Role | None:
        """This family's role for one model (a fixed role, or the family's rule)."""
        return self.role(argument, options) if callable(self.role) else self.role


MODEL_ROLES: Registry[FamilyRole] = Registry("model family role")


def register_model_role(
    family: str,
    role: Role | RoleOf,
    *,
    trained: RoleTest = _never,
    temporal: RoleTest = _never,
    order_invariant: RoleTest = _never,
) -> FamilyRole:
    """Register (or replace) the role of ``family``; returns the entry."""
    return MODEL_ROLES.add(family, FamilyRole(family, role, trained, temporal, order_invariant))


def _option_on(key: str) -> RoleTest:
    """A test: option ``key`` is set to something other than ``none``."""

    def test(argument: str, options: Mapping[str, Any]) -> bool:
        return str(options.get(key) or "none").strip().lower() != "none"

    return test


#: Heads of ``baseline:<head>`` that read the frames in order (``mean`` pools them).
ORDER_AWARE_BASELINE_HEADS: tuple[str, ...] = ("gru", "transformer")

register_model_role(
    "baseline",
    "vision-only",
    trained=_always,
    temporal=lambda arg, opts: arg in ORDER_AWARE_BASELINE_HEADS,
    order_invariant=lambda arg, opts: arg not in ORDER_AWARE_BASELINE_HEADS,
)
# Pretrained video classifiers (VideoMAE, ...), fine-tuned or probed per fold: their
# encoders embed each frame's position in time.
register_model_role("hfvideo", "vision-only", trained=_always, temporal=_always)
# A contrastive VLM: zero-shot from prompts, or trained when it gets a linear probe. Every
# pooling of its frame embeddings (mean, max, mean-logit; the probe's mean) ignores their
# order: shuffled, it gives the same answers by construction.
register_model_role("openclip", "vlm", trained=_option_on("probe"), order_invariant=_always)
# Generative VLMs: zero-shot unless fine-tuned (``finetune = "lora"`` of the hf family).
register_model_role("hf", "vlm", trained=_option_on("finetune"))
register_model_role("openai", "vlm")


def _imported_role(argument: str, options: Mapping[str, Any]) -> Role | None:
    role = options.get("role")
    return role if role in ("vlm", "vision-only") else None


# Predictions made by other code (``predictions:<file>``): the user says in the model's
# options what made them (``role``, ``trained``, ``temporal``); without ``role`` they are
# left out of the findings.
register_model_role(
    "predictions",
    _imported_role,
    trained=lambda arg, opts: bool(opts.get("trained", False)),
    temporal=lambda arg, opts: bool(opts.get("temporal", False)),
)


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
    from emobench.results import Manifest

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
        entry = MODEL_ROLES.get(family)
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
