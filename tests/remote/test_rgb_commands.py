"""classify, evaluate and leakage read RGB pictures: a multispectral run's model (an image tower of N
bands) is refused in one line, before torch in the CLI and in the library, instead of a conv traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.remote import synthetic
from clipsuite.remote.evaluate import evaluate_captions, find_leakage, zero_shot_classify
from clipsuite.remote_app.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def four_band(tmp_path_factory):
    clip = load_model("tiny-multilingual", device="cpu")
    clip.adapt_input_bands(4)
    return clip.save(tmp_path_factory.mktemp("ms") / "model")


def test_rgb_commands_refuse_a_multispectral_model(four_band, captions, tmp_path):
    folders = synthetic.write_class_folders(tmp_path / "classes", per_class=2, size=32)
    caps, _ = captions
    classes = sorted(p for p in folders.iterdir() if p.is_dir())
    for argv in (["classify", str(folders)], ["evaluate", str(caps)],
                 ["leakage", str(classes[0]), str(classes[1])]):
        out = tmp_path / f"{argv[0]}.json"
        result = runner.invoke(app, [*argv, "--model", str(four_band), "-o", str(out)])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "takes 4 bands (trained on multispectral rasters)" in text and "reads RGB images" in text, text
        assert "Traceback" not in text and not out.exists()
    clip = load_model(str(four_band), device="cpu")
    for call in (lambda: zero_shot_classify(clip, folders), lambda: evaluate_captions(clip, caps),
                 lambda: find_leakage([classes[0] / "x.png"], [classes[1] / "y.png"], clip)):
        with pytest.raises(InputError, match="takes 4 bands"):
            call()
