"""Checkpoint and resume state as safetensors + JSON (nothing is pickled).

Layout inside ``output_dir``::

    state/step-00000120.safetensors         trainable weights, optimizer tensors, EMA (main process)
    state/step-00000120.rank0.rng.safetensors   RNG state of each process
    trainer_state.json                      the commit record: which step, which files, JSON state
    checkpoint.safetensors                  trainable weights of the latest checkpoint (for users)

Every file is written atomically, and ``trainer_state.json`` is written last: a run killed at any
moment leaves the previous complete checkpoint in force.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipsuite.core.checkpoints import atomic_write_json, load_tensors, read_config, read_json, save_tensors
from clipsuite.core.errors import ClipsuiteError

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "checkpoint.safetensors"
STATE_DIR = "state"
FORMAT_VERSION = 1


def step_tensor_file(step: int) -> str:
    return f"{STATE_DIR}/step-{step:08d}.safetensors"


def step_rng_file(step: int, rank: int) -> str:
    return f"{STATE_DIR}/step-{step:08d}.rank{rank}.rng.safetensors"


# ---- optimizer -----------------------------------------------------------------------------------
def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``opt.<param>.<key>``) and a JSON part."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        plain[str(index)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value
            else:
                plain[str(index)][key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"state": plain, "param_groups": groups}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                         plain: Mapping[str, Any]) -> None:
    entries: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        entries.setdefault(int(index), {})[key] = tensor
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in plain["param_groups"]]
    optimizer.load_state_dict({"state": entries, "param_groups": groups})


# ---- RNG -----------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = cuda_state
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    plain = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_state[0], np.asarray(np_state[1]).tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
    }
    return tensors, plain


def set_rng_state(tensors: Mapping[str, torch.Tensor], plain: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---- files ---------------------------------------------------------------------------------------
def save_rng_file(output_dir: Path, step: int, rank: int) -> None:
    tensors, plain = rng_state()
    save_tensors(output_dir / step_rng_file(step, rank), tensors, plain)


def save_step_tensors(output_dir: Path, step: int, tensors: Mapping[str, torch.Tensor],
                      config: Mapping[str, Any]) -> None:
    save_tensors(output_dir / step_tensor_file(step), tensors, config)


def commit(output_dir: Path, record: Mapping[str, Any]) -> None:
    """Make the step's files the checkpoint in force, then drop older ones."""
    atomic_write_json(output_dir / STATE_FILE, {"format": FORMAT_VERSION, **record})
    step = int(record["step"])
    keep = {Path(step_tensor_file(step)).name}
    keep |= {Path(step_rng_file(step, r)).name for r in range(int(record.get("world_size", 1)))}
    for old in (output_dir / STATE_DIR).glob("step-*"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def read_record(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / STATE_FILE
    if not path.exists():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION or "step" not in record:
        raise ClipsuiteError(f"{path}: not a clipsuite trainer state (format {FORMAT_VERSION}); "
                             "delete the folder or train without resume")
    return record


def load_step_tensors(output_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_tensors(output_dir / step_tensor_file(step))


def load_rng_file(output_dir: Path, step: int, rank: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = output_dir / step_rng_file(step, rank)
    return load_tensors(path), read_config(path) or {}


def clear(output_dir: Path) -> None:
    """Remove a previous run's state so a fresh run never mixes with it."""
    (output_dir / STATE_FILE).unlink(missing_ok=True)
    for old in (output_dir / STATE_DIR).glob("step-*"):
        old.unlink(missing_ok=True)


def load_trainable(module: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a ``checkpoint.safetensors`` (trainable weights only) into ``module``; returns the names
    loaded. A name the module lacks, or a shape that differs, is one clear error."""
    tensors = load_tensors(path)
    own = dict(module.named_parameters())
    for name, tensor in tensors.items():
        if name not in own or own[name].shape != tensor.shape:
            raise ClipsuiteError(f"{path}: weight '{name}' does not fit this model "
                                 f"({'missing' if name not in own else tuple(own[name].shape)} vs {tuple(tensor.shape)})")
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)
    return sorted(tensors)
