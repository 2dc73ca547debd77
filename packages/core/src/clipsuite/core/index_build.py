"""Building format-2 index folders in bounded memory: build, add, merge (see ``index_store`` for the layout).

A build streams the source once into a float16 part and an Arrow metadata part, trains on a sample read
back from the part, assigns every row to its cell in one pass over the part (the lists' sizes), then
encodes the part again block by block and writes each entry to its place in ``lists.ivfdata``
(``clipsuite.core.ivf_lists``: faiss's on-disk layout, written with plain file writes; add and merge copy
the old lists the same way). Every write
goes to a staged folder swapped in at the end (``clipsuite.core.staging``): a crash leaves the old folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from clipsuite.core.errors import InputError
from clipsuite.core.index_meta import infer_schema, write_metadata
from clipsuite.core.index_plan import nlist_for, plan_index
from clipsuite.core.index_store import (
    CONFIG_FILE,
    FAISS,
    FORMAT_VERSION,
    INDEX_FILE,
    LISTS_FILE,
    SHIFT_FILE,
    TRAINED_FILE,
    IndexStore,
    Part,
    StoreConfig,
    VectorSource,
    normalized,
    read_store_config,
)
from clipsuite.core.ivf_lists import ListLayout, ListsReader, ListsWriter, encode, index_bytes
from clipsuite.core.mapped_rows import read_block
from clipsuite.core.staging import staged_folder


def _write_part(stage: Path, number: int, source: VectorSource, config: StoreConfig) -> Part:
    """Stream ``source`` into ``vectors-NNNNN.npy`` (float16, unit rows) and ``metadata-NNNNN.arrow``."""
    part = Part(source.total, f"vectors-{number:05d}.npy", f"metadata-{number:05d}.arrow")
    schema = infer_schema(source.metadata_rows())
    written = write_metadata(stage / part.metadata, source.metadata_rows(), schema)
    if written != part.rows:
        raise InputError(f"{source}: {part.rows} embeddings but {written} metadata rows")
    start = 0
    # plain file writes, not a writable memory map: written pages mapped into the process count in its RSS
    # (a 10M x 512 part showed 10 GB of it); the page cache writes them back either way
    with open(stage / part.vectors, "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                    "fortran_order": False, "shape": (part.rows, config.dim)})
        for chunk in source.chunks():
            block = normalized(chunk, config.dim, f"{source}")
            if start + len(block) > part.rows:
                raise InputError(f"{source}: holds more embeddings than its header says ({part.rows})")
            file.write(np.ascontiguousarray(block, dtype=np.float16).tobytes())
            start += len(block)
    if start != part.rows:
        raise InputError(f"{source}: expected {part.rows} embeddings, read {start}")
    return part


def _train(store: IndexStore, config: StoreConfig) -> faiss.Index:
    n, dim = len(store), config.dim
    nlist = config.nlist or nlist_for(n)
    config.nlist = nlist
    if n < nlist:
        raise InputError(f"build: {n} embeddings cannot train {nlist} IVF cells "
                         "(use --kind exact for small sets, or a smaller --nlist)")
    if config.codes == "flat":
        spec = f"IVF{nlist},Flat"
    elif config.codes == "sq8":
        spec = f"IVF{nlist},SQ8"
    else:
        m = int(config.codes[2:])
        if dim % m:
            raise InputError(f"build: --codes {config.codes}: {m} must divide the dimension {dim}")
        if n < 39 * 256:
            raise InputError(f"build: pq codes need at least {39 * 256} embeddings to train, got {n} "
                             "(use --codes flat or sq8)")
        spec = f"IVF{nlist},PQ{m}x8np"
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    # Lists come out uneven at 1M x 512 (up to 7,000 vectors, median 234: image queries scan ~15x the
    # average). Spherical k-means was tried and was worse (100k: largest list 1,769 vs 292).
    want = min(n, max(config.train_size, 39 * nlist))
    picked = np.sort(np.random.default_rng(0).choice(n, size=want, replace=False))
    index.train(store.gather(picked))  # its pages let go run by run: the sample touches every page of the parts
    return index


def _assign(store: IndexStore, parts: Sequence[int], trained: faiss.Index) -> np.ndarray:
    """The cell of every row of ``parts`` (one block in memory): the lists' sizes, known before any is written."""
    quantizer: Any = FAISS.extract_index_ivf(trained).quantizer
    cells = np.empty(sum(store.vectors[n].shape[0] for n in parts), dtype=np.int32)
    at = 0
    for _, block in _part_blocks(store, parts):
        cells[at:at + len(block)] = quantizer.assign(block, 1).ravel()
        at += len(block)
    return cells


