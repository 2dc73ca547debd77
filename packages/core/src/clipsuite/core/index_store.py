"""An index folder built from shards in bounded memory, searched memory-mapped (format 2).

Nothing here ever holds all vectors: a build streams the shards once into float16 parts on disk
(``vectors-00000.npy``, memory-mapped) and an Arrow metadata table per part, trains the coarse
quantizer (and SQ/PQ codes) on a sample read back from those parts, and writes the inverted lists into
one ``lists.ivfdata`` in faiss's ``OnDiskInvertedLists`` layout (``clipsuite.core.ivf_lists``). Searching
maps that file read-only; only the probed lists are paged in, and let go past ``mapped_budget``.

A search assigns each query to cells with the query optionally moved across the modality gap
(``shift.npy``: image mean minus query mean, learnt by tuning), then scans those cells with the
query itself, so the scores and order are the true cosines; ``rerank`` > 1 takes ``rerank * k``
candidates from quantised codes and re-scores them exactly from the float16 vectors. ``where``
filters by a DuckDB predicate on the metadata; when few rows match, those rows are scanned exactly.

Building (``build_store``, ``add_to_store``, ``merge_stores``) lives in ``clipsuite.core.index_build``.

Folder: ``index.json`` (``format_version`` 2: config, parts, tuning record), ``trained.faiss`` (the
empty trained index, reused by ``add`` and per-node builds), ``index.faiss`` + ``lists.ivfdata``
(ivf) or ``index.faiss`` (hnsw, held in memory), ``vectors-*.npy``, ``metadata-*.arrow``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from clipsuite.core.errors import InputError, first_line
from clipsuite.core.index_meta import MetadataTable
from clipsuite.core.index_plan import code_bytes
from clipsuite.core.index_sources import ArraySource as ArraySource  # re-exported: built from here before
from clipsuite.core.index_sources import ShardSource as ShardSource
from clipsuite.core.index_sources import VectorSource as VectorSource
from clipsuite.core.json_files import read_json
from clipsuite.core.mapped_rows import mapped_file_bytes, read_block, release, release_address

FORMAT_VERSION = 2
FAISS: Any = faiss  # the swig names faiss's type stubs leave out (SearchParametersHNSW, ...)
CONFIG_FILE, TRAINED_FILE, INDEX_FILE, LISTS_FILE, SHIFT_FILE = (
    "index.json", "trained.faiss", "index.faiss", "lists.ivfdata", "shift.npy")
KINDS = ("exact", "ivf", "hnsw")
MATCH_CACHE_BYTES = 256 * 2**20  # a filter's matching vectors kept in memory up to this size
MAPPED_BUDGET = 2**30  # pages of the mapped lists and vectors a serving process keeps before letting them go
QUERY_CHUNK = 16  # queries searched between two budget checks (16 x nprobe 128 x ~0.3 MB lists at 10M: ~0.7 GB)
REBUILD = "rebuild it with `clipsuite index build EMBEDDINGS --output {folder}`"


@dataclass
class StoreConfig:
    """How the store is built and searched; ``None`` sizes come from the data or the memory budget."""

    kind: str = "exact"
    codes: str = "flat"  # flat | sq8 | pq<m>: what the inverted lists hold
    nlist: int | None = None
    nprobe: int = 32  # for text queries when tuned on texts (``shift=True`` searches)
    image_nprobe: int | None = None  # for in-distribution (image) queries, when tuning measured it
    rerank: int = 1  # candidates per wanted hit re-scored exactly from float16 (1: off)
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    train_size: int = 100_000
    block_rows: int = 65_536
    max_memory: int | None = None
    model: str | None = None
    dim: int = 0
    tuning: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown index kind '{self.kind}' (choose from {', '.join(KINDS)})")
        code_bytes(self.codes, max(self.dim, 1))  # checks the name
        for name in ("nprobe", "rerank", "ef_search", "block_rows"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---- small helpers ---------------------------------------------------------------------------------
@contextmanager
def faiss_quiet() -> Iterator[None]:
    """faiss's on-disk lists print progress lines ("resizing ...", "updating ondisk filename") from C++
    straight to the process's stdout/stderr; a CLI prints its own results, so those go to /dev/null."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def normalized(vectors: Any, dim: int | None, what: str) -> np.ndarray:
    """A float32 [N, D] copy with unit rows; one line for a wrong shape, NaN or a zero vector."""
    if hasattr(vectors, "detach"):  # a torch tensor, without importing torch here
        vectors = vectors.detach().float().cpu().numpy()
    array = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    if array.ndim != 2:
        raise InputError(f"{what}: expected a [N, D] matrix, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise InputError(f"{what}: dimension {array.shape[1]} does not match the index dimension {dim}")
    if not np.isfinite(array).all():
        raise InputError(f"{what}: vectors contain NaN or infinity")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{what}: {int((norms == 0).sum())} zero vector(s) have no direction")
    array /= norms
    return array


def _top_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per line of (scores, rows), -inf / -1 padded, best first."""
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    scores, rows = np.take_along_axis(scores, part, 1), np.take_along_axis(rows, part, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


def _on_disk_span(index: faiss.Index | None) -> tuple[int, int] | None:
    """(address, length) of the mapping of an IVF index's on-disk lists, or None (lists in memory)."""
    if index is None:
        return None
    try:
        lists: Any = faiss.downcast_InvertedLists(FAISS.extract_index_ivf(index).invlists)
    except RuntimeError:  # not an IVF index (hnsw)
        return None
    if not isinstance(lists, FAISS.OnDiskInvertedLists) or lists.totsize == 0:
        return None
    return int(faiss.rev_swig_ptr(lists.ptr, 1).ctypes.data), int(lists.totsize)


def _ids_bitmap(ids: np.ndarray, total: int) -> np.ndarray:
    bits = np.zeros((total + 7) // 8, dtype=np.uint8)
    np.bitwise_or.at(bits, ids >> 3, (1 << (ids & 7)).astype(np.uint8))
    return bits


# ---- the store ---------------------------------------------------------------------------------------
@dataclass
class Part:
    rows: int
    vectors: str
    metadata: str


class IndexStore:
    """An opened format-2 index folder. ``search`` returns ``(scores, rows)``; ``rows_metadata`` the dicts."""

    def __init__(self, folder: Path, config: StoreConfig, parts: list[Part], index: faiss.Index | None,
                 shift: np.ndarray | None) -> None:
        self.folder, self.config, self.parts, self.index, self.shift = folder, config, parts, index, shift
        self.offsets = np.cumsum([0] + [p.rows for p in parts])
        self.vectors = [np.load(folder / p.vectors, mmap_mode="r") for p in parts]
        tables = [MetadataTable(folder / p.metadata) for p in parts]
        self.metadata = tables[0] if len(tables) == 1 else _concat_tables(tables)
        self._bitmap_cache: tuple[str, np.ndarray] | None = None
        self._where_cache: dict[str, np.ndarray] = {}
        self._vectors_cache: tuple[str, np.ndarray] | None = None
        self.mapped_budget = MAPPED_BUDGET
        self._lists_span = _on_disk_span(index)
        self._mapped_mark = mapped_file_bytes()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return self.config.dim

    # ---- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> IndexStore:
        folder = Path(folder)
        raw = read_store_config(folder)
        config = StoreConfig.from_dict(raw)
        parts = [Part(**p) for p in raw.get("parts", [])]
        for part in parts:
            for name in (part.vectors, part.metadata):
                if not (folder / name).is_file():
                    raise InputError(f"{folder}: not a complete index folder ({name} is missing); "
                                     + REBUILD.format(folder=folder))
        index = None
        if config.kind != "exact":
            try:  # ONDISK_SAME_DIR: the lists file is found beside index.faiss wherever the folder moved
                with faiss_quiet():  # read-only: faiss opens and maps the lists file without write access
                    index = faiss.read_index(str(folder / INDEX_FILE),
                                             faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError as error:
                raise InputError(f"{folder / INDEX_FILE}: not a readable faiss index "
                                 f"({first_line(error, 120)})") from None
        shift = np.load(folder / SHIFT_FILE) if (folder / SHIFT_FILE).is_file() else None
        store = cls(folder, config, parts, index, shift)
        count = int(raw.get("count", -1))
        if len(store) != count or len(store.metadata) != count or (index is not None and index.ntotal != count):
            raise InputError(f"{folder}: parts hold {len(store)} vectors, metadata {len(store.metadata)} rows, "
                             f"index.json says {count}; " + REBUILD.format(folder=folder))
        return store

    # ---- reading vectors -------------------------------------------------------------------------
    def gather(self, rows: np.ndarray, let_go: bool = False) -> np.ndarray:
        """float32 vectors of global ``rows`` (sorted reads per part, for the page cache). A large gather (a
        training sample spread over every page of the parts) reads one window of ``block_rows`` part rows at a
        time and lets its pages go before the next (10M x 512, a 639k sample: VmHWM 1.4 GB, of which the
        sample 1.3 GB; reading it whole first mapped all 10 GB); ``let_go`` does so for any gather (one
        block of a filtered exact scan, which walks every matching row once)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.dim), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        # windows bound what is mapped at once: the kernel maps up to 64 KB around each row read, so 65k rows
        # spread over a 10M part mapped 4 GB before the first let-go (10M serving run)
        windowed = let_go or rows.size > self.config.block_rows
        for number, vectors in enumerate(self.vectors):
            first, count = int(self.offsets[number]), vectors.shape[0]
            window = self.config.block_rows if windowed else max(count, 1)  # part rows mapped at a time
            for low in range(first, first + count, window):
                lo, hi = np.searchsorted(sorted_rows, [low, min(low + window, first + count)])
                if hi > lo:
                    out[order[lo:hi]] = vectors[sorted_rows[lo:hi] - first]
                    if windowed:  # the span read, not the whole window
                        release(vectors, int(sorted_rows[lo]) - first, int(sorted_rows[hi - 1]) - first + 1)
        return out

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first global row, float32 block) over every stored vector; each block's pages are let go once
        copied (``mapped_rows``), so a full pass does not grow the process by the size of the parts."""
        size = block_rows or self.config.block_rows
        for number, vectors in enumerate(self.vectors):
            for start in range(0, vectors.shape[0], size):
                yield int(self.offsets[number]) + start, read_block(vectors, start, start + size)

    def release_pages(self) -> None:
        """Let go of every mapped page of the lists and vectors this process holds (they stay in the page
        cache: touching them again is a minor fault)."""
        for vectors in self.vectors:
            release(vectors)
        if self._lists_span is not None:
            release_address(*self._lists_span)
        self._mapped_mark = mapped_file_bytes()

    def _keep_mapped_pages_in_budget(self) -> None:
        """Searches page in the lists they probe and the vectors they re-rank; over a long serving run that
        grew to the whole folder (15.2 GB of RSS serving 10M x 512). Past ``mapped_budget`` bytes more
        than after the last let-go, they are let go."""
        now = mapped_file_bytes()
        if now is not None and self._mapped_mark is not None and now - self._mapped_mark > self.mapped_budget:
            self.release_pages()

    # ---- search ----------------------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, where: str | None = None, nprobe: int | None = None,
               rerank: int | None = None, ef_search: int | None = None, shift: bool = True,
               exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, rows) per query, cosine, best first; -inf / -1 where fewer exist.

        ``shift``: the queries are of the tuned kind (text): cells are chosen with the learnt modality-gap
        shift and the tuned nprobe; ``False`` for in-distribution (image) queries: no shift, ``image_nprobe``.
        """
        if k < 1:
            raise InputError(f"search: k must be at least 1, got {k}")
        q = normalized(queries, self.dim, "search")
        allowed = self.matching_rows(where) if where else None
        if allowed is not None and allowed.size == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        if nprobe is None:
            nprobe = self.config.nprobe if shift or self.config.image_nprobe is None else self.config.image_nprobe
        nprobe = int(nprobe)
        if exact or self.index is None or (allowed is not None and self._exact_is_cheaper(allowed.size, nprobe)):
            # bounded on its own: full scans and large gathers let each block go, matches are kept in RAM
            return self.exact_search(q, k, allowed, self._matching_vectors(where, allowed))
        factor = int(rerank or self.config.rerank)
        answers = []
        for start in range(0, len(q), QUERY_CHUNK):  # a budget check between chunks bounds the pages mapped
            answers.append(self._approximate(q[start:start + QUERY_CHUNK], k, factor, nprobe, ef_search, allowed,
                                             where, shift))
            self._keep_mapped_pages_in_budget()
        return np.vstack([a[0] for a in answers]), np.vstack([a[1] for a in answers])

    def _approximate(self, q: np.ndarray, k: int, factor: int, nprobe: int, ef_search: int | None,
                     allowed: np.ndarray | None, where: str | None, shift: bool) -> tuple[np.ndarray, np.ndarray]:
        want = min(len(self), k * factor) if factor > 1 else k
        assert self.index is not None  # the exact path took the store without an index
        if self.config.kind == "hnsw":
            params: Any = FAISS.SearchParametersHNSW(efSearch=max(int(ef_search or self.config.ef_search), want))
            if allowed is not None:
                params.sel = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(self._bitmap(where or "", allowed)))
            scores, rows = self.index.search(q, want, params=params)
        else:
            scores, rows = self._ivf_search(q, want, nprobe, allowed, where, shift)
        if factor > 1:
            scores = self._rescore(q, rows)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        return _top_k(scores, rows.astype(np.int64), k)

    def _ivf_search(self, q: np.ndarray, want: int, nprobe: int, allowed: np.ndarray | None, where: str | None,
                    shift: bool) -> tuple[np.ndarray, np.ndarray]:
        ivf: Any = FAISS.extract_index_ivf(self.index)
        if allowed is not None:  # the matches are spread thinner: visit more cells to find k of them
            nprobe = int(math.ceil(nprobe * len(self) / allowed.size))
        nprobe = min(nprobe, ivf.nlist)
        probe = q
        if shift and self.shift is not None:  # only where to look moves; scores use the query itself
            probe = normalized(q + self.shift[None, :], None, "search")
        coarse_scores, cells = ivf.quantizer.search(probe, nprobe)
        params = FAISS.SearchParametersIVF(nprobe=nprobe)
        if allowed is not None:
            params.sel = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(self._bitmap(where or "", allowed)))
        scores = np.empty((len(q), want), dtype=np.float32)
        rows = np.empty((len(q), want), dtype=np.int64)
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        coarse_scores = np.ascontiguousarray(coarse_scores, dtype=np.float32)
        ivf.nprobe = nprobe  # the swig call (the Python wrapper takes no params, hence no selector)
        ivf.search_preassigned_c(len(q), faiss.swig_ptr(q), want, faiss.swig_ptr(cells), faiss.swig_ptr(coarse_scores),
                                 faiss.swig_ptr(scores), faiss.swig_ptr(rows), False, params)
        return scores, rows

    def _exact_is_cheaper(self, matches: int, nprobe: int) -> bool:
        """Scan the matches when that reads fewer vectors than the filtered IVF walk would (it visits
        about nprobe/selectivity cells of n/nlist vectors each): selectivity <= sqrt(nprobe/nlist)."""
        if self.config.kind != "ivf":
            return matches <= 10 * self.config.block_rows
        nlist = FAISS.extract_index_ivf(self.index).nlist
        return matches / len(self) <= math.sqrt(min(1.0, nprobe / nlist))

    def _bitmap(self, where: str, allowed: np.ndarray) -> np.ndarray:
        if self._bitmap_cache is None or self._bitmap_cache[0] != where:
            self._bitmap_cache = (where, _ids_bitmap(allowed, len(self)))
        return self._bitmap_cache[1]

    def _rescore(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        valid = rows >= 0
        unique, inverse = np.unique(rows[valid], return_inverse=True)
        vectors = self.gather(unique)
        scores = np.full(rows.shape, -np.inf, dtype=np.float32)
        flat_query = np.repeat(np.arange(len(q)), rows.shape[1]).reshape(rows.shape)[valid]
        scores[valid] = np.einsum("nd,nd->n", vectors[inverse], q[flat_query])
        return scores

    def _matching_vectors(self, where: str | None, allowed: np.ndarray | None) -> np.ndarray | None:
        """The matching rows' vectors as float32, kept per predicate when they fit ``MATCH_CACHE_BYTES``:
        gathering them from the mapped file on every query cost 47 ms for 10k rows at 1M x 512."""
        if where is None or allowed is None or allowed.size * self.dim * 4 > MATCH_CACHE_BYTES:
            return None
        if self._vectors_cache is None or self._vectors_cache[0] != where:
            self._vectors_cache = (where, self.gather(allowed))
        return self._vectors_cache[1]

    def exact_search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None,
                     vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the float16 vectors (or only the ``allowed`` rows, whose float32 ``vectors``
        may be given), one block at a time."""
        best_scores = np.full((len(q), k), -np.inf, np.float32)
        best_rows = np.full((len(q), k), -1, np.int64)
        if allowed is not None and vectors is not None:
            blocks: Iterable[tuple[np.ndarray, np.ndarray]] = [(allowed, vectors)]
        elif allowed is None:
            blocks = ((np.arange(start, start + len(block)), block) for start, block in self.blocks())
        else:
            size = self.config.block_rows
            blocks = ((allowed[i:i + size], self.gather(allowed[i:i + size], let_go=True))
                      for i in range(0, allowed.size, size))
        for rows, block in blocks:
            scores = q @ block.T
            kk = min(k, scores.shape[1])
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            best_scores, best_rows = _top_k(np.hstack([best_scores, np.take_along_axis(scores, part, 1)]),
                                            np.hstack([best_rows, rows[part]]), k)
        return best_scores, best_rows

    def matching_rows(self, where: str) -> np.ndarray:
        """Sorted rows satisfying ``where``; the last few predicates' answers are kept (a DuckDB scan of
        every row per query would cost more than the search)."""
        if where not in self._where_cache:
            if len(self._where_cache) >= 8:
                self._where_cache.pop(next(iter(self._where_cache)))
            self._where_cache[where] = self.metadata.where(where)
        return self._where_cache[where]

    def rows_metadata(self, rows: np.ndarray) -> list[list[dict[str, Any] | None]]:
        """The metadata dicts of result ``rows`` [Q, k]; only those rows are read."""
        valid = np.unique(rows[rows >= 0])
        found = dict(zip(valid.tolist(), self.metadata.rows(valid))) if valid.size else {}
        return [[found[r] if r >= 0 else None for r in line] for line in rows.tolist()]

    def set_tuned(self, nprobe: int | None = None, ef_search: int | None = None,
                  shift: np.ndarray | None | str = "keep", image_nprobe: int | None = None) -> None:
        """Change the search settings; ``shift`` an array, ``None`` (no shift) or "keep"."""
        if nprobe is not None:
            self.config.nprobe = int(nprobe)
        if image_nprobe is not None:
            self.config.image_nprobe = int(image_nprobe)
        if ef_search is not None:
            self.config.ef_search = int(ef_search)
        if not isinstance(shift, str):
            self.shift = shift


def _concat_tables(tables: list[MetadataTable]) -> MetadataTable:
    import pyarrow as pa

    merged = MetadataTable.__new__(MetadataTable)
    merged.path = tables[0].path
    try:  # columns a later part added are null in the earlier ones
        merged.table = pa.concat_tables([t.table for t in tables], promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InputError(f"{tables[0].path.parent}: metadata parts disagree on column types ({str(error)[:160]})"
                         ) from None
    merged._json = set().union(*(t._json for t in tables))
    return merged


def read_store_config(folder: Path) -> dict[str, Any]:
    """index.json of a format-2 folder; one line for anything else (missing, older, newer, damaged)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: index folder not found")
    if not (folder / CONFIG_FILE).is_file():
        raise InputError(f"{folder}: not an index folder ({CONFIG_FILE} is missing)")
    raw = read_json(folder / CONFIG_FILE)
    if not isinstance(raw, dict) or "dim" not in raw or "kind" not in raw:
        raise InputError(f"{folder / CONFIG_FILE}: not an index config (needs 'kind' and 'dim')")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"{folder}: index format {version} from another clipsuite version (this one reads "
                         f"{FORMAT_VERSION}); " + REBUILD.format(folder=folder))
    return raw


def search_many(stores: Sequence[IndexStore], queries: Any, k: int = 10, **options: Any,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` over several index folders searched apart: (scores, rows, which store) per query.

    Each store answers with its own settings (and ``options``, as ``IndexStore.search``); scores are
    cosines in every store, so they compare. The stores must hold vectors of one model and dimension."""
    if not stores:
        raise InputError("search: no index folders given")
    first = stores[0]
    for store in stores[1:]:
        if store.dim != first.dim or (store.config.model and first.config.model
                                      and store.config.model != first.config.model):
            raise InputError(f"{store.folder}: holds {store.dim}-d '{store.config.model}' vectors, {first.folder} "
                             f"{first.dim}-d '{first.config.model}'; search indexes of one model together")
    answers = [store.search(queries, k, **options) for store in stores]
    scores = np.hstack([a[0] for a in answers])
    rows = np.hstack([a[1] for a in answers])
    which = np.hstack([np.full(a[1].shape, number, dtype=np.int64) for number, a in enumerate(answers)])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1),
            np.take_along_axis(which, order, 1))
