"""The names of an embedding folder's files (torch-free, so a CLI can check an ``--output`` before torch).

Each process of an embedding run writes ``shard-<rank>-of-<world>.{safetensors,jsonl,skipped.json}``;
rank 0 adds ``skipped.json`` and ``embeddings.json`` once every shard is there.
"""

from __future__ import annotations

import re

SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.safetensors$")
SHARD_ENTRY = re.compile(r"^\.?shard-\d{5}-of-\d{5}\."  # a shard's files and their staged temporaries
                         r"|^(skipped|embeddings)\.json$|^\.(skipped|embeddings)\.json\.")


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def is_shard_entry(entry: str) -> bool:
    """A file the processes of an embedding run write (a shard, its temporaries, the summary): seen by a
    late process before rank 0 lists them in the folder's manifest (``clipsuite.core.outputs``)."""
    return "/" not in entry and SHARD_ENTRY.match(entry) is not None
