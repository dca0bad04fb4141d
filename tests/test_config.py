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


def test_quickstart_preset_is_listed_and_valid():
    assert "quickstart" in list_presets()
    cfg = load_config("quickstart")
    assert cfg.sweep.sampler == [f"uniform:{k}" for k in (2, 4, 8, 16, 32)]
    cells = expand(cfg)
    # {gru IB, gru CB, mean IB, CLIP zero-shot x {none, estimated-prior}, CLIP probe IB,
    # CLIP probe CB} x 5 densities x 2 orders; prior corrections share their group
    assert len(cells) == 7 * 5 * 2
    assert len(groups(cells)) == 6
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
        ({"sweep": {"order": ["sideways"]}}, "sweep.order.0"),
        ({"sweep": {"sampler": ["uniform:0"]}}, "sweep.sampler"),
        ({"sweep": {"rebalancing": ["magic"]}}, "allowed: instance-balanced"),
        ({"sweep": {"prior_correction": ["psychic"]}}, "allowed: none"),
        ({"datasets": [{"name": "nope", "root": "/x"}]}, "unknown dataset 'nope'"),
        ({"models": [{"adapter": "baseline:lstm"}]}, "allowed: mean, gru, transformer"),
        ({"models": [{"adapter": "zzz:1"}]}, "unknown model family"),
        ({"device": "tpu"}, "device"),
        ({"bogus": 1}, "bogus"),
        ({"metrics": {"rule": "median"}}, "metrics.rule"),
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


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(bad))
