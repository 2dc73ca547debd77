"""A run on random weights says so: once on the console (through the clipsuite logger) and on its pages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clipsuite.core.html_report import figure, page, table
from clipsuite.core.models import load_model
from clipsuite.core.notices import clear_notes, note_random_weights, run_notes


@pytest.fixture(autouse=True)
def fresh_notes() -> None:
    clear_notes()


def test_builtin_config_is_random_and_a_saved_model_is_not(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clipsuite"):
        tiny = load_model("tiny", device="cpu")
        load_model("tiny", device="cpu")  # the same model again: said once
    assert tiny.random_weights
    said = [r.getMessage() for r in caplog.records if "random weights" in r.getMessage()]
    assert said == ["tiny has random weights (a built-in config; no trained weights were loaded): without "
                    "training, its results are at chance"]
    assert run_notes() == said
    tiny.save(tmp_path / "saved")
    clear_notes()
    assert not load_model(str(tmp_path / "saved"), device="cpu").random_weights
    assert run_notes() == []


def test_every_page_shows_the_runs_notes_and_escapes_text() -> None:
    note_random_weights("micro diffusion parts")
    html = page("a <title>", [table(["name", "score"], [["<b>", 0.5]])])
    assert "<p class='note'>micro diffusion parts has random weights" in html
    assert "<h1>a &lt;title&gt;</h1>" in html and "<td>&lt;b&gt;</td>" in html
    assert "note" not in page("quiet", [], notes=[]).split("<body>")[1]


def test_a_small_picture_is_shown_enlarged_and_its_size_said() -> None:
    small = figure("maps/a.png", "a", (64, 48))
    assert "width:256px;image-rendering:pixelated" in small and "a (64x48 px, shown enlarged)" in small
    assert "pixelated" not in figure("maps/b.png", "b", (512, 512))


def test_a_command_on_tiny_says_it_once_in_one_line(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from clipsuite.cli.main import app

    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    result = CliRunner().invoke(app, ["zeroshot", str(tmp_path), "--classes", "a,b", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "random weights" in line]
    assert len(lines) == 1 and lines[0].startswith("note: tiny has random weights"), result.output


def test_our_warnings_become_one_note_line_without_a_source_line(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from clipsuite.cli.common import cli_errors
    from clipsuite.remote.rasters import NoCRSWarning

    @cli_errors
    def command() -> None:  # every command is wrapped so; the wrapper installs the routing as it starts
        for _ in range(2):
            warnings.showwarning(NoCRSWarning("scene.tif: raster has no CRS"), NoCRSWarning, "rasters.py", 280)

    monkeypatch.setattr(warnings, "showwarning", warnings._showwarning_orig)  # type: ignore[attr-defined]  # as pytest leaves it
    command()
    err = capsys.readouterr()
    said = (err.out + err.err).splitlines()
    assert [line for line in said if "no CRS" in line] == ["note: scene.tif: raster has no CRS"]
    assert "rasters.py" not in err.out + err.err
