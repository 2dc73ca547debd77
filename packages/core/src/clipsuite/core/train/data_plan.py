"""Where the batches of each epoch come from: a Dataset (resumable order) or a user's DataLoader."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, IterableDataset, default_collate

from clipsuite.core.errors import InputError
from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.order import EpochOrder, SeededDataset, _mix


class DataPlan(Protocol):
    def __len__(self) -> int: ...                 # micro-batches per epoch on this process
    def batches(self, epoch: int, start: int) -> Iterable[Any]: ...


class DatasetPlan:
    """A map-style Dataset read in a seeded order; resuming skips batches without loading them."""

    def __init__(self, dataset: Any, cfg: TrainConfig, collate: Callable[[list[Any]], Any] | None,
                 rank: int, world_size: int, pin_memory: bool) -> None:
        if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
            raise InputError("training data must be a map-style Dataset (with len() and indexing) or a DataLoader")
        try:
            num_samples = len(dataset)
        except TypeError:
            raise InputError("training data must have a length (len(dataset))") from None
        if num_samples == 0:
            raise InputError("the training data set is empty")
        self.dataset = dataset
        self.cfg = cfg
        self.collate = collate or default_collate
        self.pin_memory = pin_memory
        self.order = EpochOrder(num_samples, cfg.batch_size, cfg.seed, cfg.shuffle, cfg.drop_last,
                                rank, world_size)
        if len(self.order) == 0:
            raise InputError(f"the training data set has {num_samples} samples, fewer than one batch of "
                             f"{cfg.batch_size} per process with drop_last")

    def __len__(self) -> int:
        return len(self.order)

    def batches(self, epoch: int, start: int) -> Iterable[Any]:
        chosen = self.order.batches(epoch)[start:]
        if not chosen:
            return []
        # a private generator: creating the iterator must not draw from the global RNG
        generator = torch.Generator().manual_seed(_mix(self.cfg.seed, epoch, 7))
        return DataLoader(SeededDataset(self.dataset, self.cfg.seed, epoch), batch_sampler=chosen,
                          collate_fn=self.collate, num_workers=self.cfg.num_workers,
                          pin_memory=self.pin_memory, generator=generator)


class LoaderPlan:
    """A DataLoader given by the user: its own order (resume skips by iterating)."""

    def __init__(self, loader: DataLoader, acc: Accelerator) -> None:
        self.loader = acc.prepare_data_loader(loader, device_placement=False) if acc.num_processes > 1 else loader
        try:
            self.length = len(self.loader)
        except TypeError:
            raise InputError("a DataLoader given to the Trainer must have a length") from None
        if self.length == 0:
            raise InputError("the training DataLoader yields no batches")

    def __len__(self) -> int:
        return self.length

    def batches(self, epoch: int, start: int) -> Iterable[Any]:
        for holder in (self.loader, getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if holder is not None and callable(getattr(holder, "set_epoch", None)):
                cast(Any, holder).set_epoch(epoch)  # duck-typed: checked callable just above
        return itertools.islice(iter(self.loader), start, None)


def make_plan(train_data: Any, cfg: TrainConfig, collate: Callable[[list[Any]], Any] | None,
              acc: Accelerator) -> DataPlan:
    if isinstance(train_data, DataLoader):
        return LoaderPlan(train_data, acc)
    return DatasetPlan(train_data, cfg, collate, acc.process_index, acc.num_processes,
                       pin_memory=acc.device.type == "cuda")
