"""Run configuration: a TOML file (or a shipped preset) validated with pydantic.

A run is datasets × models × sweep axes. The sweep axes are expanded into *cells* by
:mod:`emobench.runner.plan`; every cell runs on every selected fold of its dataset.

Example (the shipped ``quickstart`` preset is a complete one)::

    name = "my-run"
    [[datasets]]
    name = "dfew"                       # registry name (`emobench data list`)
    root = "/data/DFEW"
    folds = [1, 2, 3, 4, 5]             # or "all"

    [[models]]
    adapter = "baseline:gru"            # registry name (`emobench models`)
    rebalancing = ["instance-balanced", "class-balanced"]

    [sweep]
    sampler = ["uniform:2,4,8,16,32"]   # comma lists expand: uniform:2, uniform:4, ...
    order = ["original", "shuffle"]
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emobench.errors import EmobenchError

ORDERS = ("original", "shuffle", "reverse")
ENRICHMENTS = ("none",)  # the enrichment issue adds MSCE settings here


class ConfigError(EmobenchError):
    """A configuration file, preset or --set override is invalid (message names the field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    name: str = Field(description="registered dataset name, see `emobench data list`")
    root: Path = Field(description="dataset folder")
    folds: list[int] | Literal["all"] = "all"
    generate: dict[str, Any] | None = Field(
        None, description="synth only: generator options; the set is generated if root lacks it"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="loader/generator options")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from emobench.data.registry import _REGISTRY, _load_all

        _load_all()
        if v not in _REGISTRY:
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(sorted(_REGISTRY))}")
        return v


