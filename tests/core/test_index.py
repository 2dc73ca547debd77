"""The faiss embedding index: exact agrees with brute force, approximate kinds find the neighbours,
save/load round-trips, bad folders fail with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.core.index import EmbeddingIndex, IndexConfig, default_nlist


def _clustered(n: int, dim: int = 32, centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    x = means[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_matches_brute_force_cosine() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 16)) * rng.uniform(0.5, 3, size=(300, 1))  # unnormalised on purpose
    queries = rng.normal(size=(7, 16))
    index = EmbeddingIndex.build(torch.from_numpy(data), [{"id": f"x{i}", "path": f"{i}.jpg"} for i in range(300)])
    result = index.search(queries, k=5)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    expected = np.argsort(-cosine, axis=1)[:, :5]
    np.testing.assert_array_equal(result.rows, expected)
    np.testing.assert_allclose(result.scores, np.take_along_axis(cosine, expected, 1), atol=1e-5)
    assert result.ids[0][0] == f"x{expected[0, 0]}"
    assert result.metadata[0][0]["path"] == f"{expected[0, 0]}.jpg"
    records = result.records()
    assert len(records) == 35 and records[0]["rank"] == 1 and records[0]["query"] == 0


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivfpq"])
def test_approximate_kinds_recall(kind: str) -> None:
    n, dim = (10_000, 16) if kind == "ivfpq" else (3000, 32)
    data = _clustered(n, dim)
    queries = _clustered(50, dim, seed=5)
    exact = EmbeddingIndex.build(data).search(queries, k=10).rows
    approx_index = EmbeddingIndex.build(data, kind=kind, nprobe=8)
    approx = approx_index.search(queries, k=10).rows
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= (0.3 if kind == "ivfpq" else 0.9)  # PQ codes are lossy; random would be ~0.001
    if kind == "ivf":
        assert approx_index.config.nlist == default_nlist(n)
        approx_index.set_search_params(nprobe=approx_index.config.nlist)  # all cells: exact again
        np.testing.assert_array_equal(approx_index.search(queries, k=10).rows, exact)


def test_save_load_round_trip(tmp_path: Path) -> None:
    data = _clustered(2000)
    index = EmbeddingIndex.build(data, [{"id": i, "path": f"img{i}.png", "label": i % 3} for i in range(2000)],
                                 IndexConfig(kind="ivf", nprobe=4, model="tiny"))
    folder = index.save(tmp_path / "ix")
    assert sorted(p.name for p in folder.iterdir()) == [".clipsuite-output.json", "index.faiss", "index.json",
                                                        "metadata.jsonl"]
    loaded = EmbeddingIndex.load(folder)
    assert loaded.config.kind == "ivf" and loaded.config.nprobe == 4 and loaded.config.model == "tiny"
    assert len(loaded) == 2000 and loaded.metadata[5] == {"id": 5, "path": "img5.png", "label": 2}
    first, second = index.search(data[:20], k=3), loaded.search(data[:20], k=3)
    np.testing.assert_array_equal(first.rows, second.rows)
    # saving again over it swaps atomically and leaves no temporary folders behind
    EmbeddingIndex.build(data[:10]).save(folder)
    assert len(EmbeddingIndex.load(folder)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


def test_k_larger_than_index_pads() -> None:
    index = EmbeddingIndex.build(_clustered(3))
    result = index.search(_clustered(2, seed=3), k=5)
    assert (result.rows[:, 3:] == -1).all() and np.isinf(result.scores[:, 3:]).all()
    assert result.metadata[0][4] is None and len(result.records()) == 6


def test_bad_inputs(tmp_path: Path) -> None:
    index = EmbeddingIndex.build(_clustered(50))
    with pytest.raises(InputError, match="dimension 8 does not match the index dimension 32"):
        index.search(np.zeros((1, 8)), k=3)
    with pytest.raises(InputError, match="unknown index kind 'lsh'"):
        EmbeddingIndex.build(_clustered(50), kind="lsh")
    with pytest.raises(InputError, match="cannot train"):
        EmbeddingIndex.build(_clustered(50), kind="ivf", nlist=100)
    with pytest.raises(InputError, match="2 metadata rows"):
        EmbeddingIndex.build(_clustered(5), [{"id": 0}, {"id": 1}])
    with pytest.raises(InputError, match="NaN"):
        EmbeddingIndex.build(np.full((3, 4), np.nan))
    with pytest.raises(InputError, match="index folder not found"):
        EmbeddingIndex.load(tmp_path / "nowhere")
    folder = index.save(tmp_path / "ix")
    (folder / "index.json").write_text("{broken")
    with pytest.raises(InputError, match="malformed JSON"):
        EmbeddingIndex.load(folder)
    folder = index.save(tmp_path / "ix2")
    (folder / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable faiss index"):
        EmbeddingIndex.load(folder)
    folder = index.save(tmp_path / "ix3")
    with open(folder / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps({"id": 99}) + "\n")
    with pytest.raises(InputError, match="51 rows"):
        EmbeddingIndex.load(folder)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds files this command did not write"):
        index.save(tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
