"""Atomic safetensors + JSON checkpoints.

Every file goes through ``clipsuite.core.staging`` (temporary name in the same folder, fsync, rename),
so a run killed mid-write leaves either the old file or the new one, never half of one. Nothing here
unpickles: tensors travel as safetensors, everything else as JSON. The staged text/JSON/bytes writers
are re-exported here, where checkpoint code has always found them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from clipsuite.core.errors import InputError, ModelError, first_line
from clipsuite.core.json_files import read_json  # re-exported: callers import it from here
from clipsuite.core.staging import atomic_write_bytes, atomic_write_json, atomic_write_text, staged_path

__all__ = ["CONFIG_METADATA_KEY", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "load_tensors",
           "read_config", "read_json", "save_tensors"]

CONFIG_METADATA_KEY = "clipsuite_config"


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write tensors as safetensors atomically; ``config`` rides along as JSON metadata."""
    # safetensors refuses shared or non-contiguous storage: give each tensor its own copy.
    flat = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(dict(config))} if config is not None else None
    with staged_path(path) as temp:
        save_file(flat, str(temp), metadata=metadata)


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not iterable)
    except (SafetensorError, OSError, ValueError) as error:  # a damaged header or truncated data
        raise InputError(f"{path}: not a readable safetensors file ({first_line(error)})") from None


def load_state_exactly(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: object, what: str) -> None:
    """Load ``state`` into ``model`` strictly. A misfit is one ``ModelError`` naming ``source``, counting the
    missing, unexpected and mis-shaped tensors and showing the first, instead of torch's page-long list."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        example = (mismatched or missing or unexpected)[0]
        raise ModelError(f"{source}: checkpoint does not fit {what} ({len(missing)} missing, {len(unexpected)} "
                         f"unexpected, {len(mismatched)} mis-shaped tensors; e.g. {example})")
    model.load_state_dict(state, strict=True)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON config stored in a safetensors file's metadata, or None when it has none."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({first_line(error)})") from None
    raw = metadata.get(CONFIG_METADATA_KEY)
    return json.loads(raw) if raw else None