class ModelConfig(_Strict):
    adapter: str = Field(description="model registry name, e.g. baseline:gru")
    name: str | None = Field(None, description="display name (default: the adapter name)")
    rebalancing: list[str] | None = Field(None, description="overrides sweep.rebalancing")
    prior_correction: list[str] | None = Field(None, description="overrides sweep.prior_correction")
    options: dict[str, Any] = Field(default_factory=dict, description="adapter options")

    @property
    def display_name(self) -> str:
        return self.name or self.adapter

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, v: str) -> str:
        from emobench.models.registry import check_model_name

        try:
            check_model_name(v)
        except EmobenchError as exc:  # pydantic reports ValueErrors with the field's path
            raise ValueError(str(exc)) from None
        return v

    @field_validator("rebalancing")
    @classmethod
    def _known_rebalancing(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_rebalancing(v)

    @field_validator("prior_correction")
    @classmethod
    def _known_prior(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_prior(v)


class SweepConfig(_Strict):
    sampler: list[str] = Field(default_factory=lambda: ["uniform:16"])
    order: list[Literal["original", "shuffle", "reverse"]] = Field(
        default_factory=lambda: ["original"]
    )
    enrichment: list[Literal["none"]] = Field(default_factory=lambda: ["none"])
    rebalancing: list[str] = Field(default_factory=lambda: ["instance-balanced"])
    prior_correction: list[str] = Field(default_factory=lambda: ["none"])
    seeds: list[int] = Field(default_factory=lambda: [0])

    @field_validator("sampler")
    @classmethod
    def _expand_samplers(cls, v: list[str]) -> list[str]:
        from emobench.video.sampling import SamplerSpecError, parse_spec

        out: list[str] = []
        for item in v:
            for spec in expand_spec_list(item):
                try:
                    out.append(str(parse_spec(spec)))
                except SamplerSpecError as exc:
                    raise ValueError(str(exc)) from None
        if not out:
            raise ValueError("at least one sampler is needed")
        return list(dict.fromkeys(out))

    @field_validator("rebalancing")
    @classmethod
    def _known_rebalancing(cls, v: list[str]) -> list[str]:
        return _check_rebalancing(v)

    @field_validator("prior_correction")
    @classmethod
    def _known_prior(cls, v: list[str]) -> list[str]:
        return _check_prior(v)


class CacheConfig(_Strict):
    dir: Path | None = Field(None, description="cache folder (default: <out>/../.emobench-cache)")
    frames: bool = Field(False, description="also cache decoded frames on disk (uint8 .npy)")


class MetricsConfig(_Strict):
    rule: Literal["relative", "absolute"] = "relative"
    head: float | None = Field(
        None, gt=0, description="head threshold (default: 0.5 x largest, or 100 clips if absolute)"
    )
    tail: float | None = Field(
        None, gt=0, description="tail threshold (default: 0.2 x largest, or 20 clips if absolute)"
    )
    n_resamples: int = Field(1000, ge=0)
    seed: int = 0


class RunConfig(_Strict):
    name: str = "run"
    description: str = ""
    datasets: list[DatasetConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    train: dict[str, Any] = Field(default_factory=dict, description="baseline training defaults")
    cache: CacheConfig = Field(default_factory=CacheConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    limit: int | None = Field(None, ge=1, description="at most N clips per split and fold")


def _check_rebalancing(v: list[str]) -> list[str]:
    from emobench.longtail.rebalance import REBALANCING

    bad = [x for x in v if x not in REBALANCING]
    if bad:
        raise ValueError(f"unknown rebalancing {bad}; allowed: {', '.join(REBALANCING)}")
    return v


def _check_prior(v: list[str]) -> list[str]:
    from emobench.longtail.prior import PRIOR_CORRECTIONS

    bad = [x for x in v if x not in PRIOR_CORRECTIONS]
    if bad:
        raise ValueError(f"unknown prior correction {bad}; allowed: {', '.join(PRIOR_CORRECTIONS)}")
    return v


def expand_spec_list(item: str) -> list[str]:
    """``"uniform:2,4,8"`` → ``["uniform:2", "uniform:4", "uniform:8"]``; others unchanged."""
    if ":" in item and "," in item:
        kind, values = item.split(":", 1)
        return [f"{kind}:{x.strip()}" for x in values.split(",") if x.strip()]
    return [item]


# --------------------------------------------------------------------------- loading


def list_presets() -> dict[str, str]:
    """Shipped presets: name → the first line of their description."""
    out = {}
    for entry in sorted(resources.files("emobench.presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            desc = str(tomllib.loads(entry.read_text()).get("description", "")).strip()
            out[entry.name.removesuffix(".toml")] = desc.splitlines()[0] if desc else ""
    return out


def read_config_source(source: str) -> tuple[dict[str, Any], str]:
    """Read a preset name or a TOML path into a raw dict; returns (data, origin)."""
    path = Path(source)
    if source.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {source}")
        text, origin = path.read_text(), str(path)
    else:
        res = resources.files("emobench.presets").joinpath(f"{source}.toml")
        if not res.is_file():
            names = ", ".join(list_presets())
            raise ConfigError(f"unknown preset {source!r}; presets: {names} (or pass a .toml file)")
        text, origin = res.read_text(), f"preset {source}"
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as TOML, else a plain string).

    List items are addressed by position: ``datasets.0.root=/data/dfew``.
    """
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        parts = key.strip().split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_list_pos(node, last, key)] = value
        else:
            node[last] = value
    return data


def _child(node: Any, part: str, path: str, *, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_pos(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {path}: {path.rsplit('.', 1)[0]} is not a table")
    if part not in node and create:
        node[part] = {}
    return node[part]


def _list_pos(node: list, part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {path}: index {part!r} outside 0..{len(node) - 1}")
    return int(part)


def load_config(source: str = "quickstart", overrides: list[str] | None = None) -> RunConfig:
    """Load and validate a preset or TOML file, with ``--set`` overrides applied."""
    data, origin = read_config_source(source)
    data = apply_overrides(data, overrides or [])
    return validate_config(data, origin)


def validate_config(data: dict[str, Any], origin: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        first = errs[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errs) - 1} more error(s))" if len(errs) > 1 else ""
        raise ConfigError(f"{origin}: {loc}: {msg}{more}") from None
