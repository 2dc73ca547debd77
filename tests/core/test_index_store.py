"""The format-2 index store: on-disk lists equal in-memory ones, tuning meets its recall on held-out
queries, filters only return matching rows, add equals a rebuild, budgets and bad input fail in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from clipsuite.core.errors import InputError
from clipsuite.core.index_build import add_to_store, build_store, merge_stores
from clipsuite.core.index_plan import format_memory, parse_memory, plan_index
from clipsuite.core.index_store import ArraySource, IndexStore, StoreConfig, normalized, search_many
from clipsuite.core.index_tuning import recall_at_k, tune

DIM = 32


def _data(n: int, seed: int = 0, centres: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors and their cluster centres (the generator the queries share)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, DIM))
    x = means[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, DIM))
    return normalized(x, DIM, "x"), means


def _text_like(means: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Queries from another cone: a constant gap, plus a random linear distortion (not a pure shift)."""
    rng = np.random.default_rng(seed)
    gap = np.random.default_rng(99).normal(size=DIM) * 0.25
    twist = np.eye(DIM) + 0.3 * np.random.default_rng(98).normal(size=(DIM, DIM)) / np.sqrt(DIM)
    base = means[rng.integers(0, len(means), count)] + 0.6 * rng.normal(size=(count, DIM))
    base = normalized(base, DIM, "q")
    return normalized(base @ twist + gap, DIM, "q")


def _status_kb(key: str) -> int:
    """A /proc/self/status figure in kB."""
    found = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1))


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "path": f"{i}.jpg", "split": "val" if i % 20 == 0 else "train", "year": 2000 + i % 25}
            for i in range(n)]


@pytest.fixture(scope="module")
def ivf(tmp_path_factory: pytest.TempPathFactory) -> tuple[IndexStore, np.ndarray, np.ndarray]:
    data, means = _data(8000)
    store = build_store(ArraySource(data, _rows(8000), model="tiny"), tmp_path_factory.mktemp("s") / "ix",
                        StoreConfig(kind="ivf", nlist=64, nprobe=4, block_rows=1500))
    return store, data, means


def test_on_disk_lists_equal_in_memory_index(ivf: tuple[IndexStore, np.ndarray, np.ndarray]) -> None:
    store, data, means = ivf
    assert (store.folder / "lists.ivfdata").is_file() and len(store) == 8000
    memory: Any = faiss.read_index(str(store.folder / "trained.faiss"))  # same quantizer, every list in RAM
    memory.add(store.gather(np.arange(len(store))))
    memory.nprobe = 4
    queries = _text_like(means, 50, seed=3)
    expected_scores, expected_rows = memory.search(queries, 10)
    scores, rows = store.search(queries, 10, shift=False)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    exact_scores, exact_rows = store.exact_search(queries, 10)  # and the exact scan is brute force
    brute = queries @ store.gather(np.arange(len(store))).T
    np.testing.assert_array_equal(exact_rows, np.argsort(-brute, axis=1)[:, :10])
    assert np.abs(store.gather(np.arange(100)) - data[:100]).max() < 1e-3  # float16 copies
    assert store.rows_metadata(rows[:1, :2])[0] == [_rows(8000)[r] for r in rows[0, :2]]


def test_tuned_recall_holds_on_held_out_text_like_queries(ivf: tuple[IndexStore, np.ndarray, np.ndarray]) -> None:
    store, _, means = ivf
    tuning, held_out = _text_like(means, 300, seed=11), _text_like(means, 300, seed=12)
    before = recall_at_k(store.search(held_out, 10, nprobe=1)[1], store.exact_search(held_out, 10)[1])
    record = tune(store, tuning, target=0.95)
    assert record["met"] and record["recall"] >= 0.95 and 1 <= record["nprobe"] <= 64
    assert set(record["tried"]) == {"none", "modality_gap"} and record["image_recall"] >= 0.99
    recall = recall_at_k(store.search(held_out, 10)[1], store.exact_search(held_out, 10)[1])
    assert recall >= 0.93 > before  # held-out queries: the target within sampling noise
    store.set_tuned(nprobe=4, shift=None)


