"""Embedding at scale: stream images through a DataLoader, write embeddings to disk as they come.

Images are decoded and preprocessed in DataLoader worker processes; each encoded batch is appended
to the shard file straight away, so memory stays flat however many images there are. Under
``accelerate launch`` every process takes a contiguous share of the inputs and writes its own shard:

    EMB_DIR/shard-00000-of-00002.safetensors   tensor ``embeddings`` [n, D] + config in the metadata
    EMB_DIR/shard-00000-of-00002.jsonl         one metadata row per embedding (id, path, CSV fields)
    EMB_DIR/shard-00000-of-00002.skipped.json  files that could not be decoded, with the reason
    EMB_DIR/skipped.json, embeddings.json      merged by the main process once all shards are done

Files are staged (``clipsuite.core.staging``: temporary name, fsync, rename) when complete: a killed
run leaves no shard that looks finished. ``read_shards`` gathers the shards back for the index builder.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch.utils.data import DataLoader, Dataset

from clipsuite.core.checkpoints import CONFIG_METADATA_KEY
from clipsuite.core.errors import ClipsuiteError, InputError, first_line
from clipsuite.core.images import expand_image_inputs, load_image
from clipsuite.core.outputs import check_output_dir, write_manifest
from clipsuite.core.progress import progress_bar
from clipsuite.core.shard_files import SHARD_RE, is_shard_entry, shard_name
from clipsuite.core.skipping import SkipLog, check_on_error
from clipsuite.core.staging import StagedFile, atomic_write_json
from clipsuite.core.tabular import iter_jsonl, read_table

PATH_COLUMNS = ("filepath", "path", "image", "image_path", "file", "filename")
TENSOR_NAME = "embeddings"
_HEADER_RESERVE = 64 * 1024  # bytes kept for the safetensors header, filled in when the count is known
_DTYPES = {"float32": (np.float32, "F32"), "float16": (np.float16, "F16")}


# ---- inputs ------------------------------------------------------------------------------------
def _read_table_rows(path: Path, path_column: str | None) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV/JSONL table (``clipsuite.core.tabular``'s rule) with a path column."""
    table = read_table(path, required=(path_column,) if path_column else ())
    column = path_column or next((c for c in PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise InputError(f"{path}: no path column among the columns {table.columns} "
                         f"(name one, or use one of {', '.join(PATH_COLUMNS)})")
    rows = []
    for record in table:
        image = Path(record.text(column))
        extra = {k: v for k, v in record.values.items() if k != column}
        rows.append({"id": extra.pop("id", None), "path": str(image if image.is_absolute() else path.parent / image),
                     **extra})
    return rows


def read_inputs(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                path_column: str | None = None) -> list[dict[str, Any]]:
    """Metadata rows (``id``, ``path``, extra table fields) for a folder, an image, a CSV/TSV/JSONL table,
    a text file with one path per line, or a list of paths. ``id`` is the table's ``id`` column or the
    input position."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: not found")
        suffix = path.suffix.lower()
        if path.is_file() and suffix in (".csv", ".tsv", ".jsonl"):
            rows = _read_table_rows(path, path_column)
        elif path.is_file() and suffix in (".txt", ".lst"):
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if not lines:
                raise InputError(f"{path}: the list of image paths is empty")
            rows = [{"id": None, "path": str(p if Path(p).is_absolute() else path.parent / p)} for p in lines]
        else:
            rows = [{"id": None, "path": str(p)} for p in expand_image_inputs([path])]
    else:
        rows = [{"id": None, "path": str(p)} for p in expand_image_inputs(source)]
        if not rows:
            raise InputError("no images given")
    for position, row in enumerate(rows):
        if row["id"] is None:
            row["id"] = position
    return rows


class ImageFiles(Dataset):
    """Decodes and preprocesses one image per item; a failure is returned, not raised, so one bad file
    does not kill a worker. Items: ``(position, pixels or None, reason or None)``."""

    def __init__(self, paths: Sequence[str], preprocess: Any) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return position, self.preprocess(load_image(self.paths[position])), None
        except ClipsuiteError as error:
            return position, None, str(error)
        except (OSError, ValueError, RuntimeError, TypeError) as error:  # a transform failing on an odd image
            return position, None, f"{self.paths[position]}: {type(error).__name__}: {error}"


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None]],
                   ) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    """(positions decoded, their stacked pixels, [(position, reason)] of the failures)."""
    good = [(pos, pixels) for pos, pixels, _ in items if pixels is not None]
    bad = [(pos, reason or "unreadable") for pos, pixels, reason in items if pixels is None]
    pixels = torch.stack([p for _, p in good]) if good else None
    return [pos for pos, _ in good], pixels, bad


# ---- the shard file ----------------------------------------------------------------------------
class ShardWriter:
    """Appends rows to a safetensors file whose header is written last (space reserved up front).

    The header is JSON padded with spaces, which the safetensors format allows, so the file is
    valid for ``safe_open`` without holding the whole tensor in memory at any time.
    """

    def __init__(self, path: Path, dim: int, dtype: str = "float32") -> None:
        if dtype not in _DTYPES:
            raise InputError(f"unknown embedding dtype '{dtype}' (choose float32 or float16)")
        self.path, self.dim = path, dim
        self.np_dtype, self.st_dtype = _DTYPES[dtype]
        self.rows = 0
        self.file = StagedFile(path, "wb")
        self.handle = self.file.handle
        self.handle.write(b"\0" * (8 + _HEADER_RESERVE))

    def write(self, embeddings: torch.Tensor | np.ndarray) -> None:
        array = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings
        array = np.ascontiguousarray(array, dtype=self.np_dtype)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise InputError(f"{self.path}: expected rows of dimension {self.dim}, got {array.shape}")
        self.handle.write(array.tobytes())
        self.rows += array.shape[0]

    def close(self, config: dict[str, Any]) -> Path:
        size = self.rows * self.dim * np.dtype(self.np_dtype).itemsize
        header = {TENSOR_NAME: {"dtype": self.st_dtype, "shape": [self.rows, self.dim], "data_offsets": [0, size]},
                  "__metadata__": {CONFIG_METADATA_KEY: json.dumps(config)}}
        encoded = json.dumps(header, separators=(",", ":")).encode()
        if len(encoded) > _HEADER_RESERVE:
            self.abort()
            raise InputError(f"{self.path}: shard metadata too large ({len(encoded)} bytes)")
        self.handle.seek(0)
        self.handle.write(struct.pack("<Q", _HEADER_RESERVE) + encoded.ljust(_HEADER_RESERVE, b" "))
        return self.file.commit()

    def abort(self) -> None:
        self.file.abort()


# ---- embedding ---------------------------------------------------------------------------------
@dataclass
class EmbedConfig:
    batch_size: int = 64
    num_workers: int = 2
    on_error: str = "skip"  # "skip": list undecodable files in skipped.json; "fail": stop at the first
    dtype: str = "float32"
    path_column: str | None = None
    progress: bool = True


@dataclass
class EmbedResult:
    output_dir: Path
    shard: Path
    count: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    process_index: int = 0
    num_processes: int = 1


def process_layout(process_index: int | None, num_processes: int | None) -> tuple[int, int, Any]:
    """(rank, world, PartialState or None) of this process under accelerate launch / torchrun, for any
    job that splits its inputs across processes. Explicit numbers win (SLURM arrays, tests)."""
    if process_index is not None or num_processes is not None:
        rank, world = int(process_index or 0), int(num_processes or 1)
        if not 0 <= rank < world:
            raise InputError(f"process_index {rank} outside 0..{world - 1}")
        return rank, world, None
    from accelerate import PartialState

    # accelerate only forms a CPU process group (gloo) when told cpu=True; without it a CPU-only
    # torchrun / `accelerate launch --cpu` would leave every process believing it is alone.
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes, state


def _remove_stale_shards(folder: Path, world: int) -> None:
    """Shards of an earlier run with a different process count would be mixed in by the reader."""
    for path in folder.glob("shard-*-of-*.*"):
        match = re.match(r"^shard-\d{5}-of-(\d{5})\.", path.name)
        if match and int(match.group(1)) != world:
            path.unlink(missing_ok=True)


def embed_images(model: Any, source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 output_dir: str | os.PathLike[str], config: EmbedConfig | None = None,
                 model_spec: str | None = None, process_index: int | None = None,
                 num_processes: int | None = None) -> EmbedResult:
    """Embed this process's share of ``source`` with ``model`` (a ``ClipModel``) into ``output_dir``.

    ``model_spec`` is recorded so a later text/image query can load the same model.
    """
    config = config or EmbedConfig()
    log = SkipLog(check_on_error(config.on_error))
    skipped_ids: list[Any] = []  # the input id of each entry of log.skipped
    rows = read_inputs(source, config.path_column)
    rank, world, state = process_layout(process_index, num_processes)
    start, stop = rank * len(rows) // world, (rank + 1) * len(rows) // world
    share = rows[start:stop]
    folder = Path(output_dir)
    check_output_dir(folder, "--output", also_ours=is_shard_entry)  # a user's folder is never written into
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        _remove_stale_shards(folder, world)
    name = shard_name(rank, world)
    writer = ShardWriter(folder / f"{name}.safetensors", model.embed_dim, config.dtype)
    lines = StagedFile(folder / f"{name}.jsonl", "w")
    loader = DataLoader(ImageFiles([r["path"] for r in share], model.preprocess), batch_size=config.batch_size,
                        num_workers=config.num_workers, collate_fn=collate_images,
                        pin_memory=model.device.type == "cuda", persistent_workers=False)
    try:
        bar = progress_bar(len(share), f"embedding {name}", unit="img", leave=False,
                           enabled=config.progress and (rank == 0 or state is None))
        with bar:
            for positions, pixels, failures in loader:
                for position, reason in failures:
                    log.record(share[position]["path"], reason)
                    skipped_ids.append(share[position]["id"])
                if pixels is not None:
                    writer.write(model.encode_image_tensor(pixels).cpu())
                    lines.handle.writelines(json.dumps(share[p], ensure_ascii=False, default=str) + "\n"
                                            for p in positions)
                bar.update(len(positions) + len(failures))
        skipped = [{"id": row_id, **entry.as_dict()} for row_id, entry in zip(skipped_ids, log.skipped)]
        if writer.rows == 0 and world == 1:  # with several processes one share may be all bad
            raise InputError(f"{source}: none of the {len(share)} images could be decoded "
                             f"(first: {skipped[0]['reason'] if skipped else '?'})")
        shard_config = {"model": model_spec, "dim": model.embed_dim, "shard": rank, "num_shards": world,
                        "count": writer.rows, "dtype": config.dtype, "skipped": len(skipped)}
        atomic_write_json(folder / f"{name}.skipped.json", skipped)
        lines.commit()
        shard = writer.close(shard_config)
    except BaseException:
        writer.abort()
        lines.abort()
        if created and not any(folder.iterdir()):
            folder.rmdir()  # leave nothing behind that looks like an embedding folder
        raise
    if state is not None:
        state.wait_for_everyone()
    if rank == 0 and (state is not None or world == 1):
        _write_summary(folder, world)
    return EmbedResult(folder, shard, writer.rows, skipped, rank, world)


def _write_summary(folder: Path, world: int) -> None:
    """Merge the per-shard skip lists and write a manifest; only when every shard is there."""
    names = [shard_name(i, world) for i in range(world)]
    if not all((folder / f"{n}.safetensors").is_file() for n in names):
        return
    skipped: list[dict[str, Any]] = []
    for n in names:
        skipped.extend(json.loads((folder / f"{n}.skipped.json").read_text(encoding="utf-8")))
    atomic_write_json(folder / "skipped.json", skipped)
    shards = read_shards(folder)
    atomic_write_json(folder / "embeddings.json", {"model": shards.model, "dim": shards.dim, "count": sum(
        shards.sizes), "num_shards": world, "skipped": len(skipped)})
    write_manifest(folder, "embed")  # the folder is ours: a later embed may write into it again


# ---- reading shards back -----------------------------------------------------------------------
@dataclass
class ShardSet:
    """The complete set of shards in an embedding folder, read lazily in blocks."""

    folder: Path
    paths: list[Path]
    counts: list[int]
    dim: int
    model: str | None
    block_rows: int = 65536

    @property
    def sizes(self) -> list[int]:
        """Row counts of the blocks ``chunks()`` yields, in order."""
        return [min(self.block_rows, count - start) for count in self.counts
                for start in range(0, count, self.block_rows)]

    def chunks(self) -> Iterator[np.ndarray]:
        for path, count in zip(self.paths, self.counts):
            with safe_open(str(path), framework="numpy") as handle:
                tensor = handle.get_slice(TENSOR_NAME)
                for start in range(0, count, self.block_rows):
                    stop = min(count, start + self.block_rows)  # safetensors rejects slices past the end
                    yield np.asarray(tensor[start:stop], dtype=np.float32)

    def embeddings(self) -> np.ndarray:
        """All embeddings in one array (for small sets and tests)."""
        blocks = list(self.chunks())
        return np.concatenate(blocks) if blocks else np.zeros((0, self.dim), np.float32)

    def metadata(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for path, count in zip(self.paths, self.counts):
            jsonl = path.with_suffix(".jsonl")
            mine = [row for _, row in iter_jsonl(jsonl)]
            if len(mine) != count:
                raise InputError(f"{jsonl}: {len(mine)} metadata rows for {count} embeddings")
            rows.extend(mine)
        return rows


def read_shards(folder: str | os.PathLike[str]) -> ShardSet:
    """Find and check the shards of an embedding folder: one complete set, same model and dimension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: embedding folder not found")
    found = sorted((int(m.group(1)), int(m.group(2)), folder / m.group(0))
                   for m in (SHARD_RE.match(p.name) for p in folder.iterdir()) if m)
    if not found:
        raise InputError(f"{folder}: no embedding shards (shard-*-of-*.safetensors) found")
    totals = {total for _, total, _ in found}
    if len(totals) != 1:
        raise InputError(f"{folder}: shards from runs with different process counts {sorted(totals)}")
    total = totals.pop()
    missing = sorted(set(range(total)) - {i for i, _, _ in found})
    if missing:
        raise InputError(f"{folder}: missing shard {shard_name(missing[0], total)} ({len(missing)} of {total} absent)")
    counts, dims, models = [], set(), set()
    for _, _, path in found:
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = json.loads((handle.metadata() or {}).get(CONFIG_METADATA_KEY, "{}"))
                shape = handle.get_slice(TENSOR_NAME).get_shape()
        except (SafetensorError, OSError, ValueError) as error:  # damaged file, bad JSON metadata, no tensor
            raise InputError(f"{path}: not a readable embedding shard ({first_line(error, 120)})") from None
        if not path.with_suffix(".jsonl").is_file():
            raise InputError(f"{path.with_suffix('.jsonl')}: metadata file missing")
        counts.append(int(shape[0]))
        dims.add(int(shape[1]))
        models.add(meta.get("model"))
    if len(dims) != 1 or len(models) != 1:
        raise InputError(f"{folder}: shards disagree on dimension {sorted(dims)} or model {sorted(map(str, models))}")
    return ShardSet(folder, [p for _, _, p in found], counts, dims.pop(), models.pop())
