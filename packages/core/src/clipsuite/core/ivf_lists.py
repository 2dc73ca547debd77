"""An IVF index's inverted lists written and read with plain file I/O, in faiss's on-disk layout.

faiss's own recipe (``OnDiskInvertedLists.merge_from_multiple``) merges lists already in memory into a file
it writes through a writable memory map: building 10M x 512 SQ8 that way held the 5.2 GB of block lists as
the process's own memory and mapped the 5.2 GB output on top (VmHWM 15.6 GB). Here a build learns each
row's cell first (an assignment pass), lays the lists out back to back from their sizes, and writes each
block's entries to their places with ``pwrite``: the process holds one block, and written pages go to the
page cache, never into the process. The index file gets faiss's "ilod" section for that layout (what
``write_index`` writes for ``OnDiskInvertedLists``), so faiss maps and searches the file as its own.

Layout of ``lists.ivfdata``: list ``c`` starts at ``offsets[c]`` with ``capacities[c]`` codes, then as many
int64 ids; ``sizes[c]`` of them are used. The "ilod" section: fourcc, nlist, code_size, the (size,
capacity, offset) table, the free slots (none here), the file name, the total size; all little-endian u64.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import faiss
import numpy as np

FOURCC = b"ilod"
ID_BYTES = 8  # faiss idx_t


@dataclass
class ListLayout:
    """Where each inverted list lies in the data file."""

    sizes: np.ndarray
    capacities: np.ndarray
    offsets: np.ndarray
    code_size: int

    @classmethod
    def packed(cls, sizes: np.ndarray, code_size: int) -> ListLayout:
        """Lists back to back, each exactly as large as its entries."""
        sizes = np.asarray(sizes, dtype=np.int64)
        spans = sizes * (code_size + ID_BYTES)
        offsets = np.concatenate([[0], np.cumsum(spans)[:-1]]).astype(np.int64)
        return cls(sizes, sizes.copy(), offsets, int(code_size))

    @property
    def nlist(self) -> int:
        return int(self.sizes.size)

    @property
    def totsize(self) -> int:
        used = self.capacities > 0  # an unused list's offset may be unset (~0)
        ends = self.offsets[used] + self.capacities[used] * (self.code_size + ID_BYTES)
        return int(ends.max()) if ends.size else 0

    def codes_at(self, cell: int) -> int:
        return int(self.offsets[cell])

    def ids_at(self, cell: int) -> int:
        return int(self.offsets[cell] + self.capacities[cell] * self.code_size)


def section(layout: ListLayout, filename: str) -> bytes:
    """The "ilod" section faiss reads for lists laid out as ``layout`` in ``filename``."""
    table = np.stack([layout.sizes, layout.capacities, layout.offsets], axis=1).astype(np.int64).view("<u8")
    name = filename.encode()
    return b"".join([FOURCC, struct.pack("<QQQ", layout.nlist, layout.code_size, layout.nlist), table.tobytes(),
                     struct.pack("<Q", 0), struct.pack("<Q", len(name)), name, struct.pack("<Q", layout.totsize)])


def read_section(data: bytes, nlist: int, code_size: int) -> ListLayout:
    """The layout in an index file's "ilod" section (the last section of an IVF index file)."""
    head = FOURCC + struct.pack("<QQQ", nlist, code_size, nlist)
    at = data.rfind(head)
    if at < 0:
        raise ValueError("no on-disk inverted lists section")
    at += len(head)
    table = np.frombuffer(data, dtype="<u8", count=nlist * 3, offset=at).reshape(nlist, 3).astype(np.int64)
    at += nlist * 24
    (slots,) = struct.unpack_from("<Q", data, at)
    at += 8 + 16 * slots  # free space inside the file: nothing to read there
    (name_length,) = struct.unpack_from("<Q", data, at)
    at += 8 + name_length + 8
    if at != len(data):
        raise ValueError("the on-disk inverted lists section does not end the file")
    return ListLayout(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), code_size)