@pytest.mark.parametrize("where", ["split = 'val'", "year BETWEEN 2003 AND 2012", "split = 'train' AND year > 2001"])
def test_every_filtered_hit_satisfies_the_predicate(ivf: tuple[IndexStore, np.ndarray, np.ndarray],
                                                     where: str) -> None:
    store, _, means = ivf
    queries = _text_like(means, 40, seed=5)
    allowed = store.matching_rows(where)
    scores, rows = store.search(queries, 10, where=where, nprobe=8)
    truth = store.exact_search(queries, 10, allowed)[1]
    assert (rows >= 0).all() and np.isin(rows, allowed).all()
    for line in store.rows_metadata(rows):
        for meta in line:
            assert meta is not None
            if "split" in where and "val" in where:
                assert meta["split"] == "val"
            if "BETWEEN" in where:
                assert 2003 <= meta["year"] <= 2012
    assert recall_at_k(rows, truth) >= 0.9
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_add_equals_rebuild_and_a_failed_add_leaves_the_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, means = _data(6000, seed=2)
    rows = _rows(6000)
    config = StoreConfig(kind="ivf", nlist=32, nprobe=6, block_rows=1000)
    grown = build_store(ArraySource(data[:4000], rows[:4000], model="tiny"), tmp_path / "grown", config)
    whole = build_store(ArraySource(data, rows, model="tiny"), tmp_path / "whole", config, trained=tmp_path / "grown")
    grown = add_to_store(tmp_path / "grown", ArraySource(data[4000:], rows[4000:], model="tiny"))
    assert len(grown) == len(whole) == 6000 and len(grown.parts) == 2
    queries = _text_like(means, 30, seed=7)
    for kwargs in ({}, {"where": "split = 'val'"}, {"where": "year < 2020", "nprobe": 2}):
        a, b = grown.search(queries, 10, **kwargs), whole.search(queries, 10, **kwargs)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    assert grown.rows_metadata(np.array([[5999]]))[0][0] == _rows(6000)[5999]

    import clipsuite.core.index_build as module

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed mid-add")

    monkeypatch.setattr(module, "_fill", crash)
    before = sorted(p.name for p in (tmp_path / "grown").iterdir())
    with pytest.raises(RuntimeError, match="killed"):
        add_to_store(tmp_path / "grown", ArraySource(data[:10], rows[:10], model="tiny"))
    assert sorted(p.name for p in (tmp_path / "grown").iterdir()) == before
    assert len(IndexStore.open(tmp_path / "grown")) == 6000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grown", "whole"]  # no staging folder left


