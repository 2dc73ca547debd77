"""`clipsuite adapt train|evaluate|methods` through the real CLI entry point (untrained tiny model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.cli.main import app
from clipsuite.core.synthetic import write_shapes_split

runner = CliRunner()
torch.set_num_threads(1)
QUICK = ["--epochs", "1", "--batch-size", "8", "--views", "1", "--device", "cpu", "--shots", "2"]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_split(tmp_path_factory.mktemp("adapt-cli"), {"train": 3, "val": 1, "test": 2}, seed=1)


def test_train_coop_prints_the_table_writes_csv_and_adapter(split: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["adapt", "train", "--method", "coop", "--split", str(split), "--output", str(out),
                                 *QUICK])
    assert result.exit_code == 0, result.output
    for column in ("method", "shots", "seed", "accuracy"):
        assert column in result.output
    rows = list(csv.DictReader(Path(out / "results.csv").read_text().splitlines()))
    assert [(r["method"], r["shots"], r["seed"]) for r in rows] == [("coop", "2", "1")]
    adapter = out / "coop-2shot-seed1.safetensors"
    assert adapter.is_file()
    evaluated = runner.invoke(app, ["adapt", "evaluate", str(adapter), "--split", str(split), "--device", "cpu",
                                    "--csv", str(tmp_path / "eval.csv")])
    assert evaluated.exit_code == 0, evaluated.output
    again = list(csv.DictReader(Path(tmp_path / "eval.csv").read_text().splitlines()))
    assert again[0]["accuracy"] == rows[0]["accuracy"] and again[0]["method"] == "coop"


def test_methods_all_gives_one_row_per_method(split: Path, tmp_path: Path) -> None:
    descriptions = tmp_path / "cupl.json"
    names = json.loads(split.read_text())["train"]
    descriptions.write_text(json.dumps({n[2]: [f"a picture of a {n[2]}.", f"a {n[2]} shape."] for n in names}))
    result = runner.invoke(app, ["adapt", "train", "--methods", "all", "--split", str(split), "--output",
                                 str(tmp_path / "all"), "--descriptions", str(descriptions), *QUICK])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(Path(tmp_path / "all" / "results.csv").read_text().splitlines()))
    from clipsuite.core.adapt import installed_methods

    assert [r["method"] for r in rows] == list(installed_methods())
    assert all(0.0 <= float(r["accuracy"]) <= 100.0 for r in rows)
    seeds = runner.invoke(app, ["adapt", "train", "--methods", "zeroshot,gda", "--seeds", "1,2", "--split", str(split),
                                "--output", str(tmp_path / "seeds"), *QUICK])
    assert seeds.exit_code == 0, seeds.output
    assert "mean over seeds" in seeds.output
    rows = list(csv.DictReader(Path(tmp_path / "seeds" / "results.csv").read_text().splitlines()))
    assert [(r["method"], r["seed"]) for r in rows] == [("zeroshot", "1"), ("gda", "1"), ("zeroshot", "2"),
                                                        ("gda", "2")]
    listed = runner.invoke(app, ["adapt", "methods"])
    assert listed.exit_code == 0 and "tip-adapter-f" in listed.output


def test_bad_inputs_give_one_line_and_no_output(split: Path, tmp_path: Path) -> None:
    broken = split.parent / "broken.json"
    data = json.loads(split.read_text())
    data["train"][0][1] = 99
    broken.write_text(json.dumps(data))
    long_name = " ".join(["red"] * 40)
    renamed = json.loads(split.read_text())
    for part in renamed.values():
        for entry in part:
            if entry[1] == 0:
                entry[2] = long_name
    too_long = split.parent / "long-names.json"
    too_long.write_text(json.dumps(renamed))
    cases = [
        (["--split", str(too_long), "--method", "coop"], "class 'red red red"),
        (["--split", str(broken)], "train[0]"),
        (["--split", str(split), "--shots", "5"], "fewer than the 5 shots"),
        (["--split", str(tmp_path / "missing.json")], "missing.json: file not found"),
        (["--split", str(split), "--method", "nope"], "unknown method 'nope'"),
        (["--split", str(split), "--method", "cupl"], "needs a descriptions JSON"),
    ]
    for args, message in cases:
        out = tmp_path / "never"
        result = runner.invoke(app, ["adapt", "train", *QUICK, *args, "--output", str(out)])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert not (out / "results.csv").exists()
    result = runner.invoke(app, ["adapt", "evaluate", str(tmp_path / "none.safetensors"), "--split", str(split)])
    assert result.exit_code == 2 and "none.safetensors: adapter file not found" in result.output
