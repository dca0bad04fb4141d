"""Strict setting types and the training settings: the building blocks of run configs and
of every family's options table (:mod:`emobench.config` re-exports them).

A TOML value is taken as written: ``1.5``, ``"3"`` and ``true`` are not integers, and an
unknown key is one error naming the allowed ones.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from emobench.errors import EmobenchError


class DeviceError(EmobenchError):
    """A device was requested that this machine does not have, or is spelled wrongly."""


#: The spellings of a device setting.
DEVICE_FORMS = "auto, cpu, cuda, cuda:N, mps"
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


def check_device_spec(spec: str) -> str:
    """The canonical (stripped, lower-case) spelling of a device setting; a
    :class:`DeviceError` for anything but ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    Checks the spelling only (whether this machine has the device is
    :func:`emobench.models.device.resolve_device`'s job), so config validation does not
    import torch."""
    name = spec.strip().lower() if isinstance(spec, str) else ""
    if not _DEVICE_RE.fullmatch(name):
        raise DeviceError(f"unknown device {spec!r}; allowed: {DEVICE_FORMS}")
    return name


#: A TOML integer: 1.5, "3" and true are not integers.
Int = Annotated[int, Strict()]
#: A positive TOML integer.
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
#: A finite number (an integer is accepted); strings, booleans, nan and inf are not.
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: A true TOML boolean.
Bool = Annotated[bool, Strict()]
#: A random seed (numpy and torch accept 0 .. 2**32 - 1 everywhere).
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**32)]


def value_error(exc: EmobenchError) -> ValueError:
    """An emobench error raised inside a validator, as the ValueError pydantic reports."""
    return ValueError(" ".join(str(exc).split()))


def no_repeats(v: list[Any]) -> list[Any]:
    """Check that a list names each item once (``'x' is listed twice``)."""
    seen = [x for i, x in enumerate(v) if x in v[:i]]
    if seen:
        raise ValueError(f"{seen[0]!r} is listed twice")
    return v


def _device(v: str) -> str:
    try:
        return check_device_spec(v)
    except DeviceError as exc:
        raise value_error(exc) from None


#: A device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), in canonical
#: spelling; :func:`emobench.models.device.resolve_device` makes it a ``torch.device``.
Device = Annotated[str, Strict(), AfterValidator(_device)]


class StrictModel(BaseModel):
    """Base of every settings table: frozen, typed, and an unknown key is one error that
    names the allowed ones (``train.epochz: unknown setting; allowed: epochs, ...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Keys that are not settings of this table but of another one: key → where they live.
    moved_settings: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _unknown_settings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if key not in cls.model_fields:
                    msg = f"unknown setting; allowed: {', '.join(cls.model_fields)}"
                    if key in cls.moved_settings:
                        msg = f"not a setting here: {cls.moved_settings[key]}"
                    err = PydanticCustomError("unknown_setting", "{detail}", {"detail": msg})
                    raise ValidationError.from_exception_data(
                        cls.__name__, [{"type": err, "loc": (key,), "input": value}]
                    )
        return data


def folder_name(v: str) -> str:
    """Check a name used as a folder (``results/<name>``): non-empty, no path separators,
    not ``.``/``..``, no leading or trailing spaces, no control characters."""
    if (
        not v.strip()
        or v != v.strip()
        or v in (".", "..")
        or any(c in v for c in "/\\")
        or any(ord(c) < 32 for c in v)
    ):
        raise ValueError(
            "must be a non-empty folder name without '/', '\\', control characters "
            f"or leading/trailing spaces, and not '.' or '..'; got {v!r}"
        )
    return v


class TrainSettings(StrictModel):
    """Training settings of the vision-only baselines and the linear probes: the ``[train]``
    table and each ``models.N.options.train`` (which overrides it for one model).

    :class:`emobench.models.training.TrainConfig` is these settings plus the run's
    ``seed`` and ``device``; see its docstring for what each setting does.
    """

    moved_settings: ClassVar[dict[str, str]] = {
        "seed": "the run's seeds are sweep.seeds",
        "device": "the device is the top-level device setting (or --device)",
    }

    epochs: PositiveInt = 20
    batch_size: PositiveInt = 32
    lr: Annotated[Float, Field(gt=0)] = 3e-3
    weight_decay: Annotated[Float, Field(ge=0)] = 1e-2
    train_frames: Annotated[tuple[PositiveInt, ...], Field(min_length=1)] = (4, 8, 16)
    encoder_frames: PositiveInt = 4
    eval_frames: PositiveInt = 8
    val_fraction: Annotated[Float, Field(ge=0, lt=1)] = 0.1
    patience: PositiveInt = 5
    crt_epochs: PositiveInt = 10
    crop_pad: Annotated[Int, Field(ge=0)] = 2
    jitter: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    encoder_probe: Literal["delta", "mean"] = "delta"


def check_train(v: dict[str, Any]) -> dict[str, Any]:
    """Validate a training-overrides table (errors nest under its path); returns it as is."""
    TrainSettings.model_validate(v)
    return v


#: A training-overrides table, validated, kept as the user wrote it (the engine merges them).
TrainTable = Annotated[dict[str, Any], Field(description="training settings (TrainSettings)")]


__all__ = [
    "Bool",
    "Device",
    "Float",
    "Int",
    "PositiveInt",
    "Seed",
    "StrictModel",
    "TrainSettings",
    "TrainTable",
    "check_train",
    "folder_name",
    "no_repeats",
    "value_error",
]
