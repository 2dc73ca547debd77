"""Plug-in points: a third-party package built in the test adds a preset, an adaptation method and an
anomaly method by declaring entry points; unknown names, broken plug-ins and clashes give one line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipsuite.core import plugins
from clipsuite.core.errors import InputError
from clipsuite.core.plugins import PluginError, Registry

torch.set_num_threads(1)

MODULE = "clipsuite_thirdparty_demo"
PLUGIN_CODE = '''
import torch
import torch.nn.functional as F

from clipsuite.anomaly.methods.base import AnomalyResult
from clipsuite.core.adapt.heads import LinearHead
from clipsuite.core.adapt.registry import Method
from clipsuite.core.presets import Preset

SMALL_TINY = Preset("thirdparty-tiny", "tiny", None, "offline", "a third-party package", "tiny under another name")
WRONG_NAME = Preset("not-my-entry-name", "tiny", None, "offline", "a third-party package")
NOT_A_PRESET = {"name": "dict-preset"}


def fit_class_means(data, options):
    """Nearest class mean of the K-shot features (no training)."""
    train = data.features("train")
    means = torch.stack([train.features[0][train.labels == c].mean(0) for c in range(data.n_classes)])
    return LinearHead(F.normalize(means, dim=-1), None, data.scale)


CLASS_MEANS = Method("class-means", "training-free", fit_class_means)


class MeanIntensity:
    """Score = mean preprocessed pixel value; map = channel mean (a method whose output is easy to check)."""

    name = "mean-intensity"
    references = "unused"
    trained = False

    @classmethod
    def build(cls, clip, setup):
        return cls()

    def predict(self, pixels):
        return AnomalyResult(pixels.mean(dim=(1, 2, 3)), pixels.mean(dim=1))
'''


def write_package(root: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    """A distribution as an installer leaves it: ``<name>.dist-info`` (METADATA, entry_points.txt) + modules."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, code in (modules or {}).items():
        (root / f"{module}.py").write_text(code)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path``; the registries forget what they read before and after the test."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    plugins.clear_cache()
    yield root
    plugins.clear_cache()
    for module in [m for m in sys.modules if m.startswith("clipsuite_thirdparty")]:
        del sys.modules[module]


@pytest.fixture
def thirdparty(site: Path) -> Path:
    write_package(site, "clipsuite-thirdparty", f"""
        [clipsuite.presets]
        thirdparty-tiny = {MODULE}:SMALL_TINY

        [clipsuite.adapt_methods]
        class-means = {MODULE}:CLASS_MEANS

        [clipsuite.anomaly_methods]
        mean-intensity = {MODULE}:MeanIntensity
        """, {MODULE: PLUGIN_CODE})
    return site


def test_a_third_party_preset_resolves_like_a_builtin_one(thirdparty: Path) -> None:
    from clipsuite.core.model_specs import resolve_spec
    from clipsuite.core.presets import find_preset, preset_names, presets

    found = find_preset("ThirdParty-Tiny")  # preset names are looked up in any case
    assert found is not None and found.source == "a third-party package"
    names = preset_names()
    assert names[:3] == ["small", "tiny", "tiny-hf"]  # the core's own come first
    assert "thirdparty-tiny" in names and names.index("thirdparty-tiny") > names.index("xlm-roberta-b32")
    assert list(presets()) == names
    source = resolve_spec("thirdparty-tiny")
    assert (source.kind, source.name) == ("config", "tiny")


def test_the_registry_forgets_a_package_once_it_is_gone(thirdparty: Path) -> None:
    from clipsuite.core.presets import find_preset

    assert find_preset("thirdparty-tiny") is not None
    sys.path.remove(str(thirdparty))  # monkeypatch restores the whole sys.path afterwards
    assert find_preset("thirdparty-tiny") is not None  # cached until told
    plugins.clear_cache()
    assert find_preset("thirdparty-tiny") is None


def test_a_third_party_adaptation_method_trains_and_scores_through_the_runner(thirdparty: Path,
                                                                              tmp_path: Path) -> None:
    import torch.nn.functional as F

    from clipsuite.core.adapt import installed_methods, load_split, prepare, resolve_methods, train_one
    from clipsuite.core.models import load_model
    from clipsuite.core.synthetic import write_shapes_split

    assert "class-means" in resolve_methods("all") and installed_methods()["class-means"].kind == "training-free"
    split = load_split(write_shapes_split(tmp_path / "split", {"train": 3, "val": 1, "test": 3}, seed=2))
    torch.manual_seed(0)
    data = prepare(load_model("tiny", device="cpu"), split, shots=3, seed=1, views=1)
    _, row = train_one("class-means", data)
    train, test = data.features("train"), data.features("test")
    means = torch.stack([train.features[0][train.labels == c].mean(0) for c in range(data.n_classes)])
    predicted = (test.features[0] @ F.normalize(means, dim=-1).T).argmax(-1)
    assert row.method == "class-means"
    assert row.accuracy == pytest.approx(100.0 * float((predicted == test.labels).float().mean()))


