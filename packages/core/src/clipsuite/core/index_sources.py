"""What an index build reads: vectors in memory (``ArraySource``) or an embedding folder's shards
(``ShardSource``), both streamed block by block with their metadata rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from clipsuite.core.errors import InputError


class VectorSource(Protocol):
    """What a build reads: ``clipsuite.core.embed.ShardSet`` or anything shaped like it."""

    dim: int
    model: str | None

    def chunks(self) -> Iterator[np.ndarray]: ...

    def metadata_rows(self) -> Iterator[dict[str, Any]]: ...

    @property
    def total(self) -> int: ...


class ArraySource:
    """Vectors already in memory (tests, benchmarks, the library) as a build source."""

    def __init__(self, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None,
                 model: str | None = None, block_rows: int = 65_536) -> None:
        self.array = np.asarray(vectors)
        if self.array.ndim != 2:
            raise InputError(f"build: expected a [N, D] matrix, got shape {self.array.shape}")
        self.rows = list(metadata) if metadata is not None else None
        if self.rows is not None and len(self.rows) != len(self.array):
            raise InputError(f"build: {len(self.array)} embeddings but {len(self.rows)} metadata rows")
        self.dim, self.model, self.block_rows = int(self.array.shape[1]), model, block_rows

    @property
    def total(self) -> int:
        return int(self.array.shape[0])

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.total, self.block_rows):
            yield self.array[start:start + self.block_rows]

    def metadata_rows(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows) if self.rows is not None else ({"id": i} for i in range(self.total))

    def __str__(self) -> str:
        return "build"


class ShardSource:
    """An embedding folder's shards (``clipsuite.core.embed.read_shards``), metadata streamed per shard."""

    def __init__(self, shards: Any) -> None:
        self.shards, self.dim, self.model = shards, int(shards.dim), shards.model

    @property
    def total(self) -> int:
        return int(sum(self.shards.counts))

    def chunks(self) -> Iterator[np.ndarray]:
        return iter(self.shards.chunks())

    def metadata_rows(self) -> Iterator[dict[str, Any]]:
        from clipsuite.core.tabular import iter_jsonl

        for path, count in zip(self.shards.paths, self.shards.counts):
            jsonl, seen = path.with_suffix(".jsonl"), 0
            for _, row in iter_jsonl(jsonl):
                if not isinstance(row, dict):
                    raise InputError(f"{jsonl}: line {seen + 1} is not a JSON object")
                seen += 1
                yield row
            if seen != count:
                raise InputError(f"{jsonl}: {seen} metadata rows for {count} embeddings")

    def __str__(self) -> str:
        return str(self.shards.folder)
