"""--scale must be a positive number: 0 indexed every tile as black, -1 inverted the pictures under the
stretch (both silently), NaN failed late naming no flag. Refused in one line before anything runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipsuite.core.errors import InputError
from clipsuite.remote.data import RasterInput
from clipsuite.remote.rasters import Scaling
from clipsuite.remote.scenes import SceneIndexConfig
from clipsuite.remote_app.main import app

runner = CliRunner()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_index_and_train_refuse_a_scale_that_is_not_positive(scene, tmp_path, value):
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(scene.path), "-o", str(out), "--scale", value, "--workers", "0"])
    assert result.exit_code == 2, result.output
    assert "--scale" in result.output and "must be a positive number" in result.output
    assert not out.exists() and not out.with_name("idx.shards").exists()
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(scene.path.parent), "-o", str(run), "--scale", value, "-q"])
    assert result.exit_code == 2 and "must be a positive number" in result.output, result.output
    assert not run.exists()
    for build in (lambda: Scaling(float(value)), lambda: SceneIndexConfig(scale=float(value)),
                  lambda: RasterInput(scale=float(value))):
        with pytest.raises(InputError, match="must be a positive number"):
            build()


def test_a_positive_scale_still_indexes(scene, tmp_path):
    result = runner.invoke(app, ["index", str(scene.path), "-o", str(tmp_path / "idx"), "--scale", "2e-4",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
