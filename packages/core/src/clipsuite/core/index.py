"""An embedding index on faiss: exact or approximate cosine search with a metadata table.

Vectors are L2-normalised on the way in, so inner product is cosine similarity. Kinds:

- ``exact``  ``IndexFlatIP``: brute force, the reference; best up to ~100k vectors.
- ``ivf``    ``IVF{nlist},Flat``: k-means cells, ``nprobe`` of them searched; the default for large sets.
- ``ivfpq``  ``IVF{nlist},PQ{m}x8``: the same with product-quantised codes (~32x less memory, lossy: lower recall).
- ``hnsw``   ``HNSW{M},Flat``: graph search tuned by ``ef_search``; no training, slow to build on big sets.

A saved index is a folder: ``index.faiss`` + ``metadata.jsonl`` (one JSON object per row: ``id``,
``path``, any other fields) + ``index.json`` (the config). The folder is staged next to the target
and swapped in (``clipsuite.core.staging``), so a crash leaves the old index or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
import torch

from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import InputError, first_line
from clipsuite.core.staging import staged_folder
from clipsuite.core.tabular import iter_jsonl

KINDS = ("exact", "ivf", "ivfpq", "hnsw")
INDEX_FILE, METADATA_FILE, CONFIG_FILE = "index.faiss", "metadata.jsonl", "index.json"
FORMAT_VERSION = 1


@dataclass
class IndexConfig:
    """How an index is built and searched. ``None`` sizes are chosen from the data at build time."""

    kind: str = "exact"
    dim: int = 0
    nlist: int | None = None  # IVF cells; default ~4 sqrt(n), at least 39 training points per cell
    nprobe: int = 32  # IVF cells visited per query
    pq_m: int | None = None  # PQ sub-quantisers for ivfpq; default dim / 8 (PQ training is slow)
    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 80
    ef_search: int = 128
    train_size: int = 100_000  # vectors sampled to train IVF k-means (faiss wants 39-256 per cell)
    model: str | None = None  # the model spec that produced the embeddings, for text/image queries
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown index kind '{self.kind}' (choose from {', '.join(KINDS)})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class SearchResult:
    """Per query: ``k`` rows of the index, their cosine scores and metadata, best first.

    Where fewer than ``k`` neighbours exist (tiny index, few IVF cells probed) rows are -1,
    scores -inf and metadata ``None``.
    """

    rows: np.ndarray  # [Q, k] int64
    scores: np.ndarray  # [Q, k] float32
    metadata: list[list[dict[str, Any] | None]]

    @property
    def ids(self) -> list[list[Any]]:
        return [[m.get("id") if m is not None else None for m in row] for row in self.metadata]

    def records(self) -> list[dict[str, Any]]:
        """Flat rows (query, rank, score, metadata fields) for a table, JSON or CSV."""
        out = []
        for q, (rows, scores, metas) in enumerate(zip(self.rows, self.scores, self.metadata)):
            for rank, (row, score, meta) in enumerate(zip(rows, scores, metas)):
                if row >= 0:
                    own = {"query": q, "rank": rank + 1, "score": float(score)}
                    out.append({**own, **{k: v for k, v in (meta or {}).items() if k not in own}})
        return out


def _as_matrix(vectors: torch.Tensor | np.ndarray, dim: int | None, what: str, normalize: bool = True,
               ) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to("cpu", torch.float32).numpy()
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InputError(f"{what}: expected a [N, D] matrix, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise InputError(f"{what}: dimension {array.shape[1]} does not match the index dimension {dim}")
    if not np.isfinite(array).all():
        raise InputError(f"{what}: vectors contain NaN or infinity")
    if normalize:  # on a copy: the caller's array stays as it was
        array = array.copy()
        faiss.normalize_L2(array)
    return array


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) cells (faiss guidance), but never fewer than 39 training points per cell."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


class EmbeddingIndex:
    """A faiss index over normalised embeddings plus one metadata dict per row."""

    def __init__(self, config: IndexConfig, index: faiss.Index, metadata: list[dict[str, Any]]) -> None:
        self.config = config
        self.index = index
        self.metadata = metadata

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, embeddings: torch.Tensor | np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
              config: IndexConfig | None = None, **overrides: Any) -> EmbeddingIndex:
        """Build (and train, for IVF) an index over ``embeddings`` [N, D]."""
        matrix = _as_matrix(embeddings, None, "build")
        return cls.build_from_chunks(lambda: [matrix], [matrix.shape[0]], matrix.shape[1], metadata,
                                     config, _normalized=True, **overrides)

    @classmethod
    def build_from_chunks(cls, chunks: Callable[[], Iterable[np.ndarray]], sizes: Sequence[int], dim: int,
                          metadata: Sequence[dict[str, Any]] | None = None, config: IndexConfig | None = None,
                          _normalized: bool = False, **overrides: Any) -> EmbeddingIndex:
        """Build from vectors arriving in chunks (e.g. read from shards); ``sizes`` gives each chunk's rows.

        ``chunks()`` is called once per pass (a sampling pass to train IVF, then the adding pass), so
        only one chunk at a time sits in memory next to the index itself.
        """
        fresh = not _normalized  # build() normalised its copy already: a second 1M x 512 copy is 2 GB
        config = IndexConfig(**{**asdict(config or IndexConfig()), **overrides})
        config.dim = int(dim)
        total = int(sum(sizes))
        if total == 0:
            raise InputError("build: no embeddings to index")
        rows = list(metadata) if metadata is not None else [{"id": i} for i in range(total)]
        if len(rows) != total:
            raise InputError(f"build: {total} embeddings but {len(rows)} metadata rows")
        index = cls._make_index(config, total)
        if not index.is_trained:
            index.train(cls._training_sample(chunks(), sizes, config))
        added = 0
        for chunk in chunks():
            matrix = _as_matrix(chunk, config.dim, "build", normalize=fresh)
            index.add(matrix)
            added += matrix.shape[0]
        if added != total:
            raise InputError(f"build: expected {total} embeddings, the chunks held {added}")
        built = cls(config, index, [dict(r) for r in rows])
        built._apply_search_params()
        return built

    @staticmethod
    def _make_index(config: IndexConfig, n: int) -> faiss.Index:
        dim = config.dim
        if config.kind == "exact":
            return faiss.IndexFlatIP(dim)
        if config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
            return index
        if config.nlist is None:
            config.nlist = default_nlist(n)
        if n < config.nlist:
            raise InputError(f"build: {n} embeddings cannot train {config.nlist} IVF cells "
                             "(use --kind exact for small sets, or a smaller nlist)")
        if config.kind == "ivf":
            spec = f"IVF{config.nlist},Flat"
        else:
            if n < 39 * 256:
                raise InputError(f"build: ivfpq needs at least {39 * 256} embeddings to train its 256-entry "
                                 f"codebooks, got {n} (use --kind ivf or exact)")
            config.pq_m = config.pq_m or max(1, dim // 8)  # 1 byte per 8 dims: 32x smaller than float32
            if dim % config.pq_m:
                raise InputError(f"build: pq_m {config.pq_m} must divide the dimension {dim}")
            spec = f"IVF{config.nlist},PQ{config.pq_m}x8np"  # np: skip the slow polysemous training
        return faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)

    @staticmethod
    def _training_sample(chunks: Iterable[np.ndarray], sizes: Sequence[int], config: IndexConfig) -> np.ndarray:
        """A seeded uniform sample of at most ``train_size`` rows (at least 39 per cell when possible)."""
        total = int(sum(sizes))
        want = min(total, max(config.train_size, 39 * (config.nlist or 1)))
        picked = np.sort(np.random.default_rng(0).choice(total, size=want, replace=False))
        parts, start = [], 0
        for chunk, size in zip(chunks, sizes):
            local = picked[(picked >= start) & (picked < start + size)] - start
            if local.size:
                parts.append(_as_matrix(np.asarray(chunk)[local], config.dim, "build"))
            start += size
        return np.concatenate(parts)

    def _apply_search_params(self) -> None:
        if self.config.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self.index).nprobe = int(self.config.nprobe)
        elif self.config.kind == "hnsw":
            cast(faiss.IndexHNSW, self.index).hnsw.efSearch = int(self.config.ef_search)

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Trade speed for recall: more IVF cells (``nprobe``) or a wider HNSW beam (``ef_search``)."""
        if nprobe is not None:
            self.config.nprobe = int(nprobe)
        if ef_search is not None:
            self.config.ef_search = int(ef_search)
        self._apply_search_params()

    # ---- queries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return self.config.dim

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 10, batch_size: int = 4096) -> SearchResult:
        """Top-``k`` rows for each query (normalised here), searched ``batch_size`` queries at a time."""
        if k < 1:
            raise InputError(f"search: k must be at least 1, got {k}")
        matrix = _as_matrix(queries, self.dim, "search")
        all_scores, all_rows = [], []
        for start in range(0, matrix.shape[0], batch_size):
            scores, rows = self.index.search(matrix[start:start + batch_size], k)
            all_scores.append(scores)
            all_rows.append(rows)
        scores = np.concatenate(all_scores) if all_scores else np.zeros((0, k), np.float32)
        rows = np.concatenate(all_rows) if all_rows else np.zeros((0, k), np.int64)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        metadata = [[self.metadata[r] if r >= 0 else None for r in row] for row in rows.tolist()]
        return SearchResult(rows=rows.astype(np.int64), scores=scores, metadata=metadata)

    # ---- persistence -----------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index folder atomically (staged beside it, then swapped in). ``folder`` is new, or one
        clipsuite wrote (``clipsuite.core.outputs``): anything else is refused, never replaced."""
        target = Path(folder)
        with staged_folder(target, command="index build") as staging:  # fsyncs every file before the swap
            (staging / INDEX_FILE).write_bytes(faiss.serialize_index(self.index).tobytes())
            with open(staging / METADATA_FILE, "w", encoding="utf-8") as handle:  # streamed: can be millions
                handle.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in self.metadata)
            config = {"format_version": FORMAT_VERSION, "count": len(self), **asdict(self.config)}
            (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> EmbeddingIndex:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: index folder not found")
        for name in (CONFIG_FILE, INDEX_FILE, METADATA_FILE):
            if not (folder / name).is_file():
                raise InputError(f"{folder}: not an index folder ({name} is missing)")
        raw = read_json(folder / CONFIG_FILE)
        if not isinstance(raw, dict) or "kind" not in raw or "dim" not in raw:
            raise InputError(f"{folder / CONFIG_FILE}: not an index config (needs 'kind' and 'dim')")
        config = IndexConfig.from_dict(raw)
        try:
            index = faiss.deserialize_index(np.fromfile(folder / INDEX_FILE, dtype=np.uint8))
        except RuntimeError as error:
            raise InputError(f"{folder / INDEX_FILE}: not a readable faiss index "
                             f"({first_line(error, 120)})") from None
        metadata = [row for _, row in iter_jsonl(folder / METADATA_FILE)]
        if index.ntotal != len(metadata) or index.d != config.dim:
            raise InputError(f"{folder}: index holds {index.ntotal} vectors of dim {index.d} but the metadata has "
                             f"{len(metadata)} rows and the config dim {config.dim}")
        loaded = cls(config, index, metadata)
        loaded._apply_search_params()
        return loaded

    # ---- shards ----------------------------------------------------------------------------
    @classmethod
    def from_shards(cls, folder: str | os.PathLike[str], config: IndexConfig | None = None,
                    **overrides: Any) -> EmbeddingIndex:
        """Build from every ``shard-*-of-*.safetensors`` (+ metadata JSONL) in an embedding folder."""
        from clipsuite.core.embed import read_shards  # local: embed pulls in the model stack

        shards = read_shards(folder)
        merged = {**asdict(config or IndexConfig()), **overrides}
        if merged.get("model") is None:
            merged["model"] = shards.model
        return cls.build_from_chunks(shards.chunks, shards.sizes, shards.dim, shards.metadata(),
                                     IndexConfig(**merged))
