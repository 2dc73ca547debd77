"""Learnable object-agnostic normal / anomalous prompts through the core's text tower.

AnomalyCLIP: ``[V1..V12] object.`` and ``[W1..W12] damaged object.``, the V/W token embeddings learned,
plus "deep" prompts: in text layers 1..depth-1 the first ``deep_length`` context positions are replaced
by fresh learned tokens (shared by both prompts). AdaptCLIP's textual adapter is the same with no deep
prompts. Any text tower the core supports works (open_clip's own transformer, Hugging Face towers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import replace_span, text_tower

PROMPTS = ("object.", "damaged object.")
PLACEHOLDER = "X"


class PromptTextEncoder(nn.Module):
    tokens: torch.Tensor  # a registered buffer

    def __init__(self, clip: ClipModel, n_ctx: int = 12, deep_depth: int = 0, deep_length: int = 4) -> None:
        super().__init__()
        self.tower = text_tower(clip)  # a plain object: the CLIP weights are frozen and saved elsewhere
        width = self.tower.width
        self.n_ctx, self.deep_depth, self.deep_length = n_ctx, deep_depth, deep_length
        placeholder = " ".join([PLACEHOLDER] * n_ctx)
        prompts = [f"{placeholder} {p}" for p in PROMPTS]
        for prompt in prompts:
            self.tower.check_fits(prompt, "learnable prompt")
        tokens = self.tower.tokenize(prompts).cpu()
        x_id = self.tower.tokenize([PLACEHOLDER])[0, 1].cpu()
        if not bool((tokens[:, 1:1 + n_ctx] == x_id).all()):
            raise ModelError(f"{clip.name}: the tokenizer does not give one token per context vector")
        self.register_buffer("tokens", tokens, persistent=False)
        generator = torch.Generator().manual_seed(0)
        self.ctx = nn.Parameter(torch.randn(len(PROMPTS), n_ctx, width, generator=generator) * 0.02)
        n_deep = max(0, deep_depth - 1)
        self.deep = nn.Parameter(torch.randn(n_deep, deep_length, width, generator=generator) * 0.02)
        self._cache: torch.Tensor | None = None

    def train(self, mode: bool = True) -> PromptTextEncoder:
        self._cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:  # torch's signature, passed through
        self._cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self) -> torch.Tensor:
        """``[2, embed_dim]`` unnormalised text embeddings (normal, anomalous). In eval mode without
        grad the result is cached: inference then costs one image pass, no text pass."""
        if not self.training and not torch.is_grad_enabled():
            if self._cache is None:
                self._cache = self._encode()
            return self._cache
        return self._encode()

    def _encode(self) -> torch.Tensor:
        tokens = self.tokens.to(self.ctx.device)
        x = self.tower.embed(tokens)
        x = torch.cat([x[:, :1], self.ctx.to(x.dtype), x[:, 1 + self.n_ctx:]], dim=1)
        # deep prompts: block i (1 <= i < deep_depth) sees deep[i - 1] over positions 1..deep_length
        hooks = {i: replace_span(self.deep[i - 1], 1) for i in range(1, 1 + len(self.deep))}
        return self.tower.encode_embeddings(x, tokens, hooks)
