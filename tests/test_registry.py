"""The generic Registry (emobench/registry.py): lookups, did-you-mean errors, lazy module
lists, pkgutil discovery, entry-point plugins, and the registries built on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from emobench.data import registry as data_registry
from emobench.errors import EmobenchError
from emobench.models import registry as model_registry
from emobench.registry import (
    PluginError,
    Registry,
    RegistryError,
    find_modules,
    suggest,
    unknown_message,
)


def make_registry(**kw) -> Registry[int]:
    reg: Registry[int] = Registry("colour", **kw)
    reg.add("red", 1)
    reg.register("green")(2)
    reg.add("blue", 3)
    return reg


def test_mapping_semantics() -> None:
    reg = make_registry()
    assert reg["green"] == 2 and reg.get("nope") is None and reg.get("nope", 7) == 7
    assert "red" in reg and "nope" not in reg and ["x"] not in reg and reg.get(["x"]) is None
    assert list(reg) == reg.names() == ["blue", "green", "red"] and len(reg) == 3
    assert dict(reg.items()) == {"blue": 3, "green": 2, "red": 1}
    assert make_registry(sort=False).names() == ["red", "green", "blue"]
    reg.add("red", 10)  # registering again replaces
    assert reg["red"] == 10 and len(reg) == 3
    assert Registry("x", {"a": 1, "b": 2}).names() == ["a", "b"]
    with pytest.raises(ValueError, match="non-empty string"):
        reg.add("", 0)


def test_register_decorator_returns_the_object() -> None:
    reg: Registry[object] = Registry("thing")

    @reg.register("f")
    def f() -> int:
        return 1

    assert reg["f"] is f and f() == 1


def test_unknown_name_did_you_mean() -> None:
    reg = make_registry()
    with pytest.raises(RegistryError) as info:
        reg["gren"]
    assert (
        str(info.value) == "unknown colour 'gren'; did you mean 'green'? allowed: blue, green, red"
    )
    assert isinstance(info.value, KeyError) and isinstance(info.value, EmobenchError)
    with pytest.raises(KeyError, match="^unknown colour 'purple'; allowed: blue, green, red$"):
        reg["purple"]  # nothing close: no hint
    assert (
        reg.message("RED") == "unknown colour 'RED'; did you mean 'red'? allowed: blue, green, red"
    )
    assert suggest(3, ["a"]) is None and suggest("abc", []) is None
    assert unknown_message("x", "a", []) == "unknown x 'a'; allowed: (none)"


def test_error_class_is_the_callers() -> None:
    class MyError(EmobenchError):
        pass

    reg = make_registry(error=MyError)
    with pytest.raises(MyError, match="did you mean 'blue'"):
        reg["blu"]
    assert not issubclass(MyError, KeyError) and reg.get("blu") is None


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path for throw-away modules (removed from sys.modules afterwards)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fake_emobench_"):
            del sys.modules[name]


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_lazy_modules_imported_once_on_first_lookup(plugin_dir: Path) -> None:
    reg: Registry[int] = Registry("number", modules=["fake_emobench_numbers"])
    write(
        plugin_dir,
        "fake_emobench_numbers.py",
        """
        import tests_registry_target as t
        t.reg.add("one", 1)
        t.calls.append(1)
        """,
    )
    target = type(sys)("tests_registry_target")
    target.reg, target.calls = reg, []  # type: ignore[attr-defined]
    sys.modules["tests_registry_target"] = target
    try:
        reg.add("zero", 0)  # registering does not load
        assert "fake_emobench_numbers" not in sys.modules
        assert reg["one"] == 1 and reg.names() == ["one", "zero"]
        assert list(reg) == ["one", "zero"] and target.calls == [1]  # type: ignore[attr-defined]
    finally:
        del sys.modules["tests_registry_target"]


def test_failed_import_is_retried(plugin_dir: Path) -> None:
    reg: Registry[int] = Registry("number", modules=["fake_emobench_missing"])
    with pytest.raises(ModuleNotFoundError):
        reg.names()
    write(plugin_dir, "fake_emobench_missing.py", "x = 1\n")
    assert reg.names() == []  # loaded now


def test_find_modules_without_importing(plugin_dir: Path) -> None:
    write(plugin_dir, "fake_emobench_pkg/__init__.py", "")
    write(plugin_dir, "fake_emobench_pkg/good.py", "@register_thing('a')\ndef f(): ...\n")
    write(plugin_dir, "fake_emobench_pkg/helper.py", "raise RuntimeError('must not be imported')\n")
    write(plugin_dir, "fake_emobench_pkg/sub/__init__.py", "# @register_thing('b')\n")
    write(plugin_dir, "fake_emobench_pkg/_private.py", "# @register_thing('c')\n")
    write(plugin_dir, "fake_emobench_pkg/fam/__init__.py", "")
    write(plugin_dir, "fake_emobench_pkg/fam/adapter.py", "raise RuntimeError('not imported')\n")
    write(plugin_dir, "fake_emobench_pkg/other/__init__.py", "")
    found = find_modules("fake_emobench_pkg", marker="@register_thing(")
    assert found == ["fake_emobench_pkg.good", "fake_emobench_pkg.sub"]
    adapters = find_modules("fake_emobench_pkg", submodule="adapter")
    assert adapters == ["fake_emobench_pkg.fam.adapter"]
    assert not {"fake_emobench_pkg.helper", "fake_emobench_pkg.fam.adapter"} & set(sys.modules)


def test_builtin_datasets_and_models_are_discovered() -> None:
    found = find_modules(
        "emobench.data", marker="@register_dataset(", exclude=["emobench.data.registry"]
    )
    # every dataset module, and only those (helpers such as micro.py are not imported)
    assert {"emobench.data.synth", "emobench.data.casme2", "emobench.data.samm"} <= set(found)
    assert "emobench.data.micro" not in found
    real = ("dfew", "mafw", "ferv39k", "listfile")
    assert {"emobench.data.synth", *(f"emobench.data.{n}" for n in real)} <= set(found)
    assert "emobench.data.loading" not in found  # helpers are not imported
    adapters = find_modules("emobench.models", submodule="adapter")
    assert {"emobench.models.baseline.adapter", "emobench.models.openclip.adapter"} <= set(adapters)
    assert "synth" in data_registry.DATASETS
    assert {"baseline", "openclip"} <= set(model_registry.MODEL_FAMILIES)


def test_discovery_keeps_heavy_imports_out() -> None:
    """Listing datasets and finding model modules imports neither polars nor torch."""
    code = (
        "import sys\n"
        "from emobench.data.registry import list_datasets\n"
        "from emobench.registry import find_modules\n"
        "assert 'synth' in [d.name for d in list_datasets()]\n"
        "find_modules('emobench.models', submodule='adapter')\n"
        "print(sorted(m for m in ('torch', 'polars', 'open_clip') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    """Make a registry load again (plugins too) into a throw-away copy of its entries."""

    def reset(reg: Registry) -> None:
        reg.load()
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_state", "new")

    return reset


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **groups: list[tuple[str, str]]) -> None:
    import importlib.metadata

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [EntryPoint(n, v, group) for n, v in groups.get(group.replace(".", "_"), [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_point_adds_a_model_family(plugin_dir: Path, monkeypatch, fresh) -> None:
    write(
        plugin_dir,
        "fake_emobench_models.py",
        """
        from emobench.models.registry import register_model

        @register_model("echo", "test plugin", arguments=("a", "b"))
        def make(argument, options):
            return ("echo", argument, options)
        """,
    )
    fresh(model_registry.MODEL_FAMILIES)
    fake_entry_points(monkeypatch, emobench_models=[("echo", "fake_emobench_models")])
    assert "fake_emobench_models" not in sys.modules
    assert model_registry.create_model("echo:a", {"k": 1}) == ("echo", "a", {"k": 1})
    assert "echo" in [f.family for f in model_registry.list_families()]
    with pytest.raises(model_registry.UnknownModelError, match="did you mean 'a'"):
        model_registry.check_model_name("echo:aa")
    with pytest.raises(model_registry.UnknownModelError, match="did you mean 'echo'.*'ecko:a'"):
        model_registry.check_model_name("ecko:a")


def test_entry_point_adds_a_dataset(plugin_dir: Path, monkeypatch, fresh) -> None:
    write(
        plugin_dir,
        "fake_emobench_data.py",
        """
        from emobench.data.registry import register_dataset

        def prepare(root, options):
            return None

        @register_dataset("toy", "a plugin dataset", prepare=prepare)
        def load(root, **options):
            return root
        """,
    )
    fresh(data_registry.DATASETS)
    fake_entry_points(monkeypatch, emobench_datasets=[("toy", "fake_emobench_data:load")])
    info = data_registry.get_dataset("toy")
    assert info.description == "a plugin dataset" and info.prepare is not None
    assert info.loader(Path("/x")) == Path("/x")
    assert data_registry.get_dataset("synth").prepare is not None  # built-ins still there
    with pytest.raises(data_registry.UnknownDatasetError, match="did you mean 'toy'"):
        data_registry.get_dataset("tyo")


def test_broken_plugin_is_one_clear_error(monkeypatch, fresh) -> None:
    fresh(data_registry.DATASETS)
    fake_entry_points(monkeypatch, emobench_datasets=[("bad", "fake_emobench_no_such_module")])
    with pytest.raises(PluginError, match="emobench.datasets plugin 'bad'.*failed to load"):
        data_registry.list_datasets()


def test_dataset_registration_and_prepare_default(monkeypatch, fresh) -> None:
    fresh(data_registry.DATASETS)
    monkeypatch.setattr(data_registry.DATASETS, "_state", "loaded")
    data_registry.register_dataset("plain", "no prepare")(lambda root: root)
    assert data_registry.get_dataset("plain").prepare is None
    with pytest.raises(KeyError, match="^unknown dataset 'plian'; did you mean 'plain'"):
        data_registry.get_dataset("plian")


def test_distinct_prior_registration_names() -> None:
    from emobench.longtail.prior import PRIOR_CORRECTIONS, register_prior_correction
    from emobench.report.priors import list_priors, register_reference_prior

    assert callable(register_prior_correction) and callable(register_reference_prior)
    assert {"none", "estimated-prior", "em-test-prior"} <= set(PRIOR_CORRECTIONS)
    assert {"train_freq", "web_word_freq"} <= set(list_priors())


def test_prior_module_does_not_import_its_plugins() -> None:
    """No import loop: prior.py imports no correction module; the registry finds them."""
    code = (
        "import sys\n"
        "import emobench.longtail.prior as p\n"
        "print('emobench.longtail.prior_estimated' in sys.modules)\n"
        "print(list(p.PRIOR_CORRECTIONS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = out.stdout.strip().splitlines()
    assert loaded == "False"
    assert names == str(
        [
            "none",
            "logit-adjust",
            "batch-calibration",
            "estimated-prior",
            "em-test-prior",
            "calibrated-em",
        ]
    )
