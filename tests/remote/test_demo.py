"""The remote demo step trains before it indexes (shortened here to 2 steps): the index is built with the
trained folder, the page and GeoJSON lie inside the step's folder, and the summary says what was trained
and how many top hits land on the queried kind."""

from __future__ import annotations

import json

from clipsuite.remote_app import demo


def test_demo_step_trains_then_indexes_with_the_trained_model(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STEPS", 2)
    lines: list[str] = []
    result = demo.run_demo_step(tmp_path, lines.append)
    assert lines[0].startswith("training tiny-multilingual for 2 steps")
    assert (tmp_path / "model" / "open_clip_config.json").is_file()
    index = json.loads((tmp_path / "index" / "index.json").read_text())
    assert str(tmp_path / "model") in json.dumps(index)  # searched with the trained model, not the preset
    assert result.summary[0].startswith("tiny-multilingual trained 2 steps")
    assert "held-out mean recall" in result.summary[0]
    assert result.metrics["tiles"] == 16 and 0 <= result.metrics["held_out_mean_recall"] <= 100
    assert {k for k in result.metrics if k.startswith("hits_on_")} == {"hits_on_solar_farm", "hits_on_forest",
                                                                        "hits_on_river"}
    for path in [*result.files.values(), *result.pictures.values()]:
        assert not path.is_absolute() and (tmp_path / path).is_file()
    geojson = json.loads((tmp_path / result.files["hits (GeoJSON)"]).read_text())
    assert len(geojson["features"]) == 3 * demo.TOP