def _part_blocks(store: IndexStore, parts: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(first global row, float32 block) over the given parts, each block's pages let go once read."""
    for number in parts:
        vectors, first = store.vectors[number], int(store.offsets[number])
        for start in range(0, vectors.shape[0], store.config.block_rows):
            yield first + start, read_block(vectors, start, start + store.config.block_rows)


def _write_ivf(stage: Path, trained: faiss.Index, olds: Sequence[tuple[IndexStore, int]],
               store: IndexStore | None = None, new_parts: Sequence[int] = ()) -> None:
    """index.faiss + lists.ivfdata: each cell holds the lists of ``olds`` (their ids shifted by the offset
    given with each), then the new parts' rows in order. Written with ``ivf_lists``: one block or one old
    list in memory at a time, nothing written through a memory map."""
    ivf: Any = FAISS.extract_index_ivf(trained)
    readers = [(ListsReader(s.folder / INDEX_FILE, s.folder / LISTS_FILE, ivf.nlist, ivf.code_size), offset)
               for s, offset in olds]
    try:
        cells = _assign(store, new_parts, trained) if store is not None else np.empty(0, dtype=np.int32)
        sizes = np.bincount(cells, minlength=ivf.nlist) + sum((r.layout.sizes for r, _ in readers), np.int64(0))
        layout = ListLayout.packed(sizes, ivf.code_size)
        with ListsWriter(stage / LISTS_FILE, layout) as writer:
            for reader, offset in readers:
                for cell in np.flatnonzero(reader.layout.sizes):
                    codes, ids = reader.entries(int(cell))
                    writer.put(int(cell), codes, ids + offset)
            if store is not None:
                at = 0
                for first, block in _part_blocks(store, new_parts):
                    mine = cells[at:at + len(block)]
                    writer.put_block(mine, encode(trained, block, mine),
                                     np.arange(first, first + len(block), dtype=np.int64))
                    at += len(block)
    finally:
        for reader, _ in readers:
            reader.close()
    # the file name faiss stores is only read beside index.faiss (IO_FLAG_ONDISK_SAME_DIR), wherever it moved
    (stage / INDEX_FILE).write_bytes(index_bytes(trained, layout, LISTS_FILE))


def _fill(stage: Path, config: StoreConfig, parts: list[Part], new_parts: list[int],
          trained: faiss.Index | None, old: IndexStore | None) -> None:
    """Write index.faiss (+ lists) for ``stage`` whose parts are all there: old lists + the new parts."""
    store = IndexStore(stage, config, parts, None, None)
    if config.kind == "hnsw":
        index: Any = (faiss.clone_index(old.index) if old is not None and old.index is not None
                 else faiss.IndexHNSWFlat(config.dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT))
        index.hnsw.efConstruction = config.ef_construction
        for number in new_parts:
            for start in range(0, store.vectors[number].shape[0], config.block_rows):
                index.add(read_block(store.vectors[number], start, start + config.block_rows))
        faiss.write_index(index, str(stage / INDEX_FILE))
        return
    if config.kind != "ivf":
        return
    if trained is None:
        trained = _train(store, config)
    faiss.write_index(trained, str(stage / TRAINED_FILE))
    olds = [(old, 0)] if old is not None and old.index is not None else []
    _write_ivf(stage, trained, olds, store, new_parts)


def _write_config(stage: Path, config: StoreConfig, parts: list[Part], extra: dict[str, Any] | None = None) -> None:
    total = sum(p.rows for p in parts)
    payload = {"format_version": FORMAT_VERSION, "count": total, **asdict(config),
               "parts": [asdict(p) for p in parts], **(extra or {})}
    (stage / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def check_target(target: Path) -> None:
    """Refuse, before any work, a folder that holds what clipsuite did not write (the user's files)."""
    from clipsuite.core.outputs import check_output_dir

    check_output_dir(target, "--output")


def trained_from(folder: str | os.PathLike[str], dim: int) -> tuple[faiss.Index, StoreConfig]:
    """The trained quantizer of another index (per-node builds share one, so their lists can merge)."""
    folder = Path(folder)
    raw = read_store_config(folder)
    if not (folder / TRAINED_FILE).is_file():
        raise InputError(f"{folder}: has no trained quantizer ({TRAINED_FILE}); only ivf indexes have one")
    if int(raw["dim"]) != dim:
        raise InputError(f"{folder}: its quantizer is {raw['dim']}-dimensional but the embeddings are {dim}")
    return faiss.read_index(str(folder / TRAINED_FILE)), StoreConfig.from_dict(raw)


def build_store(source: VectorSource, output: str | os.PathLike[str], config: StoreConfig | None = None,
                trained: str | os.PathLike[str] | None = None, tune: Any = None) -> IndexStore:
    """Build a format-2 index folder at ``output`` from ``source`` (staged: a crash leaves the old folder).

    ``config.max_memory`` (bytes) picks kind, codes and sizes (``index_plan``) unless ``kind`` was set
    to something other than the default by the caller through ``config.kind``. ``trained``: reuse the
    quantizer of that index folder. ``tune(store) -> dict``: called on the finished store before the
    swap (``index_tuning.tune``), its record is kept in index.json.
    """
    target = Path(output)
    check_target(target)
    config = StoreConfig(**asdict(config or StoreConfig()))
    config.dim, config.model = int(source.dim), config.model or source.model
    if source.total == 0:
        raise InputError("build: no embeddings to index")
    quantizer = None
    if trained is not None:
        quantizer, other = trained_from(trained, config.dim)
        config.kind, config.codes, config.nlist = "ivf", other.codes, other.nlist
        if other.model and config.model and other.model != config.model:
            raise InputError(f"{trained}: its quantizer was trained on '{other.model}' embeddings, "
                             f"these are '{config.model}'")
    with staged_folder(target, command="index build") as stage:
        parts = [_write_part(stage, 0, source, config)]
        _fill(stage, config, parts, [0], quantizer, None)
        _write_config(stage, config, parts)
        if tune is not None:
            store = IndexStore.open(stage)
            store.config.tuning = tune(store)
            if store.shift is not None:
                np.save(stage / SHIFT_FILE, store.shift.astype(np.float32))
            _write_config(stage, store.config, parts)
            del store
    return IndexStore.open(target)


def add_to_store(folder: str | os.PathLike[str], source: VectorSource) -> IndexStore:
    """Append ``source`` as a new part, with the trained quantizer; staged, old files hard-linked."""
    old = IndexStore.open(folder)
    if source.dim != old.dim:
        raise InputError(f"{source}: {source.dim}-dimensional embeddings, the index {folder} holds {old.dim}")
    if old.config.model and source.model and source.model != old.config.model:
        raise InputError(f"{source}: embedded with '{source.model}', the index {folder} with '{old.config.model}'")
    if source.total == 0:
        raise InputError(f"{source}: no embeddings to add")
    config = StoreConfig(**asdict(old.config))
    if config.tuning:
        config.tuning = {**config.tuning, "stale": f"measured on {len(old)} rows, before an add"}
    with staged_folder(folder, command="index add", flag="INDEX") as stage:
        for name in [p.vectors for p in old.parts] + [p.metadata for p in old.parts] + [TRAINED_FILE, SHIFT_FILE]:
            if (old.folder / name).is_file():
                _link(old.folder / name, stage / name)
        parts = list(old.parts) + [_write_part(stage, len(old.parts), source, config)]
        trained = faiss.read_index(str(stage / TRAINED_FILE)) if config.kind == "ivf" else None
        _fill(stage, config, parts, [len(parts) - 1], trained, old)
        _write_config(stage, config, parts)
    del old
    return IndexStore.open(folder)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # parts never change once written: share them between versions
    except OSError:
        shutil.copy2(source, target)


def plan_config(config: StoreConfig, total: int, dim: int) -> StoreConfig:
    """``config`` with kind, codes, nlist, sizes and rerank chosen for ``config.max_memory``."""
    plan = plan_index(total, dim, config.max_memory, config.train_size, config.block_rows)
    return StoreConfig(**{**asdict(config), "kind": plan.kind, "codes": plan.codes, "nlist": config.nlist or plan.nlist,
                          "train_size": plan.train_size or config.train_size, "block_rows": plan.block_rows,
                          "rerank": max(config.rerank, plan.rerank)})


def settle_config(config: StoreConfig, total: int, dim: int, pq_codes: bool, chosen: bool) -> StoreConfig:
    """What needs the data's size: ``pq_codes`` (ivfpq without codes named) gives PQ with dim/8 sub-vectors;
    with a memory budget, kind, codes and sizes come from the plan unless ``chosen`` (kind or codes named),
    where the plan only refuses a budget too small for anything."""
    if pq_codes:
        config.codes = f"pq{max(1, dim // 8)}"
    if config.max_memory is None:
        return config
    planned = plan_config(config, total, dim)
    return config if chosen else planned


def merge_stores(folders: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> IndexStore:
    """One index from several built with the same quantizer (``build --trained``: one per node), in order.

    Parts are hard-linked, the inverted lists merged on disk with each folder's ids shifted past the
    ones before it. The tuning of the first folder is kept and marked stale (measured on fewer rows).
    """
    if len(folders) < 2:
        raise InputError("merge: give at least two index folders")
    target = Path(output)
    check_target(target)
    stores = [IndexStore.open(f) for f in folders]
    first = stores[0]
    trained_bytes = (first.folder / TRAINED_FILE).read_bytes() if (first.folder / TRAINED_FILE).is_file() else b""
    for store in stores[1:]:
        if (store.dim, store.config.model, store.config.kind) != (first.dim, first.config.model, first.config.kind):
            raise InputError(f"{store.folder}: {store.config.kind} index of {store.dim}-d '{store.config.model}' "
                             f"vectors; {first.folder} is {first.config.kind} of {first.dim}-d '{first.config.model}'")
        mine = (store.folder / TRAINED_FILE).read_bytes() if (store.folder / TRAINED_FILE).is_file() else b""
        if mine != trained_bytes:
            raise InputError(f"{store.folder}: trained with another quantizer than {first.folder}; build every "
                             f"folder with `--trained {first.folder}` so their lists can merge")
    if first.config.kind == "hnsw":
        raise InputError("merge: HNSW graphs do not merge; build ivf (or exact) indexes per node")
    config = StoreConfig(**asdict(first.config))
    if config.tuning:
        config.tuning = {**config.tuning, "stale": f"measured on {len(first)} rows of {first.folder}, before a merge"}
    with staged_folder(target, command="index merge") as stage:
        parts: list[Part] = []
        for store in stores:
            for part in store.parts:
                new = Part(part.rows, f"vectors-{len(parts):05d}.npy", f"metadata-{len(parts):05d}.arrow")
                _link(store.folder / part.vectors, stage / new.vectors)
                _link(store.folder / part.metadata, stage / new.metadata)
                parts.append(new)
        for name in (TRAINED_FILE, SHIFT_FILE):
            if (first.folder / name).is_file():
                _link(first.folder / name, stage / name)
        if config.kind == "ivf":
            trained = faiss.read_index(str(stage / TRAINED_FILE))
            offsets = np.cumsum([0] + [len(s) for s in stores])[:-1]
            _write_ivf(stage, trained, [(s, int(o)) for s, o in zip(stores, offsets)])
        _write_config(stage, config, parts)
    del stores, first
    return IndexStore.open(target)
