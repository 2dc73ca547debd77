"""`clipsuite demo` and its plug-in point: a domain step (here from a package built in the test) returns a
``DemoStepResult`` whose paths come back relative to its folder; anything else is refused by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipsuite.cli import demo
from clipsuite.cli.main import app
from clipsuite.core import plugins
from clipsuite.core.plugins import DemoStepResult, PluginError

STEPS = '''
from clipsuite.core.plugins import DemoStepResult


def good(folder, log):
    (folder / "pics").mkdir()
    (folder / "pics" / "map.png").write_bytes(b"not really a png")
    (folder / "page.html").write_text("<p>hello</p>")
    log("wrote a page")
    return DemoStepResult("Third party <demo>", ["found 3 < 4 things"], {"auroc": 0.912345},
                          files={"page": folder / "page.html"}, pictures={"map": folder / "pics" / "map.png"})


def legacy(folder, log):
    return {"report": "index.html"}
'''


@pytest.fixture
def steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    info = site / "clipsuite_thirdparty_steps-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clipsuite-thirdparty-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[clipsuite.demo_steps]\nzz-good = clipsuite_thirdparty_steps:good\n"
                                           "zz-legacy = clipsuite_thirdparty_steps:legacy\n")
    (site / "clipsuite_thirdparty_steps.py").write_text(STEPS)
    monkeypatch.syspath_prepend(str(site))
    plugins.clear_cache()
    yield
    plugins.clear_cache()
    sys.modules.pop("clipsuite_thirdparty_steps", None)


def test_a_step_result_comes_back_relative_and_renders_in_the_report(steps: None, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"anomaly", "medical", "zz-good", "zz-legacy"} <= set(demo.DEMO_STEPS.names())
    logged: list[str] = []
    monkeypatch.setattr(demo, "_log", logged.append)
    result = demo.run_step("zz-good", tmp_path / "out")
    assert logged == ["[zz-good] wrote a page"]
    assert result == DemoStepResult("Third party <demo>", ["found 3 < 4 things"], {"auroc": 0.912345},
                                    files={"page": Path("page.html")}, pictures={"map": Path("pics/map.png")})
    section = demo._domain_section(tmp_path / "out", "zz-good", result.to_dict() | {"seconds": 1.5})
    assert "<h2>Third party &lt;demo&gt;</h2>" in section and "<li>found 3 &lt; 4 things</li>" in section
    assert '<a href="zz-good/page.html">page</a>' in section and "<img src='zz-good/pics/map.png' alt='map'>" in section
    assert "<td>auroc</td><td>0.9123</td>" in section


def test_a_relative_demo_folder_gives_the_step_paths_it_can_hand_back(steps: None, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo stages under a relative name; a step joining files onto its folder must still resolve
    # (CI once failed on 'stage/brain/stage/brain/...was not written').
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "_log", lambda message: None)
    result = demo.run_step("zz-good", Path(".stage"))
    assert result.files == {"page": Path("page.html")} and result.pictures == {"map": Path("pics/map.png")}


def test_a_step_returning_something_else_is_refused_by_name(steps: None, tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"demo step 'zz-legacy = clipsuite_thirdparty_steps:legacy' \(group "
                                          r"clipsuite.demo_steps, package clipsuite-thirdparty-steps\) returned dict, "
                                          "not a clipsuite.core.plugins.DemoStepResult"):
        demo.run_step("zz-legacy", tmp_path)


def test_the_demo_command_prints_the_real_report_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(top1: float):  # type: ignore[no-untyped-def]
        def run(settings: demo.DemoSettings) -> dict[str, object]:
            settings.output.mkdir(parents=True, exist_ok=True)
            return {"zero_shot": {"top1": top1, "chance_top1": 0.1}, "seconds": 1.0}
        return run

    monkeypatch.chdir(tmp_path)
    report = (tmp_path / "out" / "index.html").resolve()
    monkeypatch.setattr(demo, "run_demo", fake_run(0.2))
    failed = CliRunner().invoke(app, ["demo", "--output", "out"])
    assert failed.exit_code == 2 and f"training did not learn (report kept at {report})" in failed.output
    monkeypatch.setattr(demo, "run_demo", fake_run(0.9))
    done = CliRunner().invoke(app, ["demo", "--output", "out"])
    assert done.exit_code == 0 and f"report at {report}" in done.output
