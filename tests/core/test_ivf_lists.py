"""IVF lists written with plain file I/O (``ivf_lists``): faiss reads them as its own and finds what its own
``add`` finds, lists faiss wrote are read back exactly (folders built before), a build does not hold or map
the lists, and a serving store lets its mapped pages go past its budget."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from clipsuite.core.index_build import build_store
from clipsuite.core.index_store import ArraySource, IndexStore, StoreConfig, normalized
from clipsuite.core.ivf_lists import ListLayout, ListsReader, ListsWriter, encode, index_bytes, read_section, section

FAISS: Any = faiss  # swig names the stubs leave out


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    return normalized(np.random.default_rng(seed).standard_normal((n, dim)), dim, "x")


def _status(key: str) -> int:
    """A /proc/self/status figure in kB."""
    found = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1))


@pytest.mark.parametrize("spec", ["IVF16,Flat", "IVF16,SQ8", "IVF16,PQ8x8np"])
def test_written_lists_search_as_faiss_own_add(tmp_path: Path, spec: str) -> None:
    data = _unit(6000, 32, seed=0)
    trained: Any = faiss.index_factory(32, spec, faiss.METRIC_INNER_PRODUCT)
    trained.train(data)
    memory: Any = faiss.clone_index(trained)
    memory.add(data)
    cells = faiss.extract_index_ivf(trained).quantizer.assign(data, 1).ravel()
    layout = ListLayout.packed(np.bincount(cells, minlength=16), faiss.extract_index_ivf(trained).code_size)
    with ListsWriter(tmp_path / "lists.ivfdata", layout) as writer:
        for start in range(0, 6000, 1700):  # blocks out of cell order, as a build writes them
            block = slice(start, start + 1700)
            writer.put_block(cells[block], encode(trained, data[block], cells[block]), np.arange(6000)[block])
    (tmp_path / "index.faiss").write_bytes(index_bytes(trained, layout, "lists.ivfdata"))
    disk: Any = faiss.read_index(str(tmp_path / "index.faiss"), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    on_disk: Any = FAISS.downcast_InvertedLists(faiss.extract_index_ivf(disk).invlists)
    assert disk.ntotal == 6000 and on_disk.read_only
    queries = _unit(40, 32, seed=1)
    for index in (memory, disk):
        faiss.extract_index_ivf(index).nprobe = 16
    expected, found = memory.search(queries, 10), disk.search(queries, 10)
    np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_array_equal(found[0], expected[0])


def test_lists_faiss_wrote_read_back_exactly(tmp_path: Path) -> None:
    # folders built before: faiss's merge_from_multiple (lists packed, the whole file also listed as a free
    # slot) and add_entries one list at a time (capacities rounded up to powers of two)
    data = _unit(3000, 16, seed=2)
    trained: Any = faiss.index_factory(16, "IVF8,SQ8", faiss.METRIC_INNER_PRODUCT)
    trained.train(data)
    source: Any = faiss.clone_index(trained)
    source.add_with_ids(data, np.arange(3000, dtype=np.int64) + 7)
    lists: Any = faiss.extract_index_ivf(source).invlists
    for how in ("merge", "entries"):
        folder = tmp_path / how
        folder.mkdir()
        index: Any = faiss.clone_index(trained)
        ivf: Any = faiss.extract_index_ivf(index)
        disk: Any = faiss.OnDiskInvertedLists(8, ivf.code_size, str(folder / "lists.ivfdata"))
        if how == "merge":
            vector: Any = FAISS.InvertedListsPtrVector()
            vector.push_back(lists)
            disk.merge_from_multiple(vector.data(), 1, False)
        else:
            for cell in range(8):
                for row in range(lists.list_size(cell)):  # one entry at a time: the list grows by doubling
                    disk.add_entries(cell, 1, faiss.swig_ptr(faiss.rev_swig_ptr(lists.get_ids(cell), row + 1)[row:]),
                                     faiss.swig_ptr(faiss.rev_swig_ptr(lists.get_codes(cell), (row + 1) * ivf.code_size)
                                                    [row * ivf.code_size:]))
        ivf.replace_invlists(disk, True)
        disk.this.disown()
        index.ntotal = ivf.ntotal = 3000
        faiss.write_index(index, str(folder / "index.faiss"))
        reader = ListsReader(folder / "index.faiss", folder / "lists.ivfdata", 8, ivf.code_size)
        try:
            for cell in range(8):
                size = lists.list_size(cell)
                codes, ids = reader.entries(cell)
                np.testing.assert_array_equal(ids, faiss.rev_swig_ptr(lists.get_ids(cell), size))
                np.testing.assert_array_equal(codes.ravel(), faiss.rev_swig_ptr(lists.get_codes(cell),
                                                                                size * ivf.code_size))
        finally:
            reader.close()
        if how == "entries":
            assert (reader.layout.capacities > reader.layout.sizes).any()  # the doubling was exercised


def test_the_section_round_trips_and_a_short_write_is_refused(tmp_path: Path) -> None:
    layout = ListLayout.packed(np.array([3, 0, 5, 1]), code_size=4)
    assert layout.totsize == 9 * 12
    back = read_section(b"header bytes" + section(layout, "lists.ivfdata"), 4, 4)
    for name in ("sizes", "capacities", "offsets"):
        np.testing.assert_array_equal(getattr(back, name), getattr(layout, name))
    with (pytest.raises(RuntimeError, match="list 2: 0 entries written, 5 laid out"),
          ListsWriter(tmp_path / "lists", layout) as writer):
        writer.put(0, np.zeros((3, 4), np.uint8), np.arange(3))
        writer.put(3, np.zeros((1, 4), np.uint8), np.arange(1))
    with pytest.raises(RuntimeError, match="capacity of 1"), ListsWriter(tmp_path / "lists", layout) as writer:
        writer.put(3, np.zeros((2, 4), np.uint8), np.arange(2))


def test_a_build_neither_holds_nor_maps_its_lists(tmp_path: Path) -> None:
    # flat codes of 60k x 256: 62 MB of lists. faiss's merge held every block's lists and mapped the output
    # on top (~2x the lists); written here, the build's peak is about one block and the training sample
    data = _unit(60_000, 256, seed=3)
    source = ArraySource(data, [{"id": i} for i in range(60_000)], model="tiny", block_rows=4000)
    warm = StoreConfig(kind="ivf", nlist=8)
    build_store(ArraySource(data[:3000], model="tiny"), tmp_path / "warm", warm)  # the libraries loaded first
    Path("/proc/self/clear_refs").write_text("5")  # restart VmHWM from the RSS now
    before = _status("VmRSS")
    store = build_store(source, tmp_path / "ix", StoreConfig(kind="ivf", nlist=64, train_size=8000, block_rows=4000))
    lists_kb = (tmp_path / "ix" / "lists.ivfdata").stat().st_size // 1024
    assert lists_kb > 60_000
    assert _status("VmHWM") - before < lists_kb // 2
    assert len(store) == 60_000


def test_a_serving_store_lets_mapped_pages_go_past_its_budget(tmp_path: Path) -> None:
    data = _unit(40_000, 256, seed=4)
    build_store(ArraySource(data, model="tiny"), tmp_path / "ix", StoreConfig(kind="ivf", nlist=256, rerank=4))
    store = IndexStore.open(tmp_path / "ix")
    queries = _unit(256, 256, seed=5)
    before = _status("RssFile")
    expected = store.search(queries, 10, nprobe=256)  # every list (41 MB) and many vectors paged in
    assert _status("RssFile") - before > 30_000
    store.release_pages()
    assert _status("RssFile") - before < 4_000
    peaks = []
    for budget in (2**40, 8 * 2**20):  # none, then 8 MB
        store.release_pages()
        store.mapped_budget = budget
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM from now
        start, mapped = _status("VmRSS"), _status("RssFile")
        found = store.search(queries, 10, nprobe=2)  # 256 queries x 2 lists + 40 re-ranked rows each, one call
        peaks.append(_status("VmHWM") - start)
    assert _status("RssFile") - mapped < 8 * 1024 + 1_000  # let go between chunks of 16 queries, and after
    assert peaks[1] < 0.6 * peaks[0]  # (a chunk maps more than it reads: the kernel maps pages around a fault)
    np.testing.assert_array_equal(found[1], store.search(queries, 10, nprobe=2)[1])
    again = store.search(queries, 10, nprobe=256)
    np.testing.assert_array_equal(again[1], expected[1])  # the same answers from pages faulted back in
    store.release_pages()
    before = _status("RssFile")
    store.exact_search(queries, 10, allowed=np.arange(0, 40_000, 2))  # a filtered exact scan reads 10 MB ...
    assert _status("RssFile") - before < 2_000  # ... and lets each block go
