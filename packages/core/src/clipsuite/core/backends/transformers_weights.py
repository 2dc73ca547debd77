"""Reading a transformers checkpoint into a ``CLIPModel``, strictly.

``from_pretrained`` only warns about missing or mis-shaped tensors and initialises them at random; a
CLIP with a random tower gives a silently wrong result, so we read the tensors ourselves and refuse
a checkpoint that does not fit, in one line. ``.bin`` files are read with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from clipsuite.core.checkpoints import load_state_exactly, load_tensors, read_json
from clipsuite.core.errors import InputError, ModelError

# buffers older transformers saved (position ids) that current models rebuild themselves
_IGNORED_SUFFIXES = ("position_ids",)


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"{path}: not a readable PyTorch weight file ({first[:160]})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        try:
            return load_tensors(path)
        except InputError as error:
            raise ModelError(str(error)) from None
    return _read_bin(path)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a single weight file or of a sharded checkpoint's ``*.index.json``."""
    if path.name.endswith(".index.json"):
        index = read_json(path)
        shards = sorted(set((index.get("weight_map") or {}).values())) if isinstance(index, dict) else []
        if not shards:
            raise ModelError(f"{path}: no 'weight_map' in this shard index")
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_read_file(path.parent / shard))
        return state
    return _read_file(path)


def load_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load ``path`` into ``model`` (a ``CLIPModel``); ``ModelError`` naming the first misfit."""
    state = {k: v for k, v in read_state(path).items() if not k.endswith(_IGNORED_SUFFIXES)}
    load_state_exactly(model, state, path, f"the '{name}' CLIPModel config")
