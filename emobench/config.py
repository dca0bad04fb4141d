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

    [[models]]                          # predictions made elsewhere, imported as cells
    adapter = "predictions:preds/maedfer_fold{fold}.csv"
    name = "MAE-DFER"
    sampler = ["uniform:16"]            # what that code used: one value each; a model's
    order = ["original"]                # sampler/order/enrichment/rebalancing/
                                        # prior_correction lists replace the sweep's

    [sweep]
    sampler = ["uniform:2,4,8,16,32"]   # comma lists expand: uniform:2, uniform:4, ...
    order = ["original", "shuffle"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from emobench.config_source import (  # noqa: F401  (re-exported)
    ConfigError,
    apply_overrides,
    list_presets,
    read_config_source,
)
from emobench.data.registry import DATASETS, check_loader_options, check_root
from emobench.errors import EmobenchError, describe_validation_error
from emobench.longtail.prior import PRIOR_CORRECTIONS
from emobench.longtail.rebalance import REBALANCING
from emobench.models.registry import ConfigCheck, check_model_name
from emobench.settings import (  # noqa: F401  (re-exported: the run config's building blocks)
    Bool,
    Device,
    Float,
    Int,
    PositiveInt,
    Seed,
    StrictModel,
    TrainSettings,
    TrainTable,
    check_train,
    folder_name,
)
from emobench.settings import no_repeats as _unique
from emobench.settings import value_error as _one_line
from emobench.video.sampling import ORDERS, SamplerSpecError, parse_spec

#: Context-enrichment values of the sweep (:class:`emobench.models.base.ClipInput`): the
#: keyframes alone, MSCE (keyframes + a description of each gap), MSCE's descriptions
#: without images, and all keyframes + in-between frames as images (the compute-matched
#: control). Anything but ``none`` needs a clip model.
ENRICHMENTS = ("none", "msce", "msce-text", "msce-dense")


_Strict = StrictModel


# --------------------------------------------------------------------------- sections


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
        if v not in DATASETS:
            raise ValueError(DATASETS.message(v))
        return v

    @field_validator("options")
    @classmethod
    def _loader_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Options are the loader's keyword parameters (``data check`` checks the same)."""
        if info.data.get("name") is not None:
            check_loader_options(info.data["name"], v)
        return v

    @field_validator("root", mode="before")
    @classmethod
    def _root_given(cls, v: Any) -> Any:
        """A path, and one the system can look at (not e.g. a symlink loop)."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("root must be a folder path, got an empty string")
        if isinstance(v, (str, Path)):
            check_root(v)
        return v

    @field_validator("folds", mode="before")
    @classmethod
    def _fold_numbers(cls, v: Any) -> Any:
        ok = v == "all" or (
            isinstance(v, list)
            and v
            and all(type(x) is int and x >= 1 for x in v)
            and len(set(v)) == len(v)
        )
        if not ok:
            raise ValueError(
                f'folds must be "all" or a list of distinct fold numbers >= 1, got {v!r}'
            )
        return v

    @field_validator("generate")
    @classmethod
    def _generator_options(
        cls, v: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        name = info.data.get("name")
        if v is None or name is None:
            return v
        if name != "synth":
            raise ValueError(f"only the synth dataset can be generated, not {name!r}")
        from emobench.data.synth.generate import SynthConfig  # lazy: it pulls in polars

        unknown = [k for k in v if k not in SynthConfig.model_fields]
        if unknown:
            raise ValueError(
                f"unknown generator option {unknown[0]!r}; allowed: "
                + ", ".join(SynthConfig.model_fields)
            )
        try:
            SynthConfig.model_validate(v)  # its errors nest under generate.<key>
        except EmobenchError as exc:  # e.g. a bad class profile
            raise _one_line(exc) from None
        return v


class ModelConfig(_Strict):
    adapter: str = Field(description="model registry name, e.g. baseline:gru")
    name: str | None = Field(None, description="display name (default: the adapter name)")
    rebalancing: list[str] | None = Field(
        None, min_length=1, description="overrides sweep.rebalancing"
    )
    prior_correction: list[str] | None = Field(
        None, min_length=1, description="overrides sweep.prior_correction"
    )
    enrichment: list[Literal[ENRICHMENTS]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, description="overrides sweep.enrichment"
    )
    sampler: list[str] | None = Field(
        None,
        min_length=1,
        description="overrides sweep.sampler (e.g. a video model that always takes 16 frames)",
    )
    order: list[str] | None = Field(None, min_length=1, description="overrides sweep.order")
    options: dict[str, Any] = Field(
        default_factory=dict, description="adapter options (the family's options model)"
    )

    @property
    def display_name(self) -> str:
        return self.name or self.adapter

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, v: str) -> str:
        try:
            check_model_name(v)
        except EmobenchError as exc:  # pydantic reports ValueErrors with the field's path
            raise _one_line(exc) from None
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("name must not be empty (leave it out to use the adapter name)")
        return v

    @field_validator("rebalancing")
    @classmethod
    def _known_rebalancing(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_rebalancing(v)

    @field_validator("sampler")
    @classmethod
    def _known_samplers(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_samplers(v)

    @field_validator("order")
    @classmethod
    def _known_orders(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_orders(v)

    @field_validator("prior_correction")
    @classmethod
    def _known_prior(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_prior(v)

    @field_validator("options")
    @classmethod
    def _family_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        adapter = info.data.get("adapter")
        if adapter is None:  # the adapter's own error is reported
            return v
        schema = check_model_name(adapter).options
        if schema is not None:
            try:
                schema.model_validate(v)  # its errors nest under options.<key>
            except EmobenchError as exc:
                raise _one_line(exc) from None
        return v  # kept as written: adapters and cache keys see the user's values


class SweepConfig(_Strict):
    sampler: list[str] = Field(default_factory=lambda: ["uniform:16"])
    order: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["original"],
        description="frame orders (emobench.video.sampling.ORDERS): original, shuffle, reverse",
    )
    enrichment: Annotated[list[Literal[ENRICHMENTS]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["none"],
        description="none, msce, msce-text, msce-dense (the last three need a clip model)",
    )
    rebalancing: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["instance-balanced"]
    )
    prior_correction: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["none"]
    )
    seeds: Annotated[list[Seed], Field(min_length=1)] = Field(default_factory=lambda: [0])

    @field_validator("sampler")
    @classmethod
    def _expand_samplers(cls, v: list[str]) -> list[str]:
        return _check_samplers(v)

    @field_validator("enrichment", "seeds")
    @classmethod
    def _no_repeats(cls, v: list[Any]) -> list[Any]:
        return _unique(v)

    @field_validator("order")
    @classmethod
    def _known_order(cls, v: list[str]) -> list[str]:
        return _check_orders(v)

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
    frames: Bool = Field(False, description="also cache decoded frames on disk (uint8 .npy)")
    fingerprint: Literal["stat", "content"] = Field(
        "stat",
        description='how media files are told apart in stamps, checkpoints and caches: "stat" '
        "(size + modification time; misses a same-size rewrite that keeps the time) or "
        '"content" (a BLAKE2b hash of the bytes, read once per file and process)',
    )


class MetricsConfig(_Strict):
    rule: Literal["relative", "absolute"] = "relative"
    head: Float | None = Field(
        None, gt=0, description="head threshold (default: 0.5 x largest, or 100 clips if absolute)"
    )
    tail: Float | None = Field(
        None, gt=0, description="tail threshold (default: 0.2 x largest, or 20 clips if absolute)"
    )
    n_resamples: Int = Field(1000, ge=0, le=100_000)
    seed: Seed = 0


class VideoConfig(_Strict):
    backend: Literal["auto", "pyav", "decord"] = Field(
        "auto",
        description='decoding backend; "auto" gives PyAV\'s exact pixels, decoding with decord '
        "only where its frames were bit-identical to PyAV's for that source and output size",
    )


class ReportConfig(_Strict):
    priors: list[str] | None = Field(
        None,
        description="class priors the report plots per-class F1 against when `emobench report` "
        "gets no --prior (default: train_freq and web_word_freq)",
    )

    @field_validator("priors")
    @classmethod
    def _some_priors(cls, v: list[str] | None) -> list[str] | None:
        # the names are checked by `emobench report` (the report owns the prior registry)
        if v is not None and not v:
            raise ValueError("at least one class prior (e.g. train_freq), or leave it out")
        return v


class RunConfig(_Strict):
    name: str = Field("run", description="results go to results/<name> unless --out is given")
    description: str = ""
    datasets: list[DatasetConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    train: TrainTable = Field(
        default_factory=dict, description="training defaults of the baselines and probes"
    )
    cache: CacheConfig = Field(default_factory=CacheConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    limit: Int | None = Field(
        None, ge=1, le=2**63 - 1, description="at most N clips per split and fold"
    )

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, v: str) -> str:
        return folder_name(v)

    @field_validator("train")
    @classmethod
    def _train_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train(v)

    @model_validator(mode="after")
    def _models_fit_the_sweep(self) -> RunConfig:
        """Enrichment needs a clip model; prior corrections need a model that gives scores."""
        for i, m in enumerate(self.models):
            family = check_model_name(m.adapter)
            if family.check_config is not None:  # the family's own check of the sweep
                self._check_family(i, m, family.check_config)
            enrich = [e for e in (m.enrichment or self.sweep.enrichment) if e != "none"]
            if enrich and family.kind not in ("clip", "imported"):
                raise ValueError(
                    f"models.{i} ({m.adapter}) is a {family.kind} model: enrichment "
                    f'{enrich[0]!r} needs a clip model (set models.{i}.enrichment = ["none"])'
                )
            priors = [p for p in (m.prior_correction or self.sweep.prior_correction) if p != "none"]
            if priors and family.gives_scores is not None and not family.gives_scores(m.options):
                raise ValueError(
                    f"models.{i} ({m.adapter}) gives no scores with these options: prior "
                    f'correction {priors[0]!r} needs scores (e.g. scoring = "loglik")'
                )
        return self

    def _check_family(self, i: int, m: ModelConfig, check_config: ConfigCheck) -> None:
        """The family's ``check_config`` hook on the model's sweep axes (e.g. an imported
        model has one sampler, order, enrichment and re-balancing: what the other code
        used)."""
        sw = self.sweep
        axes = {
            "sampler": m.sampler or sw.sampler,
            "order": m.order or sw.order,
            "enrichment": m.enrichment or sw.enrichment,
            "rebalancing": m.rebalancing or sw.rebalancing,
            "prior_correction": m.prior_correction or sw.prior_correction,
            "seeds": sw.seeds,
        }
        why = check_config(
            f"models.{i}", m.adapter, m.options, axes, [d.name for d in self.datasets]
        )
        if why:
            raise ValueError(why)


def _check_samplers(v: list[str]) -> list[str]:
    """Sampler specs, comma lists expanded (``uniform:2,4``), in canonical spelling, each
    once (a repeat after expansion is dropped)."""
    out: list[str] = []
    for item in v:
        for spec in expand_spec_list(item):
            try:
                out.append(str(parse_spec(spec)))
            except SamplerSpecError as exc:
                raise _one_line(exc) from None
    if not out:
        raise ValueError("at least one sampler is needed")
    return list(dict.fromkeys(out))


def _check_orders(v: list[str]) -> list[str]:
    v = _unique(v)
    for name in v:
        if name not in ORDERS:
            raise ValueError(ORDERS.message(name))
    return v


def _check_rebalancing(v: list[str]) -> list[str]:
    bad = [x for x in v if x not in REBALANCING]
    if bad:
        raise ValueError(REBALANCING.message(bad[0]))
    return _unique(v)


def _check_prior(v: list[str]) -> list[str]:
    bad = [x for x in v if x not in PRIOR_CORRECTIONS]
    if bad:
        raise ValueError(PRIOR_CORRECTIONS.message(bad[0]))
    return _unique(v)


def expand_spec_list(item: str) -> list[str]:
    """``"uniform:2,4,8"`` → ``["uniform:2", "uniform:4", "uniform:8"]``; others unchanged.

    An empty item (``uniform:2,,4`` or a trailing comma) is a ``ValueError``.
    """
    if ":" in item and "," in item:
        kind, values = item.split(":", 1)
        parts = [x.strip() for x in values.split(",")]
        if not all(parts):
            raise ValueError(f"sampler list {item!r} has an empty item")
        return [f"{kind}:{x}" for x in parts]
    return [item]


def load_config(source: str = "quickstart", overrides: list[str] | None = None) -> RunConfig:
    """Load and validate a preset or TOML file, with ``--set`` overrides applied."""
    data, origin = read_config_source(source)
    data = apply_overrides(data, overrides or [])
    return validate_config(data, origin)


def validate_config(data: dict[str, Any], origin: str = "config") -> RunConfig:
    """Validate a raw config dict; any problem is one :class:`ConfigError` line naming the
    field (``<origin>: train.epochs: Input should be a valid integer (got 1.5)``)."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_validation_error(exc)}") from None