def index_bytes(trained: faiss.Index, layout: ListLayout, filename: str) -> bytes:
    """``trained`` (an empty IVF index) holding the lists of ``layout`` in ``filename``, as an index file.

    faiss writes the index with empty on-disk lists; their section is swapped for ``layout``'s. The empty
    section is checked byte for byte first, so a faiss that writes another layout is refused, not misread."""
    index: Any = faiss.clone_index(trained)
    ivf: Any = faiss.extract_index_ivf(index)
    if (ivf.nlist, ivf.code_size) != (layout.nlist, layout.code_size):
        raise ValueError(f"lists for {layout.nlist} cells of {layout.code_size} bytes, the index has "
                         f"{ivf.nlist} of {ivf.code_size}")
    placeholder: Any = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, filename)  # touches no file
    ivf.replace_invlists(placeholder, True)
    placeholder.this.disown()
    index.ntotal = ivf.ntotal = int(layout.sizes.sum())
    written = faiss.serialize_index(index).tobytes()
    nothing = np.zeros(layout.nlist, dtype=np.int64)
    empty = section(ListLayout(nothing, nothing, nothing - 1, layout.code_size), filename)  # unset offset: ~0
    if not written.endswith(empty):
        raise RuntimeError(f"faiss {faiss.__version__} writes on-disk inverted lists in a layout clipsuite does "
                           "not know; report it with the faiss version")
    return written[:-len(empty)] + section(layout, filename)


class ListsWriter:
    """Fills the file of a packed layout; a cell's entries keep the order they are put in."""

    def __init__(self, path: Path, layout: ListLayout) -> None:
        self.path, self.layout = path, layout
        self.filled = np.zeros(layout.nlist, dtype=np.int64)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(self.fd, layout.totsize)

    def put(self, cell: int, codes: np.ndarray, ids: np.ndarray) -> None:
        count, done = len(ids), int(self.filled[cell])
        if done + count > self.layout.capacities[cell]:
            raise RuntimeError(f"list {cell}: {done + count} entries for a capacity of {self.layout.capacities[cell]}")
        size = self.layout.code_size
        os.pwrite(self.fd, np.ascontiguousarray(codes, dtype=np.uint8).data, self.layout.codes_at(cell) + done * size)
        os.pwrite(self.fd, np.ascontiguousarray(ids, dtype="<i8").data, self.layout.ids_at(cell) + done * ID_BYTES)
        self.filled[cell] += count

    def put_block(self, cells: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> None:
        """Entries of one block in any order: grouped by cell (stable, so ids keep their order in a cell)."""
        order = np.argsort(cells, kind="stable")
        cells, codes, ids = cells[order], codes[order], ids[order]
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(cells)]):
            self.put(int(cells[start]), codes[start:stop], ids[start:stop])

    def __enter__(self) -> ListsWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None,
                 ) -> None:
        try:
            if kind is None and not np.array_equal(self.filled, self.layout.sizes):
                wrong = int(np.flatnonzero(self.filled != self.layout.sizes)[0])
                raise RuntimeError(f"list {wrong}: {self.filled[wrong]} entries written, {self.layout.sizes[wrong]} "
                                   "laid out")
        finally:
            os.close(self.fd)


class ListsReader:
    """Reads the lists of an existing on-disk IVF index (its index file and its data file) with ``pread``."""

    def __init__(self, index_file: Path, lists_file: Path, nlist: int, code_size: int) -> None:
        self.layout = read_section(index_file.read_bytes(), nlist, code_size)
        self.fd = os.open(lists_file, os.O_RDONLY)

    def entries(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes [n, code_size] uint8, ids [n] int64) of ``cell``."""
        count, size = int(self.layout.sizes[cell]), self.layout.code_size
        codes = np.frombuffer(os.pread(self.fd, count * size, self.layout.codes_at(cell)), dtype=np.uint8)
        ids = np.frombuffer(os.pread(self.fd, count * ID_BYTES, self.layout.ids_at(cell)), dtype="<i8")
        return codes.reshape(count, size), ids.astype(np.int64)

    def close(self) -> None:
        os.close(self.fd)


def encode(trained: faiss.Index, vectors: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The list codes of ``vectors`` assigned to ``cells`` (what faiss's ``add`` stores for them)."""
    ivf: Any = faiss.extract_index_ivf(trained)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = np.ascontiguousarray(cells, dtype=np.int64)
    codes = np.empty((len(vectors), ivf.code_size), dtype=np.uint8)
    ivf.encode_vectors(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(cells), faiss.swig_ptr(codes))
    return codes
