"""One ``Accelerator`` per ``fit``: device, precision, gradient accumulation, DDP or FSDP.

accelerate gives the process layout (one process per GPU under ``accelerate launch`` / ``torchrun``,
else one), wraps the module in DDP (bucketed all-reduce overlapped with backward) or shards it with
FSDP2, runs the forward under autocast for ``amp_*`` and scales fp16 losses. Precision names are
``clipsuite.core.precision``'s, shared with ``load_model``.
"""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    FullyShardedDataParallelPlugin,
    GradientAccumulationPlugin,
)
from torch import nn

from clipsuite.core.errors import ClipsuiteError, InputError
from clipsuite.core.precision import Precision, resolve_precision
from clipsuite.core.train.config import TrainConfig

logger = logging.getLogger("clipsuite.core.train")
_MIXED = {"amp_bf16": "bf16", "amp_fp16": "fp16"}


def fsdp_block_classes(module: nn.Module) -> list[str]:
    """Class names of the repeated blocks of ``module``: the items of a ``ModuleList`` or
    ``Sequential`` holding two or more modules of one class that is not torch's own (open_clip's
    ``ResidualAttentionBlock``, timm's ``Block``, a Hugging Face ``BertLayer`` ...). FSDP shards each
    such block as a unit; the rest of the module forms the root unit."""
    names: set[str] = set()
    for container in module.modules():
        if not isinstance(container, (nn.ModuleList, nn.Sequential)):
            continue
        items = list(container.children())
        kinds = {type(item) for item in items}
        if len(items) < 2 or len(kinds) != 1:
            continue
        kind = kinds.pop()
        if not kind.__module__.startswith("torch.") and any(True for _ in items[0].parameters()):
            names.add(kind.__name__)
    return sorted(names)


def fsdp_plugin(config: TrainConfig, module: nn.Module) -> FullyShardedDataParallelPlugin:
    """accelerate's FSDP2 plugin: each block its own unit, rank 0's weights loaded into the shards
    (so ranks need not build identical models), full state dicts for checkpoints."""
    blocks = list(config.fsdp_wrap) if config.fsdp_wrap is not None else fsdp_block_classes(module)
    return FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=blocks,
        reshard_after_forward=True, cpu_ram_efficient_loading=True, state_dict_type="FULL_STATE_DICT")


def wants_fsdp(config: TrainConfig) -> bool:
    """``distributed="fsdp"``, or a launch with ``accelerate launch --use_fsdp``."""
    return config.distributed == "fsdp" or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


_BASE_TYPE: dict[str, DistributedType] = {}  # the process's own layout, before an FSDP fit marked it


def _make_room(mixed: str, fsdp: bool) -> None:
    """accelerate keeps one ``AcceleratorState`` per process and refuses a second ``Accelerator``
    with another mixed precision or plugin. Each ``fit`` has its own settings, so a previous fit's
    state is dropped; the process group, held by ``PartialState``, stays."""
    partial = PartialState._shared_state
    _BASE_TYPE.setdefault("type", partial["distributed_type"])
    if "_mixed_precision" not in AcceleratorState._shared_state:
        return
    if partial["distributed_type"] == DistributedType.FSDP:
        # an FSDP fit writes FSDP into the process-wide layout; put the launch's own back
        partial["distributed_type"] = _BASE_TYPE["type"]
        AcceleratorState._reset_state(reset_partial_state=False)
    elif AcceleratorState._shared_state["_mixed_precision"] != mixed or fsdp:
        AcceleratorState._reset_state(reset_partial_state=False)


def _chosen_device(name: str) -> bool:
    """Check and select ``TrainConfig.device`` in a single process; True for the CPU. accelerate keeps
    one device per process, so a previous fit's state on another kind of device is dropped first."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError(f"device '{name}': under a multi-process launch the launcher places each process; "
                         "leave the device out")
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device '{name}': no CUDA GPU is visible (use cpu)")
        if index and int(index) >= torch.cuda.device_count():
            raise InputError(f"device '{name}': only {torch.cuda.device_count()} CUDA GPU(s) are visible")
        torch.cuda.set_device(int(index or 0))  # accelerate's single-process device is the current one
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device '{name}': MPS is not available (use cpu)")
    partial = PartialState._shared_state
    held = partial.get("device")
    if held is not None and held.type != ("cpu" if kind == "cpu" else kind) \
            and partial.get("distributed_type") == DistributedType.NO:
        AcceleratorState._reset_state(reset_partial_state=True)
        _BASE_TYPE.clear()
    return kind == "cpu"


def build_accelerator(config: TrainConfig, module: nn.Module) -> tuple[Accelerator, Precision]:
    # without CUDA/MPS say cpu=True, so that a multi-process launch (torchrun / accelerate launch)
    # becomes gloo data parallel instead of N independent runs
    cpu = not torch.cuda.is_available() and not torch.backends.mps.is_available()
    if config.device is not None:
        cpu = _chosen_device(config.device)
    device = PartialState(cpu=cpu).device
    # `auto` follows `accelerate launch --mixed_precision`, which reaches us as this variable
    precision = resolve_precision(config.precision, device, os.environ.get("ACCELERATE_MIXED_PRECISION"))
    if precision.name == "amp_fp16" and device.type == "cpu":
        raise InputError("precision amp_fp16 needs a CUDA GPU (use amp_bf16 or fp32 on the CPU)")
    mixed = _MIXED.get(precision.name, "no")
    fsdp = wants_fsdp(config)
    _make_room(mixed, fsdp)
    env_fsdp = os.environ.get("ACCELERATE_USE_FSDP")
    try:
        accelerator = Accelerator(
            cpu=cpu, mixed_precision=mixed, step_scheduler_with_optimizer=False,
            # the Trainer sizes each accumulation group itself (the last one of an epoch may be short)
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=config.grad_accum,
                                                                    sync_with_dataloader=False),
            # gradients as views into DDP's buckets: no second copy of every gradient
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused,
                                                           gradient_as_bucket_view=True)],
            fsdp_plugin=fsdp_plugin(config, module) if fsdp else None)
    finally:  # accelerate sets this process-wide when given a plugin; the next fit decides afresh
        if env_fsdp is None:
            os.environ.pop("ACCELERATE_USE_FSDP", None)
        else:
            os.environ["ACCELERATE_USE_FSDP"] = env_fsdp
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes != launched:
        raise ClipsuiteError(f"launched as {launched} processes but accelerate sees {accelerator.num_processes}; "
                             "check the launcher's settings (accelerate config)")
    if fsdp and accelerator.distributed_type != DistributedType.FSDP:
        logger.info("distributed='fsdp' shards only across several GPU processes; training unsharded here")
    return accelerator, precision


def begin_group(accelerator: Accelerator, size: int) -> None:
    """Start an accumulation group of ``size`` micro-batches: ``accelerator.accumulate`` then skips
    the gradient all-reduce until the group's last micro-batch, and ``accelerator.backward`` divides
    each loss by ``size`` (the mean over the group, like one big batch)."""
    accelerator.gradient_accumulation_steps = size
    accelerator.step = 0
