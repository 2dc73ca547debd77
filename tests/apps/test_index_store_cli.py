"""`clipsuite index build|search|add` on the format-2 store through the CLI: budget, tuning, filters,
add, and bad input as one line with exit 2 and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipsuite.cli.main import app
from clipsuite.core.embed import ShardWriter, shard_name

runner = CliRunner()


def _shards(folder: Path, vectors: np.ndarray, model: str = "tiny", start: int = 0, shards: int = 2) -> Path:
    """An embedding folder as `clipsuite embed` writes it (float16 shards + JSONL), from given vectors."""
    folder.mkdir(parents=True)
    bounds = np.linspace(0, len(vectors), shards + 1).astype(int)
    for number in range(shards):
        lo, hi = bounds[number], bounds[number + 1]
        writer = ShardWriter(folder / f"{shard_name(number, shards)}.safetensors", vectors.shape[1], "float16")
        writer.write(vectors[lo:hi])
        rows = [{"id": start + i, "path": f"img{start + i}.png", "split": "val" if (start + i) % 10 == 0 else "train",
                 "year": 2000 + (start + i) % 20} for i in range(lo, hi)]
        (folder / f"{shard_name(number, shards)}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        writer.close({"model": model, "dim": vectors.shape[1], "count": int(hi - lo), "dtype": "float16"})
    return folder


def _vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, dim))[rng.integers(0, 40, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fails(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.startswith("error")]) == 1


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    emb = _shards(root / "emb", _vectors(12_000))
    np.save(root / "tune.npy", _vectors(60, seed=9) + 0.3)  # queries shifted off the data, like texts
    result = runner.invoke(app, ["index", "build", str(emb), "-o", str(root / "ix"), "--max-memory", "1G",
                                 "--tune-queries", str(root / "tune.npy"), "--target-recall", "0.9"])
    assert result.exit_code == 0, result.output
    assert "indexed 12000 vectors (64-d, ivf, IVF" in result.output and "tuned on 60 queries" in result.output
    return root


def test_budget_and_tuning_are_recorded(built: Path) -> None:
    config = json.loads((built / "ix" / "index.json").read_text())
    assert config["format_version"] == 2 and config["kind"] == "ivf" and config["max_memory"] == 2**30
    assert config["tuning"]["recall"] >= 0.9 and config["nprobe"] == config["tuning"]["nprobe"]
    assert config["model"] == "tiny" and (built / "ix" / "lists.ivfdata").is_file()


def test_filtered_text_search(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.json"
    result = runner.invoke(app, ["index", "search", str(built / "ix"), "--text", "a red circle", "--text", "a square",
                                 "--where", "split = 'val' AND year >= 2010", "--k", "7", "--device", "cpu",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    hits = json.loads(out.read_text())
    assert len(hits) == 14 and {h["query_text"] for h in hits} == {"a red circle", "a square"}
    assert all(h["split"] == "val" and h["year"] >= 2010 for h in hits)


def test_add_then_search(built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    result = runner.invoke(app, ["index", "build", str(built / "emb"), "-o", str(folder), "--kind", "ivf",
                                 "--nlist", "64"])
    assert result.exit_code == 0, result.output
    more = _shards(tmp_path / "more", _vectors(500, seed=3), start=12_000, shards=1)
    result = runner.invoke(app, ["index", "add", str(folder), str(more)])
    assert result.exit_code == 0, result.output
    assert "added 500 vectors" in result.output and "(now 12500)" in result.output
    out = tmp_path / "hits.json"
    result = runner.invoke(app, ["index", "search", str(folder), "--text", "x", "--where", "id >= 12000",
                                 "--k", "3", "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert all(h["id"] >= 12_000 for h in json.loads(out.read_text()))
    _fails(["index", "add", str(folder), str(_shards(tmp_path / "d32", _vectors(20, dim=32), shards=1))],
           "32-dimensional embeddings")
    _fails(["index", "add", str(folder), str(_shards(tmp_path / "other", _vectors(20), model="small", shards=1))],
           "embedded with 'small'")
    assert json.loads((folder / "index.json").read_text())["count"] == 12_500  # the refusals changed nothing


def test_bad_input_is_one_line(built: Path, tmp_path: Path) -> None:
    ix = str(built / "ix")
    _fails(["index", "search", ix, "--text", "x", "--where", "nope = 1"], 'column "nope" not found')
    _fails(["index", "search", ix, "--text", "x", "--where", "split = = 'val'"], "Parser Error")
    _fails(["index", "build", str(built / "emb"), "-o", str(tmp_path / "small"), "--max-memory", "1K"],
           "the smallest that works is")
    _fails(["index", "build", str(built / "emb"), "-o", str(tmp_path / "small"), "--max-memory", "lots"],
           "not a size")
    assert not (tmp_path / "small").exists()
    future = tmp_path / "future"
    future.mkdir()
    (future / "index.json").write_text(json.dumps({"format_version": 9, "kind": "ivf", "dim": 64}))
    _fails(["index", "search", str(future), "--text", "x"], "index format 9 from another clipsuite version")
    mixed = tmp_path / "mixed"
    _shards(mixed, _vectors(20), shards=2)
    (mixed / f"{shard_name(1, 2)}.safetensors").unlink()
    writer = ShardWriter(mixed / f"{shard_name(1, 2)}.safetensors", 32, "float16")
    writer.write(_vectors(10, dim=32))
    writer.close({"model": "tiny", "dim": 32})
    _fails(["index", "build", str(mixed), "-o", str(tmp_path / "m")], "shards disagree on dimension")
    bad = _vectors(30)
    bad[7] = np.nan
    _fails(["index", "build", str(_shards(tmp_path / "nan", bad, shards=1)), "-o", str(tmp_path / "n")], "NaN")
    assert not (tmp_path / "m").exists() and not (tmp_path / "n").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


def test_old_format_still_searches_but_cannot_filter(tmp_path: Path) -> None:
    from clipsuite.core.index import EmbeddingIndex

    EmbeddingIndex.build(_vectors(50), [{"id": i, "path": f"{i}.png"} for i in range(50)],
                         model="tiny").save(tmp_path / "old")
    result = runner.invoke(app, ["index", "search", str(tmp_path / "old"), "--text", "x", "--k", "2",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    _fails(["index", "search", str(tmp_path / "old"), "--text", "x", "--where", "id < 3"],
           "rebuild it with `clipsuite index build")


def test_per_node_builds_merge(built: Path, tmp_path: Path) -> None:
    node0 = _shards(tmp_path / "e0", _vectors(3000, seed=4), shards=1)
    node1 = _shards(tmp_path / "e1", _vectors(2000, seed=5), start=3000, shards=1)
    assert runner.invoke(app, ["index", "build", str(node0), "-o", str(tmp_path / "i0"), "--kind", "ivf",
                               "--nlist", "32"]).exit_code == 0
    result = runner.invoke(app, ["index", "build", str(node1), "-o", str(tmp_path / "i1"),
                                 "--trained", str(tmp_path / "i0")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["index", "merge", str(tmp_path / "i0"), str(tmp_path / "i1"), "-o",
                                 str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    assert "merged 2 indexes (5000 vectors)" in result.output
    _fails(["index", "merge", str(tmp_path / "i0"), str(built / "ix"), "-o", str(tmp_path / "bad")],
           "trained with another quantizer")
    out = tmp_path / "hits.json"
    result = runner.invoke(app, ["index", "search", str(tmp_path / "i0"), str(tmp_path / "i1"), "--text", "x",
                                 "--where", "split = 'val'", "--k", "6", "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    hits = json.loads(out.read_text())
    assert len(hits) == 6 and all(h["split"] == "val" for h in hits)
    assert {h["index"] for h in hits} <= {str(tmp_path / "i0"), str(tmp_path / "i1")}
    assert all((h["id"] < 3000) == (h["index"] == str(tmp_path / "i0")) for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
