"""Config loading, validation errors (naming field and allowed values), overrides, grid."""

import pytest

from emobench.config import (
    ConfigError,
    apply_overrides,
    expand_spec_list,
    list_presets,
    load_config,
    validate_config,
)
from emobench.runner.plan import expand, groups

BASE = {
    "name": "t",
    "datasets": [{"name": "synth", "root": "/tmp/none"}],
    "models": [
        {"adapter": "baseline:gru", "rebalancing": ["instance-balanced", "class-balanced"]},
        {"adapter": "baseline:mean", "name": "mean"},
    ],
    "sweep": {"sampler": ["uniform:2,4,8"], "order": ["original", "shuffle"]},
}


def test_expand_spec_list():
    assert expand_spec_list("uniform:2,4, 8") == ["uniform:2", "uniform:4", "uniform:8"]
    assert expand_spec_list("fps:1,5") == ["fps:1", "fps:5"]
    assert expand_spec_list("dense") == ["dense"]
    for bad in ("uniform:2,,4", "uniform:2,4,", "uniform:, 2"):
        with pytest.raises(ValueError, match="empty item"):
            expand_spec_list(bad)


def test_quickstart_preset_is_listed_and_valid():
    assert "quickstart" in list_presets()
    cfg = load_config("quickstart")
    assert cfg.sweep.sampler == [f"uniform:{k}" for k in (2, 4, 8, 16, 32)]
    cells = expand(cfg)
    # {gru IB, gru CB, mean IB, CLIP zero-shot x {none, estimated-prior}, CLIP probe IB,
    # CLIP probe CB} x 5 densities x 2 orders; prior corrections share their group; the
    # generative VLM: generate x 4 densities x 2 orders, loglik x {none, estimated-prior}
    # at uniform:8, MSCE x {none, msce, msce-text, msce-dense} at uniform:4
    assert len(cells) == 7 * 5 * 2 + 4 * 2 + 2 + 4
    assert len(groups(cells)) == 6 + 3
    msce = [c for c in cells if c.model == "vlm-msce"]
    assert {(c.sampler, c.order) for c in msce} == {("uniform:4", "original")}
    assert {c.enrichment for c in msce} == {"none", "msce", "msce-text", "msce-dense"}
    assert {c.prior_correction for c in cells if c.model == "clip-zero-shot"} == {
        "none",
        "estimated-prior",
    }


def test_grid_expansion_and_groups():
    cfg = validate_config(BASE)
    cells = expand(cfg)
    assert len(cells) == (2 + 1) * 3 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    g = groups(cells)
    assert len(g) == 3  # (gru, IB), (gru, CB), (mean, IB)
    for members in g.values():
        assert len(members) == 6
        assert len({(c.model, c.rebalancing) for c in members}) == 1
    s = cells[0].settings()
    assert s["density"] == 2.0 and s["density_unit"] == "frames"


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"sweep": {"order": ["sideways"]}}, "sweep.order: unknown frame order 'sideways'"),
        ({"sweep": {"sampler": ["uniform:0"]}}, "sweep.sampler"),
        ({"sweep": {"rebalancing": ["magic"]}}, "allowed: instance-balanced"),
        ({"sweep": {"prior_correction": ["psychic"]}}, "allowed: none"),
        ({"datasets": [{"name": "nope", "root": "/x"}]}, "unknown dataset 'nope'"),
        ({"models": [{"adapter": "baseline:lstm"}]}, "allowed: mean, gru, transformer"),
        ({"models": [{"adapter": "zzz:1"}]}, "unknown model family"),
        ({"device": "tpu"}, "device"),
        ({"bogus": 1}, "bogus"),
        ({"metrics": {"rule": "median"}}, "metrics.rule"),
        ({"train": {"epochz": 3}}, "train.epochz: unknown setting; allowed: epochs, batch_size"),
        ({"train": {"epochs": 1.5}}, "train.epochs: Input should be a valid integer (got 1.5)"),
        ({"train": {"epochs": "3"}}, "train.epochs: Input should be a valid integer (got '3')"),
        ({"train": {"lr": "fast"}}, "train.lr: Input should be a valid number"),
        ({"train": {"val_fraction": 1.0}}, "train.val_fraction: Input should be less than 1"),
        ({"train": {"train_frames": [4, 0]}}, "train.train_frames.1"),
        ({"train": {"device": "cpu"}}, "train.device: not a setting here"),
        (
            {"models": [{"adapter": "baseline:gru", "options": {"train": {"epochs": 0}}}]},
            "models.0.options.train.epochs: Input should be greater than or equal to 1",
        ),
        (
            {"models": [{"adapter": "baseline:gru", "options": {"frame_size": "big"}}]},
            "models.0.options.frame_size",
        ),
        (
            {"models": [{"adapter": "openclip:emobench-tiny", "options": {"probe": "mlp"}}]},
            "models.0.options.probe",
        ),
        ({"name": ""}, "name: must be a non-empty folder name"),
        ({"name": "."}, "name: must be a non-empty folder name"),
        ({"sweep": {"seeds": [0, 0]}}, "sweep.seeds: 0 is listed twice"),
        ({"sweep": {"seeds": [True]}}, "sweep.seeds.0"),
        ({"sweep": {"order": []}}, "sweep.order"),
        ({"datasets": [{"name": "synth", "root": "/x", "folds": [0]}]}, "datasets.0.folds"),
        ({"datasets": [{"name": "synth", "root": ""}]}, "datasets.0.root"),
        (
            {"datasets": [{"name": "synth", "root": "/x", "generate": {"sed": 1}}]},
            "datasets.0.generate: unknown generator option 'sed'",
        ),
        (
            {"datasets": [{"name": "synth", "root": "/x", "generate": {"size": 49}}]},
            "datasets.0.generate",
        ),
        (
            {"datasets": [{"name": "synth", "root": "/x", "options": {"check_file": True}}]},
            "datasets.0.options: unknown synth loader option 'check_file'; allowed: check_files",
        ),
        ({"video": {"backend": "vhs"}}, "video.backend"),
        ({"cache": {"frames": "yes"}}, "cache.frames"),
        ({"limit": 2.0}, "limit"),
    ],
)
def test_validation_errors_name_field(patch, fragment):
    with pytest.raises(ConfigError) as exc:
        validate_config({**BASE, **patch}, "my.toml")
    msg = str(exc.value)
    assert fragment in msg
    assert msg.startswith("my.toml: ")
    assert "\n" not in msg


