"""Exponential moving average of the trainable parameters (kept in float32; sharded like them under FSDP)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from clipsuite.core.train.shards import shard_like


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after every optimizer step."""

    def __init__(self, named_params: Mapping[str, torch.nn.Parameter], decay: float) -> None:
        self.decay = float(decay)
        self.params = dict(named_params)
        self.shadow = {name: p.detach().float().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for name, param in self.params.items():
            self.shadow[name].lerp_(param.detach().float(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Load the averaged weights into the live parameters (done once training ends)."""
        for name, param in self.params.items():
            param.copy_(self.shadow[name].to(param.dtype))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for name in self.shadow:
            live = self.shadow[name]  # a 0-dim parameter that FSDP trains as a 1-element vector: reshape
            saved = tensors[name].to(torch.float32).reshape(live.shape)
            self.shadow[name] = shard_like(saved, live).clone()
