"""Checkpoint and resume state as safetensors + JSON (nothing is pickled).

Layout inside ``output_dir``::

    state/step-00000120.safetensors         trainable weights, buffers, optimizer tensors, EMA (main process)
    state/step-00000120.rank0.rng.safetensors   RNG state and metrics window of each process
    trainer_state.json                      the commit record: which step, which files, JSON state
    checkpoint.safetensors                  trainable weights of the latest checkpoint (for users)

Every file is written atomically, and ``trainer_state.json`` is written last: a run killed at any
moment leaves the previous complete checkpoint in force. Tensors are whole (FSDP shards are gathered
on save and split again on resume), so a checkpoint reads the same whatever wrote it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.distributed.tensor import DTensor

from clipsuite.core.checkpoints import atomic_write_json, load_tensors, read_config, read_json, save_tensors
from clipsuite.core.errors import ClipsuiteError
from clipsuite.core.train.shards import full_tensor, shard_like

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "checkpoint.safetensors"
STATE_DIR = "state"
FORMAT_VERSION = 2  # 2: optimizer state keyed by parameter name (1: by index)


def step_tensor_file(step: int) -> str:
    return f"{STATE_DIR}/step-{step:08d}.safetensors"


def step_rng_file(step: int, rank: int) -> str:
    return f"{STATE_DIR}/step-{step:08d}.rank{rank}.rng.safetensors"


# ---- weights and optimizer -------------------------------------------------------------------------
def gather_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: Mapping[str, torch.Tensor] | None,
                 keep: bool, scalars: frozenset[str] = frozenset()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint as whole CPU tensors (``w.`` trainable weights, ``b.`` buffers,
    ``opt.<param>.<key>`` optimizer tensors, ``ema.``) plus the optimizer's JSON part, keyed by
    parameter name.

    FSDP shards are gathered (``full_tensor``, a collective: every process calls this, and the
    order of the gathers is the same everywhere); only where ``keep`` (the main process) is anything
    returned. ``scalars`` names 0-dim parameters that FSDP trains as 1-element vectors: they are
    saved in their own shape.
    """
    kept: dict[str, torch.Tensor] = {}

    def put(key: str, name: str, tensor: torch.Tensor) -> None:
        whole = full_tensor(tensor)
        if keep:
            kept[key] = whole.reshape(()) if name in scalars and whole.numel() == 1 else whole
    names = {id(p): n for n, p in module.named_parameters()}
    for name, param in module.named_parameters():
        if param.requires_grad:
            put(f"w.{name}", name, param)
    params = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if name not in params:  # persistent buffers: BatchNorm statistics and the like
            put(f"b.{name}", name, tensor)
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    raw = optimizer.state_dict()  # its state is keyed by the position of the parameter in ``order``
    plain: dict[str, dict[str, Any]] = {}
    for index, entry in raw["state"].items():
        name = order[index]
        plain[name] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                put(f"opt.{name}.{key}", name, value)
            else:
                plain[name][key] = value
    for name, tensor in (ema or {}).items():
        put(f"ema.{name}", name, tensor)
    if not keep:
        return {}, {}
    groups = [{k: ([order[i] for i in v] if k == "params" else list(v) if isinstance(v, tuple) else v)
               for k, v in group.items()} for group in raw["param_groups"]]
    return kept, {"state": plain, "param_groups": groups}


def restore_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                  optimizer_plain: Mapping[str, Any], source: Path, scalars: frozenset[str] = frozenset()) -> None:
    """Load what ``gather_state`` saved into ``module`` and ``optimizer``, sharded again like the live
    parameters under FSDP (every process passes the same tensors). A trainable parameter missing
    from the file, or of another shape, is one clear error."""
    own = dict(module.named_parameters())
    trained = {name: p for name, p in own.items() if p.requires_grad}

    def live(name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The saved tensor shaped (a 0-dim parameter FSDP trains as a vector) and sharded like the parameter."""
        param = own[name]
        if name in scalars and tensor.numel() == 1:
            tensor = tensor.reshape(param.shape)
        return shard_like(tensor, param) if isinstance(param, DTensor) and tensor.shape == param.shape else tensor

    for name, param in trained.items():
        saved = tensors.get(f"w.{name}")
        if saved is None or (saved.shape != param.shape and not (name in scalars and saved.numel() == 1)):
            raise ClipsuiteError(f"{source}: cannot resume, trainable parameter '{name}' is missing or has "
                                 "another shape; the task's model has changed")
    order = [n for group in optimizer_plain["param_groups"] for n in group["params"]]
    names = {id(p): n for n, p in own.items()}
    if order != [names[id(p)] for group in optimizer.param_groups for p in group["params"]]:
        raise ClipsuiteError(f"{source}: cannot resume, the optimizer was saved for other parameters; "
                             "the task's model has changed")
    params = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    with torch.no_grad():
        for name, param in trained.items():
            param.copy_(live(name, tensors[f"w.{name}"]))
        for name, buffer in module.state_dict(keep_vars=True).items():
            saved = tensors.get(f"b.{name}")
            if name not in params and saved is not None and saved.shape == buffer.shape:
                buffer.copy_(saved)
    index = {name: i for i, name in enumerate(order)}
    state: dict[int, dict[str, Any]] = {index[n]: dict(entry) for n, entry in optimizer_plain["state"].items()}
    for key, tensor in tensors.items():
        if key.startswith("opt."):
            name, field = key[len("opt."):].rsplit(".", 1)
            # torch's rule: "step" is a counter, every other state tensor mirrors its parameter
            state.setdefault(index[name], {})[field] = tensor if field == "step" else live(name, tensor)
    groups = [{k: ([index[n] for n in v] if k == "params" else tuple(v) if k == "betas" else v)
               for k, v in group.items()} for group in optimizer_plain["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---- RNG -----------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = cuda_state
    # the legacy global generator is MT19937, whose state is this tuple (the dict form is for others)
    np_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
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
def save_rng_file(output_dir: Path, step: int, rank: int, extra: Mapping[str, torch.Tensor] | None = None,
                  extra_plain: Mapping[str, Any] | None = None) -> None:
    """This process's own state: its RNG streams, plus ``extra`` (the metrics window: each process has its own)."""
    tensors, plain = rng_state()
    save_tensors(output_dir / step_rng_file(step, rank), {**tensors, **(extra or {})}, {**plain, **(extra_plain or {})})


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
    if not isinstance(record, dict) or "step" not in record:
        raise ClipsuiteError(f"{path}: not a clipsuite trainer state; delete the folder or train without resume")
    if record.get("format") != FORMAT_VERSION:
        raise ClipsuiteError(f"{path}: a trainer state of format {record.get('format')}, this clipsuite resumes "
                             f"format {FORMAT_VERSION}; train afresh (without resume) or in another folder")
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
            have = "missing" if name not in own else tuple(own[name].shape)
            raise ClipsuiteError(f"{path}: weight '{name}' does not fit this model ({have} vs {tuple(tensor.shape)})")
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)
    return sorted(tensors)
