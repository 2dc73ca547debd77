"""Choose an index for a memory budget (``--max-memory 8G``), in the spirit of autofaiss.

autofaiss's ``get_optimal_index_keys_v2`` (for a memory-mappable index): a flat scan below ~10k
vectors, ``IVF{n},Flat`` while the uncompressed codes fit the budget (and n < 1M), else product
quantisation with the largest code that fits, cells ~4 sqrt(n) rounded to a power of two. We add
``SQ8`` (one byte per dimension, 4x smaller, nearly lossless on unit vectors) between the two, and
re-rank quantised candidates exactly from the float16 vectors kept on disk.

What the budget bounds: the index's resident part when serving (coarse centroids, ids and codes,
which are memory-mapped but must fit the page cache to be fast) and the peak while building (the
training sample, k-means' centroids, one block of vectors). The float16 vectors used for exact
re-ranking stay on disk; only the candidates' rows are read. Torch-free: the CLI checks a budget
before anything heavy is imported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from clipsuite.core.errors import InputError

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
PQ_SIZES = (256, 128, 64, 48, 32, 24, 16, 8, 4)  # autofaiss's code sizes, largest first
EXACT_BELOW = 10_000  # under this a flat scan is as fast as anything and needs no training
IVF_FLAT_BELOW = 1_000_000
MIN_BLOCK = 1024
ID_BYTES = 8  # an inverted list stores an int64 id beside each code


def parse_memory(text: str, flag: str = "--max-memory") -> int:
    """'8G', '512M', '1.5g', '4096' (bytes) -> bytes; one line naming the flag otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)[iI]?[bB]?\s*", str(text))
    if not match:
        raise InputError(f"{flag} {text!r}: not a size (write e.g. 8G, 512M or a number of bytes)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1:
        raise InputError(f"{flag} {text!r}: must be positive")
    return int(value)


def format_memory(size: float) -> str:
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if size >= scale:
            return f"{math.ceil(size / scale * 10) / 10:g}{unit}"
    return f"{int(size)}"


def nlist_for(n: int) -> int:
    """~4 sqrt(n) rounded to a power of two (autofaiss), at least 39 training points per cell."""
    if n < 39:
        return 1
    target = 2 ** round(math.log2(4 * math.sqrt(n)))
    return int(max(1, min(target, n // 39)))


@dataclass
class Plan:
    kind: str  # exact | ivf
    codes: str  # flat | sq8 | pq{m}
    nlist: int | None
    train_size: int
    block_rows: int
    rerank: int  # candidates per wanted hit re-scored from float16 (1: none)
    serving_bytes: int
    building_bytes: int


def code_bytes(codes: str, dim: int) -> int:
    if codes == "flat":
        return 4 * dim
    if codes == "sq8":
        return dim
    if codes.startswith("pq"):
        return int(codes[2:])
    raise InputError(f"unknown --codes '{codes}' (choose flat, sq8 or pq<m> such as pq64)")


def _estimate(n: int, dim: int, codes: str, nlist: int, train: int, block: int) -> tuple[int, int]:
    centroids = nlist * dim * 4
    serving = centroids + n * (code_bytes(codes, dim) + ID_BYTES)
    pq_tables = 256 * dim * 4 if codes.startswith("pq") else 0
    # build: the sample and its k-means assignment, the centroids twice, one block (float16 read +
    # float32 copy + codes) and the faiss block index being written
    building = train * dim * 4 + 2 * centroids + pq_tables + block * (dim * 6 + code_bytes(codes, dim) + ID_BYTES)
    return serving, building


def candidate_codes(dim: int) -> list[str]:
    return ["flat", "sq8"] + [f"pq{m}" for m in PQ_SIZES if m < dim and dim % m == 0]


def plan_index(n: int, dim: int, budget: int | None, train_size: int = 100_000, block_rows: int = 65_536) -> Plan:
    """The index for ``n`` x ``dim`` vectors under ``budget`` bytes (None: no limit, IVF flat)."""
    if n < EXACT_BELOW:
        serving, building = n * dim * 2, min(n, block_rows) * dim * 6
        if budget is None or max(serving, building) <= budget:
            return Plan("exact", "flat", None, 0, block_rows, 1, serving, building)
    nlist = nlist_for(n)
    options = candidate_codes(dim)
    if n >= IVF_FLAT_BELOW and budget is not None:
        options.remove("flat")  # autofaiss: past ~1M vectors quantise when a budget is given
    for codes in options:
        train = min(n, max(train_size, 39 * nlist))
        block = block_rows
        serving, building = _estimate(n, dim, codes, nlist, train, block)
        while budget is not None and building > budget and (train > 39 * nlist or block > MIN_BLOCK):
            train = max(39 * nlist, train // 2)  # a smaller sample and smaller blocks before cruder codes
            block = max(MIN_BLOCK, block // 2)
            serving, building = _estimate(n, dim, codes, nlist, train, block)
        if budget is None or (serving <= budget and building <= budget):
            rerank = 1 if codes == "flat" else 10
            return Plan("ivf", codes, nlist, min(n, train), block, rerank, serving, building)
    smallest = min(max(_estimate(n, dim, c, nlist, min(n, 39 * nlist), MIN_BLOCK)) for c in candidate_codes(dim))
    if n < EXACT_BELOW:
        smallest = min(smallest, max(n * dim * 2, min(n, MIN_BLOCK) * dim * 6))
    raise InputError(f"--max-memory {format_memory(budget or 0)} is too small for {n} x {dim} vectors; "
                     f"the smallest that works is {format_memory(smallest)}")