def test_overrides_parse_toml_values_and_index_lists():
    data = apply_overrides(
        BASE, ["sweep.seeds=[1, 2]", "datasets.0.root=/data/x", "name=abc", "train.epochs=3"]
    )
    assert data["sweep"]["seeds"] == [1, 2]
    assert data["datasets"][0]["root"] == "/data/x"
    assert data["name"] == "abc"
    assert data["train"] == {"epochs": 3}
    assert BASE["name"] == "t"  # input untouched
    with pytest.raises(ConfigError, match="index"):
        apply_overrides(BASE, ["datasets.5.root=/x"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(BASE, ["oops"])
    assert apply_overrides(BASE, ['name=""'])["name"] == ""  # an explicit empty string
    assert apply_overrides(BASE, ["datasets.0.root= /data/x "])["datasets"][0]["root"] == "/data/x"
    for bad, fragment in [
        ("train.epochs=", "train.epochs: empty value"),
        ("name.sub=1", "name.sub: name is 't', not a table"),
        ("sweep.order.0.x=1", "sweep.order.0 is 'original', not a table"),
        ("models.2.name=x", "models.2.name: list models has no index '2'"),
        ("models.-1.name=x", "index '-1'"),
        ("sweep..order=[]", "empty key part"),
    ]:
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
            apply_overrides(BASE, [bad])


def test_train_settings_and_train_config_agree():
    from emobench.config import TrainSettings
    from emobench.models.baseline.train import TrainConfig, TrainConfigError

    cfg = TrainConfig(epochs=3, lr=1, train_frames=[2, 4], seed=7, device="cpu")
    assert (cfg.epochs, cfg.lr, cfg.train_frames, cfg.seed) == (3, 1.0, (2, 4), 7)
    assert cfg.to_dict()["train_frames"] == [2, 4]
    assert set(cfg.to_dict()) == {*TrainSettings.model_fields, "seed", "device"}
    with pytest.raises(TrainConfigError, match="epochs"):
        TrainConfig(epochs=1.5)
    with pytest.raises(TrainConfigError, match="unknown setting"):
        TrainConfig(epochz=3)


def test_quickstart_options_validate_and_stay_as_written():
    cfg = load_config("quickstart")
    assert cfg.train == {"epochs": 14}
    assert cfg.models[0].options == {"frame_size": 112, "crop": 64}
    assert cfg.video.backend == "auto"


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(bad))