def test_exact_and_hnsw_kinds(tmp_path: Path) -> None:
    data, means = _data(3000, seed=4)
    queries = _text_like(means, 20, seed=8)
    exact = build_store(ArraySource(data), tmp_path / "e", StoreConfig(kind="exact", block_rows=700))
    brute = np.argsort(-(queries @ exact.gather(np.arange(3000)).T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact.search(queries, 10)[1], brute)
    hnsw = build_store(ArraySource(data), tmp_path / "h", StoreConfig(kind="hnsw", ef_search=64))
    assert recall_at_k(hnsw.search(queries, 10)[1], brute) >= 0.9
    assert np.isin(hnsw.search(queries, 5, where="id < 100")[1], np.arange(100)).all()
    grown = add_to_store(tmp_path / "h", ArraySource(data[:50]))
    assert len(grown) == 3050 and grown.index is not None and grown.index.ntotal == 3050


def test_memory_budget_picks_the_index_and_names_the_smallest() -> None:
    assert parse_memory("8G") == 8 * 2**30 and parse_memory("512m") == 512 * 2**20 and parse_memory("1.5GiB") > 2**30
    assert plan_index(5000, 512, 2**30).kind == "exact"
    assert (plan_index(500_000, 512, 8 * 2**30).kind, plan_index(500_000, 512, 8 * 2**30).codes) == ("ivf", "flat")
    assert plan_index(10_000_000, 512, 8 * 2**30).codes == "sq8"  # 20 GB of floats do not fit, 5 GB of bytes do
    tight = plan_index(10_000_000, 512, 2 * 2**30)
    assert tight.codes.startswith("pq") and tight.serving_bytes <= 2 * 2**30 and tight.building_bytes <= 2 * 2**30
    with pytest.raises(InputError, match="the smallest that works is") as caught:
        plan_index(10_000_000, 512, 2**20)
    smallest = str(caught.value).rsplit(" ", 1)[-1]
    assert plan_index(10_000_000, 512, parse_memory(smallest)).kind == "ivf"  # the advice itself works
    assert format_memory(3 * 2**30) == "3G"
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(InputError, match="--max-memory"):
            parse_memory(bad)


def test_bad_input_is_one_line(tmp_path: Path, ivf: tuple[IndexStore, np.ndarray, np.ndarray]) -> None:
    store, data, _ = ivf
    with pytest.raises(InputError, match='column "nope" not found'):
        store.search(data[:2], 5, where="nope = 1")
    with pytest.raises(InputError, match="Parser Error"):
        store.search(data[:2], 5, where="split = = 'val'")
    assert store.search(data[:2], 5, where="split = 'none'")[1].tolist() == [[-1] * 5] * 2
    with pytest.raises(InputError, match="NaN"):
        build_store(ArraySource(np.full((5, 4), np.nan)), tmp_path / "nan")
    with pytest.raises(InputError, match="zero vector"):
        build_store(ArraySource(np.zeros((5, 4))), tmp_path / "zero")
    with pytest.raises(InputError, match="dimension 8 does not match"):
        store.search(np.ones((1, 8)), 3)
    with pytest.raises(InputError, match="16-dimensional embeddings"):
        add_to_store(store.folder, ArraySource(np.ones((3, 16))))
    with pytest.raises(InputError, match="embedded with 'small'"):
        add_to_store(store.folder, ArraySource(np.ones((3, DIM)), model="small"))
    assert not (tmp_path / "nan").exists() and not (tmp_path / "zero").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "index.json").write_text(json.dumps({"format_version": 7, "kind": "ivf", "dim": 4}))
    with pytest.raises(InputError, match="index format 7 from another clipsuite version.*clipsuite index build"):
        IndexStore.open(old)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="holds files this command did not write"):
        build_store(ArraySource(data[:10]), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    mixed: list[dict[str, Any]] = [{"id": 1, "v": 1}, {"id": 2, "v": "[two"}, {"id": 3, "v": {"a": [1]}}]
    built = build_store(ArraySource(data[:3], mixed), tmp_path / "mixed")
    assert [r["v"] for r in built.metadata.rows(np.arange(3))] == ["1", "[two", {"a": [1]}]  # mixed: kept as text


def test_per_node_builds_merge_into_the_whole(tmp_path: Path) -> None:
    data, means = _data(5000, seed=6)
    rows = _rows(5000)
    config = StoreConfig(kind="ivf", nlist=32, nprobe=5, block_rows=900)
    node0 = build_store(ArraySource(data[:2000], rows[:2000], model="tiny"), tmp_path / "n0", config)
    build_store(ArraySource(data[2000:], rows[2000:], model="tiny"), tmp_path / "n1", config, trained=tmp_path / "n0")
    whole = build_store(ArraySource(data, rows, model="tiny"), tmp_path / "whole", config, trained=tmp_path / "n0")
    merged = merge_stores([tmp_path / "n0", tmp_path / "n1"], tmp_path / "merged")
    queries = _text_like(means, 25, seed=9)
    for where in (None, "year > 2010"):
        found, expected = merged.search(queries, 10, where=where), whole.search(queries, 10, where=where)
        np.testing.assert_array_equal(found[1], expected[1])
    assert len(merged) == 5000 and merged.rows_metadata(np.array([[4999]]))[0][0] == rows[4999]
    other = build_store(ArraySource(data[:1000], rows[:1000], model="tiny"), tmp_path / "other", config)
    with pytest.raises(InputError, match="trained with another quantizer"):
        merge_stores([node0.folder, other.folder], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("codes", ["sq8", "pq8"])
def test_quantised_codes_are_reranked_exactly(tmp_path: Path, codes: str) -> None:
    data, means = _data(12_000, seed=10)
    store = build_store(ArraySource(data), tmp_path / codes, StoreConfig(kind="ivf", codes=codes, nlist=64,
                                                                          nprobe=16, rerank=10))
    queries = _text_like(means, 30, seed=13)
    scores, rows = store.search(queries, 10)
    exact_scores, exact_rows = store.exact_search(queries, 10)
    expected = np.einsum("qkd,qd->qk", store.gather(rows.ravel()).reshape(*rows.shape, DIM), queries)
    np.testing.assert_allclose(scores, expected, atol=1e-5)  # re-ranked scores are the stored vectors' cosines
    assert recall_at_k(rows, exact_rows) >= (0.95 if codes == "sq8" else 0.8)
    assert recall_at_k(store.search(queries, 10, rerank=1)[1], exact_rows) <= recall_at_k(rows, exact_rows) + 1e-9


def test_several_folders_search_as_one(tmp_path: Path) -> None:
    data, means = _data(4000, seed=14)
    config = StoreConfig(kind="ivf", nlist=16, nprobe=16)  # every cell: each store is exact
    parts = [build_store(ArraySource(data[i:i + 2000], model="tiny"), tmp_path / f"p{i}", config) for i in (0, 2000)]
    queries = _text_like(means, 20, seed=15)
    scores, rows, which = search_many(parts, queries, 10)
    whole = build_store(ArraySource(data, model="tiny"), tmp_path / "whole", StoreConfig(kind="exact"))
    np.testing.assert_array_equal(rows + 2000 * which, whole.search(queries, 10)[1])
    with pytest.raises(InputError, match="search indexes of one model together"):
        search_many([parts[0], build_store(ArraySource(data[:50], model="small"), tmp_path / "s")], queries, 3)


def test_a_pass_over_the_parts_lets_their_pages_go(tmp_path: Path) -> None:
    # a build or an exact scan reads every vector once; what it read must not stay counted in the process
    from clipsuite.core.mapped_rows import read_block, release

    def mapped_kb() -> int:
        return _status_kb("RssFile")

    np.save(tmp_path / "v.npy", np.random.default_rng(0).standard_normal((60_000, 256)).astype(np.float16))
    vectors = np.load(tmp_path / "v.npy", mmap_mode="r")
    before = mapped_kb()
    whole = np.asarray(vectors, dtype=np.float32)
    assert mapped_kb() - before > 20_000  # ~30 MB of pages mapped in by the read ...
    release(vectors)
    assert mapped_kb() - before < 2_000  # ... and let go
    blocks = [read_block(vectors, start, start + 7_000) for start in range(0, 60_000, 7_000)]
    assert mapped_kb() - before < 2_000
    assert np.array_equal(np.concatenate(blocks), whole)  # the data read is the same


def test_a_large_gather_lets_its_pages_go_as_it_goes(tmp_path: Path) -> None:
    # a training sample spread over the whole part: without letting go per run of rows it maps every page
    def mapped_kb() -> int:
        return _status_kb("RssFile")

    data = normalized(np.random.default_rng(1).standard_normal((60_000, 256)), 256, "x")
    store = build_store(ArraySource(data, [{"id": i} for i in range(60_000)], model="tiny"), tmp_path / "ix",
                        StoreConfig(kind="exact", block_rows=4_000))
    store = IndexStore.open(tmp_path / "ix")  # freshly mapped
    rows = np.random.default_rng(2).permutation(60_000)[:30_000]
    before = mapped_kb()
    sample = store.gather(rows)
    assert mapped_kb() - before < 4_000  # 30 MB of the part read, at most one run of rows mapped at a time
    assert np.abs(sample - data[rows]).max() < 1e-3  # in the order asked for


def test_a_sparse_gather_that_lets_go_maps_one_window_at_a_time(tmp_path: Path) -> None:
    # one block of a filtered exact scan: few rows spread over the part; the kernel maps pages around each read
    data = normalized(np.random.default_rng(3).standard_normal((60_000, 256)), 256, "x")
    build_store(ArraySource(data, model="tiny"), tmp_path / "ix", StoreConfig(kind="exact", block_rows=4_000))
    store = IndexStore.open(tmp_path / "ix")
    rows = np.arange(0, 60_000, 20)  # 3,000 rows, fewer than block_rows, over all 30 MB of the part
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_kb("VmRSS")
    sample = store.gather(rows, let_go=True)
    assert _status_kb("VmHWM") - start < 8_000  # a window of 4,000 part rows (2 MB) mapped at a time
    assert np.abs(sample - data[rows]).max() < 1e-3
