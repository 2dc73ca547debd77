"""`clipsuite embed` and `clipsuite index build|search` through the real CLI entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipsuite.cli.main import app
from clipsuite.core.synthetic import write_shapes_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=16, seed=3)


@pytest.fixture(scope="module")
def index_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    result = runner.invoke(app, ["embed", str(dataset), "--output", str(root / "emb"), "--model", "tiny",
                                 "--batch-size", "8", "--workers", "0", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "embedded 16 images" in result.output
    result = runner.invoke(app, ["index", "build", str(root / "emb"), "--output", str(root / "ix")])
    assert result.exit_code == 0, result.output
    assert "indexed 16 vectors (64-d, exact)" in result.output
    return root / "ix"


def test_search_by_image_finds_itself(index_dir: Path, dataset: Path, tmp_path: Path) -> None:
    query = dataset.parent / "images" / "captions-00005.png"
    out = tmp_path / "hits.json"
    result = runner.invoke(app, ["index", "search", str(index_dir), "--image", str(query), "--k", "3",
                                 "--device", "cpu", "--output", str(out)])
    assert result.exit_code == 0, result.output
    hits = json.loads(out.read_text())
    assert len(hits) == 3 and hits[0]["rank"] == 1
    assert hits[0]["path"].endswith("captions-00005.png") and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["title"]  # CSV fields are carried into the results


def test_search_by_text_writes_csv(index_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.csv"
    result = runner.invoke(app, ["index", "search", str(index_dir), "--text", "a red circle", "--text", "a square",
                                 "--k", "4", "--device", "cpu", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 8 and {r["query_text"] for r in rows} == {"a red circle", "a square"}
    assert all(float(rows[i]["score"]) >= float(rows[i + 1]["score"]) for i in range(3))


def test_approximate_index_from_cli(index_dir: Path, tmp_path: Path) -> None:
    emb = index_dir.parent / "emb"
    result = runner.invoke(app, ["index", "build", str(emb), "--output", str(tmp_path / "h"), "--kind", "hnsw"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "h" / "index.json").read_text())["kind"] == "hnsw"
    result = runner.invoke(app, ["index", "search", str(tmp_path / "h"), "--text", "a blue square", "--k", "2",
                                 "--device", "cpu"])
    assert result.exit_code == 0 and "a blue square" in result.output
    result = runner.invoke(app, ["index", "build", str(emb), "--output", str(tmp_path / "v"), "--kind", "ivf",
                                 "--nlist", "100"])
    assert result.exit_code == 2 and "cannot train" in result.output  # 16 vectors are too few for 100 cells
    assert not (tmp_path / "v").exists()


def _fails(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.startswith("error")]) == 1


def test_embed_errors(tmp_path: Path, dataset: Path) -> None:
    (tmp_path / "empty").mkdir()
    _fails(["embed", str(tmp_path / "empty"), "-o", str(tmp_path / "out")], "no images found")
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"garbage")
    _fails(["embed", str(bad), "-o", str(tmp_path / "out"), "--workers", "0", "--no-progress"],
           "none of the 1 images could be decoded")
    _fails(["embed", str(bad), "-o", str(tmp_path / "out"), "--workers", "0", "--on-error", "fail",
            "--no-progress"], "x.jpg: not a readable image")
    assert not (tmp_path / "out").exists()
    _fails(["embed", str(dataset), "-o", str(tmp_path / "out"), "--model", "no-such-model"], "no-such-model")
    _fails(["embed", str(dataset), "-o", str(tmp_path / "out"), "--path-column", "nope"], "no column 'nope'")


def test_search_errors(index_dir: Path, tmp_path: Path) -> None:
    _fails(["index", "search", str(index_dir), "--text", "x", "--model", "small", "--device", "cpu"],
           "model 'small' embeds in 128 dimensions but the index")
    _fails(["index", "search", str(index_dir)], "give at least one --text or --image")
    _fails(["index", "search", str(tmp_path / "nowhere"), "--text", "x"], "nowhere: folder not found (index folder)")
    _fails(["index", "search", str(index_dir), "--image", str(tmp_path / "missing.png")], "missing.png")
    _fails(["index", "search", str(index_dir), "--text", "x", "-o", str(tmp_path / "r.xml")],
           "--output must end in .json, .csv or .tsv")
    _fails(["index", "build", str(tmp_path), "--output", str(tmp_path / "ix")], "no embedding shards")
    _fails(["index", "build", str(index_dir.parent / "emb"), "-o", str(tmp_path / "ix"), "--kind", "lsh"],
           "unknown index kind")
