"""Atomic safetensors + JSON checkpoints.

Every file is written to a temporary name in the same folder, flushed to disk and renamed over the
target, so a run killed mid-write leaves either the old file or the new one, never half of one.
Nothing here unpickles: tensors travel as safetensors, everything else as JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from clipsuite.core.errors import InputError

CONFIG_METADATA_KEY = "clipsuite_config"


def _atomic_replace(target: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the finished file over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    _atomic_replace(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    _atomic_replace(Path(path), lambda tmp: tmp.write_bytes(data))


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write tensors as safetensors atomically; ``config`` rides along as JSON metadata."""
    # safetensors refuses shared or non-contiguous storage: give each tensor its own copy.
    flat = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(dict(config))} if config is not None else None
    _atomic_replace(Path(path), lambda tmp: save_file(flat, str(tmp), metadata=metadata))


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises several types for a damaged header
        raise InputError(f"{path}: not a readable safetensors file ({_first_line(error)})") from None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON config stored in a safetensors file's metadata, or None when it has none."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:
        raise InputError(f"{path}: not a readable safetensors file ({_first_line(error)})") from None
    raw = metadata.get(CONFIG_METADATA_KEY)
    return json.loads(raw) if raw else None


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for each non-blank line; a bad line raises ``InputError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}: malformed JSON on line {number}: {error.msg}") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: line {number} is not a JSON object")
            yield number, row


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
