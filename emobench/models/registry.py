"""Model registry: ``<family>:<argument>`` names → adapter factories.

Families register themselves with :func:`register_model` in their own module; adding a
model family is one module, ``emobench/models/<family>/adapter.py`` (found on first lookup
without editing a list), or, from another package, an entry point in the
``emobench.models`` group naming a module that calls :func:`register_model`. Names in
configs look like ``baseline:gru``, ``openclip:ViT-B-32@/weights/vitb32.safetensors``,
``hf:/models/qwen``.

A family declares what the core needs through hooks on its registration, so that the run
configuration, the runner and the report name no family:

* ``options``: the ``[models.options]`` schema, validated at config load;
* ``kind`` and ``gives_scores``: what the sweep may ask of it (enrichment, prior correction);
* ``check_config``: a check of the model against the run's sweep (e.g. imported
  predictions were made with one sampler), one error line or None;
* ``inputs_digest``: a digest of the files the model reads besides the media, put into
  every cell's stamp (an edited file makes the model's parts stale);
* ``role``: its part in the report's findings (:class:`emobench.models.roles.FamilyRole`:
  VLM or vision-only, trained or zero-shot, whether it sees the frame order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emobench.errors import EmobenchError, describe_validation_error
from emobench.models.roles import FamilyRole
from emobench.registry import Registry, find_modules, unknown_message

if TYPE_CHECKING:
    from pydantic import BaseModel


class UnknownModelError(EmobenchError):
    """A model name whose family is not registered or whose argument is invalid."""


#: ``(where, adapter, options, axes, datasets) -> why or None`` (see ``ModelFamily``).
ConfigCheck = Callable[[str, str, dict[str, Any], dict[str, list[Any]], list[str]], "str | None"]


@dataclass(frozen=True)
class ModelFamily:
    family: str
    factory: Callable[..., Any]  # (argument: str, options: dict) -> adapter
    description: str
    arguments: tuple[str, ...] = ()  # allowed arguments when the set is closed (e.g. heads)
    #: the ``[models.options]`` schema (a pydantic model, extra keys forbidden), validated
    #: at config load so a bad option is one error line naming ``models.N.options.<key>``
    options: type[BaseModel] | None = None
    #: the model kind its adapters have (:mod:`emobench.models.base`): ``frame-features``
    #: or ``clip``; checked at config load (enrichment needs a clip model)
    kind: str = "frame-features"
    #: ``gives_scores(options) -> bool``: whether the model returns a score vector with
    #: these options (prior corrections need one); None: always
    gives_scores: Callable[[dict[str, Any]], bool] | None = None
    #: ``check_config(where, adapter, options, axes, datasets) -> str | None``: why the
    #: model does not fit the run's sweep (``axes``: sweep axis → the model's values after
    #: its overrides, and ``seeds``; ``datasets``: the run's dataset names), or None
    check_config: ConfigCheck | None = None
    #: ``inputs_digest(adapter, options) -> str``: a digest of the files the model reads
    #: besides the media (it goes into every cell's stamp); None: no such files
    inputs_digest: Callable[[str, dict[str, Any]], str] | None = None
    #: the family's part in the report's findings; None: left out of the findings
    role: FamilyRole | None = None


#: Registered model families by name; ``emobench.models.<family>.adapter`` modules and the
#: ``emobench.models`` entry points are imported on the first lookup.
MODEL_FAMILIES: Registry[ModelFamily] = Registry(
    "model family",
    error=UnknownModelError,
    discover=lambda: find_modules("emobench.models", submodule="adapter"),
    entry_points="emobench.models",
)


def register_model(
    family: str,
    description: str,
    arguments: tuple[str, ...] = (),
    options: type[BaseModel] | None = None,
    kind: str = "frame-features",
    gives_scores: Callable[[dict[str, Any]], bool] | None = None,
    *,
    check_config: ConfigCheck | None = None,
    inputs_digest: Callable[[str, dict[str, Any]], str] | None = None,
    role: FamilyRole | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(argument, options)`` for ``family:<argument>`` names.

    ``options`` is the family's options model (see :class:`emobench.settings.StrictModel`);
    config loading validates ``models.N.options`` with it. The factory still receives the
    options as the plain dict the user wrote. ``check_config``, ``inputs_digest`` and
    ``role`` are the family's hooks (see :class:`ModelFamily`).
    """

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        MODEL_FAMILIES.add(
            family,
            ModelFamily(
                family,
                factory,
                description,
                arguments,
                options,
                kind,
                gives_scores,
                check_config,
                inputs_digest,
                role,
            ),
        )
        return factory

    return deco


def list_families() -> list[ModelFamily]:
    return list(MODEL_FAMILIES.values())


def split_name(name: str) -> tuple[str, str]:
    family, sep, arg = name.partition(":")
    if not sep or not arg:
        raise UnknownModelError(f"model name {name!r} must look like <family>:<argument>")
    return family, arg


def check_model_name(name: str) -> ModelFamily:
    """Validate a model name without building the model (used by config validation)."""
    family, arg = split_name(name)
    if family not in MODEL_FAMILIES:
        raise UnknownModelError(f"{MODEL_FAMILIES.message(family)} (in {name!r})")
    info = MODEL_FAMILIES[family]
    if info.arguments and arg not in info.arguments:
        raise UnknownModelError(unknown_message(f"{family} model", arg, info.arguments))
    return info


def inputs_digest(name: str, options: dict[str, Any]) -> str | None:
    """The digest of the files model ``name`` reads besides the media (its family's
    ``inputs_digest`` hook), or None when its family declares none."""
    hook = check_model_name(name).inputs_digest
    return None if hook is None else hook(name, dict(options))


def family_role(family: str) -> FamilyRole | None:
    """The role ``family`` declared (None: no role, or no such family installed)."""
    info = MODEL_FAMILIES.get(family)
    return None if info is None else info.role


def create_model(name: str, options: dict[str, Any] | None = None) -> Any:
    """Build the adapter for ``name`` (heavy imports happen here, not at registration)."""
    info = check_model_name(name)
    return info.factory(split_name(name)[1], dict(options or {}))


def parse_options(name: str, schema: type[BaseModel], options: dict[str, Any]) -> Any:
    """Validate a model's options with its family's schema; a problem is one
    :class:`UnknownModelError` line (``baseline:gru: options.crop: ...``)."""
    from pydantic import ValidationError

    try:
        return schema.model_validate(dict(options))
    except ValidationError as exc:
        raise UnknownModelError(f"{name}: {describe_validation_error(exc, 'options')}") from None