def test_a_third_party_anomaly_method_runs_in_the_detector(thirdparty: Path, tmp_path: Path) -> None:
    from clipsuite.anomaly.data import load_pixels
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.core.models import load_model

    paths = []
    for i, value in enumerate((0, 128, 255)):
        paths.append(tmp_path / f"img{i}.png")
        Image.new("RGB", (48, 40), (value, value // 2, 30)).save(paths[-1])
    clip = load_model("tiny", device="cpu")
    detector = Detector.create(clip, "mean-intensity")
    result, sizes = detector.predict_paths(paths)
    pixels, _ = load_pixels(paths, clip.image_size, clip.preprocess_cfg.mean, clip.preprocess_cfg.std)
    torch.testing.assert_close(result.scores, pixels.mean(dim=(1, 2, 3)))
    assert sizes == [(40, 48)] * 3 and result.scores[0] < result.scores[1] < result.scores[2]
    with pytest.raises(InputError, match="'mean-intensity' does not use reference images"):
        detector.fit_references(paths)
    with pytest.raises(InputError, match="'mean-intensity' is not trained"):
        Detector.create(clip, "mean-intensity", weights=tmp_path / "w.safetensors")


def test_unknown_names_list_what_is_installed(thirdparty: Path) -> None:
    from clipsuite.anomaly.methods.base import method_class
    from clipsuite.core.adapt import find_method

    with pytest.raises(InputError, match=r"unknown anomaly method 'nope' \(installed: .*mean-intensity.*\)") as error:
        method_class("nope")
    assert "winclip" in str(error.value) and "patch_memory" in str(error.value)
    with pytest.raises(InputError, match=r"unknown adaptation method 'nope' \(installed: clap, .*class-means\)"):
        find_method("nope")


def test_a_broken_plug_in_names_its_entry_point_and_the_failure(site: Path) -> None:
    write_package(site, "clipsuite-thirdparty-broken", """
        [clipsuite.presets]
        broken-import = clipsuite_thirdparty_broken:ANY
        missing-attr = clipsuite_thirdparty_ok:NOTHING
        dict-preset = clipsuite_thirdparty_ok:NOT_A_PRESET
        wrong-name = clipsuite_thirdparty_ok:WRONG_NAME
        """, {"clipsuite_thirdparty_broken": "import a_module_that_is_not_installed\n",
              "clipsuite_thirdparty_ok": PLUGIN_CODE})
    from clipsuite.core.presets import find_preset

    cases = {
        "broken-import": "preset 'broken-import = clipsuite_thirdparty_broken:ANY' (group clipsuite.presets, "
                         "package clipsuite-thirdparty-broken) failed to load: ModuleNotFoundError: No module named "
                         "'a_module_that_is_not_installed'",
        "missing-attr": "failed to load: AttributeError",
        "dict-preset": "is dict {'name': 'dict-preset'}, not a clipsuite.core.presets.Preset",
        "wrong-name": "calls itself 'not-my-entry-name'; the entry point and the object must use the same name",
    }
    for name, message in cases.items():
        with pytest.raises(PluginError) as error:
            find_preset(name)
        assert message in str(error.value) and "\n" not in str(error.value)
    assert find_preset("tiny") is not None  # one broken plug-in does not hide the others


def test_two_packages_declaring_one_name_is_an_error(site: Path) -> None:
    write_package(site, "clipsuite-thirdparty-a", "[clipsuite.presets]\nclash = clipsuite_thirdparty_a:P\n")
    write_package(site, "clipsuite-thirdparty-b", "[clipsuite.presets]\nclash = clipsuite_thirdparty_b:P\n")
    registry: Registry[object] = Registry("clipsuite.presets", "preset")
    with pytest.raises(PluginError, match="preset 'clash' is declared twice: .*clipsuite-thirdparty-a.*"
                                          "clipsuite-thirdparty-b.*uninstall one"):
        registry.names()


def test_demo_step_paths_become_relative_and_must_exist_inside_the_step_folder(tmp_path: Path) -> None:
    from clipsuite.core.plugins import DemoStepResult

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"png")
    (tmp_path / "page.html").write_text("<p>")
    result = DemoStepResult("t", ["one line"], {"auc": 0.5}, files={"page": tmp_path / "page.html"},
                            pictures={"a": Path("sub/a.png")}).relative_to(tmp_path)
    assert result.files == {"page": Path("page.html")} and result.pictures == {"a": Path("sub/a.png")}
    assert result.to_dict() == {"title": "t", "summary": ["one line"], "metrics": {"auc": 0.5},
                                "files": {"page": "page.html"}, "pictures": {"a": "sub/a.png"}}
    with pytest.raises(PluginError, match="outside the step's folder"):
        DemoStepResult("t", files={"x": tmp_path.parent / "x.txt"}).relative_to(tmp_path)
    with pytest.raises(PluginError, match="outside the step's folder"):
        DemoStepResult("t", files={"x": Path("../x.txt")}).relative_to(tmp_path)
    with pytest.raises(PluginError, match="missing.png was not written"):
        DemoStepResult("t", pictures={"m": Path("missing.png")}).relative_to(tmp_path)
    with pytest.raises(PluginError, match="metric 'auc' is None, not a number"):
        DemoStepResult("t", metrics={"auc": None}).relative_to(tmp_path)  # type: ignore[dict-item]  # the point
