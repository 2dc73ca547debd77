"""The generative step of ``clipsuite demo`` runs and returns a valid DemoStepResult."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipsuite.core.plugins import DemoStepResult
from clipsuite.generative.data import VitonHD, to_tensor
from clipsuite.generative.evaluate import ssim, unit


def test_demo_step(tmp_path: Path) -> None:
    from clipsuite.generative_app.demo import SIZE, run_demo_step

    lines: list[str] = []
    result = run_demo_step(tmp_path, lines.append, warp_steps=4, ddim_steps=3)
    assert isinstance(result, DemoStepResult)
    checked = result.relative_to(tmp_path)  # every file and picture written inside the step folder
    assert checked.files == {"try-on grid": Path("tryon.html")}
    assert (tmp_path / "warping.safetensors").is_file()
    assert len(lines) == 5 and "warper trained 4 steps" in result.summary[0]
    # the untrained parts are said plainly, in the summary, the log and the page
    assert "UNTRAINED" in result.summary[0] and "noise" in result.summary[0]
    assert all("UNTRAINED" in line for line in lines if line.startswith("try-on"))

    test = VitonHD(tmp_path / "data", "test", size=SIZE)
    page = (tmp_path / "tryon.html").read_text()
    assert "UNTRAINED" in page and "not try-on quality" in page
    scores = []
    for index, files in enumerate(test.files):
        person = np.asarray(Image.open(tmp_path / "pictures" / f"{files.name}_person.png"))
        output = np.asarray(Image.open(tmp_path / "pictures" / f"{files.name}_result.png"))
        assert f"pictures/{files.name}_result.png" in page
        outside = test[index]["mask"][0].numpy() == 0
        assert outside.any() and np.array_equal(output[outside], person[outside])  # only the garment region painted
        assert not np.array_equal(output[~outside], person[~outside])
        scores.append(ssim(unit(to_tensor(Image.fromarray(output))[None]),
                           unit(to_tensor(Image.fromarray(person))[None])).value)
    assert checked.pictures == {"try-on result": Path("pictures") / f"{test.files[0].name}_result.png"}
    # the reported SSIM is the saved pictures' (up to 8-bit rounding)
    assert abs(result.metrics["ssim"] - float(torch.tensor(scores).mean())) < 0.01
