"""Learnable object-agnostic normal / anomalous prompts for an open_clip text tower.

AnomalyCLIP: ``[V1..V12] object.`` and ``[W1..W12] damaged object.``, the V/W token embeddings learned,
plus "deep" prompts: in text layers 1..depth-1 the first ``deep_length`` context positions are replaced
by fresh learned tokens (shared by both prompts). AdaptCLIP's textual adapter is the same with no deep
prompts. Works on open_clip's own text transformer (CLIP); an HF text tower raises ``ModelError``.
"""

from __future__ import annotations

import torch
from torch import nn

from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel

PROMPTS = ("object.", "damaged object.")


class PromptTextEncoder(nn.Module):
    def __init__(self, clip: ClipModel, n_ctx: int = 12, deep_depth: int = 0, deep_length: int = 4) -> None:
        super().__init__()
        model = clip.model
        if clip.has_hf_text or not hasattr(model, "token_embedding"):
            raise ModelError(f"{clip.name}: learnable prompts need open_clip's own text transformer (not an HF tower)")
        width = model.token_embedding.weight.shape[1]
        self.n_ctx, self.deep_depth, self.deep_length = n_ctx, deep_depth, deep_length
        placeholder = " ".join(["X"] * n_ctx)
        tokens = clip.tokenize([f"{placeholder} {p}" for p in PROMPTS]).cpu()
        self.register_buffer("tokens", tokens, persistent=False)
        generator = torch.Generator().manual_seed(0)
        self.ctx = nn.Parameter(torch.randn(len(PROMPTS), n_ctx, width, generator=generator) * 0.02)
        n_deep = max(0, deep_depth - 1)
        self.deep = nn.Parameter(torch.randn(n_deep, deep_length, width, generator=generator) * 0.02)
        self._model = [model]  # not a submodule: the CLIP weights are frozen and saved elsewhere
        self._cache: torch.Tensor | None = None

    def train(self, mode: bool = True) -> PromptTextEncoder:
        self._cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
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
        model = self._model[0]
        tokens = self.tokens.to(self.ctx.device)
        x = model.token_embedding(tokens)
        x = torch.cat([x[:, :1], self.ctx.to(x.dtype), x[:, 1 + self.n_ctx:]], dim=1)
        x = x + model.positional_embedding.to(x.dtype)
        mask = getattr(model, "attn_mask", None)
        for i, block in enumerate(model.transformer.resblocks):
            if 1 <= i < self.deep_depth and i - 1 < len(self.deep):
                deep = self.deep[i - 1].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
                x = torch.cat([x[:, :1], deep, x[:, 1 + self.deep_length:]], dim=1)
            x = block(x, attn_mask=mask)
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        projection = model.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection
