"""CoOp: learnable context vectors in front of (or around) each class name.

The prompt for class c is ``[SOS] X_1 .. X_n {class c} . [EOS]`` with the X's embeddings learned,
either one context for all classes (unified) or one per class (CSC), and the class token at the end,
in the middle or in front. Everything except the context stays frozen: the token embeddings of the
rest of the prompt are computed once and kept as buffers.

Initialised from a phrase ("a photo of a"), the context equals that phrase's token embeddings, so with
zero training steps the classifier equals the hand-crafted prompt "a photo of a {class}." exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import TextTower, text_tower

PLACEHOLDER = "X"
POSITIONS = ("end", "middle", "front")


@dataclass
class PromptConfig:
    n_ctx: int = 16
    ctx_init: str | None = "a photo of a"  # None or "": random init (std 0.02) with n_ctx vectors
    csc: bool = False  # class-specific context
    class_token_position: str = "end"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PromptLearner(nn.Module):
    """Learned context ``ctx`` and the frozen rest of every class prompt.

    ``forward(shift)`` returns prompt embeddings ``[C, L, W]``; with ``shift`` ``[B, W]`` (CoCoOp's
    image-conditioned bias, added to every context vector) it returns ``[B, C, L, W]``.
    """

    tokens: torch.Tensor  # registered buffers (not saved)
    base: torch.Tensor
    ctx_index: torch.Tensor

    def __init__(self, clip: ClipModel, class_names: Sequence[str], config: PromptConfig) -> None:
        super().__init__()
        if config.class_token_position not in POSITIONS:
            raise InputError(f"class token position '{config.class_token_position}' is not one of "
                             f"{', '.join(POSITIONS)}")
        tower = text_tower(clip)
        self.config = config
        self.class_names = list(class_names)
        init = (config.ctx_init or "").strip()
        with torch.no_grad():
            if init:
                n_ctx = tower.token_count(init) - 2
                init_tokens = tower.tokenize([init])
                ctx = tower.embed(init_tokens)[0, 1:1 + n_ctx].detach().clone().float()
            else:
                n_ctx = config.n_ctx
                ctx = torch.empty(n_ctx, tower.width, device=clip.device).normal_(std=0.02)
        self.n_ctx = n_ctx
        if config.csc:
            ctx = ctx[None].repeat(len(self.class_names), 1, 1)
        self.ctx = nn.Parameter(ctx)
        tokens, index = self._layout(tower)
        with torch.no_grad():
            base = tower.embed(tokens).detach().float()
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("base", base, persistent=False)
        self.register_buffer("ctx_index", index, persistent=False)

    def _layout(self, tower: TextTower) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of every placeholder prompt and where its context vectors go ``[C, n_ctx]``."""
        n, position = self.n_ctx, self.config.class_token_position
        prompts, indices = [], []
        for name in self.class_names:
            name_len = tower.token_count(name) - 2
            ctx = " ".join([PLACEHOLDER] * n)
            half = n // 2
            if position == "end":
                prompt, index = f"{ctx} {name}.", list(range(1, 1 + n))
            elif position == "front":
                prompt, index = f"{name} {ctx}.", list(range(1 + name_len, 1 + name_len + n))
            else:
                first, second = " ".join([PLACEHOLDER] * half), " ".join([PLACEHOLDER] * (n - half))
                prompt = f"{first} {name} {second}.".strip()
                index = list(range(1, 1 + half)) + list(range(1 + half + name_len, 1 + n + name_len))
            tower.check_fits(prompt, f"class '{name}'")
            prompts.append(prompt)
            indices.append(index)
        tokens = tower.tokenize(prompts)
        # Drop the padding every prompt shares: the causal mask (built-in tower) or the attention mask
        # (HF towers) keeps padding out of the pooled token, so this is exact and cuts the text cost.
        if tower.padding_is_inert:
            used = int(tower.attention_mask(tokens).sum(dim=1).max())  # pad may equal the end token
            tokens = tokens[:, :used].contiguous()
        placeholder = tower.tokenize([PLACEHOLDER])[0, 1]
        index_tensor = torch.tensor(indices, dtype=torch.long, device=tokens.device)
        if n and not bool((tokens.gather(1, index_tensor) == placeholder).all()):
            raise InputError(f"the tokenizer does not split '{PLACEHOLDER} .. {PLACEHOLDER}' into one token per "
                             "context vector; cannot place a learned context in these prompts")
        return tokens, index_tensor

    def forward(self, shift: torch.Tensor | None = None) -> torch.Tensor:
        n_classes = len(self.class_names)
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx[None].expand(n_classes, -1, -1)  # [C, n, W]
        if shift is None:
            index = self.ctx_index[..., None].expand(-1, -1, self.base.shape[-1])
            return self.base.scatter(1, index, ctx.to(self.base.dtype))
        batch = shift.shape[0]
        ctx = ctx[None] + shift[:, None, None, :]  # [B, C, n, W]
        index = self.ctx_index[None, ..., None].expand(batch, -1, -1, self.base.shape[-1])
        return self.base[None].expand(batch, -1, -1, -1).scatter(2, index, ctx.to(self.base.dtype))


class CoOpClassifier(nn.Module):
    """Logits ``scale * f @ t(ctx)^T`` for normalised image features ``f`` ``[B, D]``."""

    def __init__(self, clip: ClipModel, class_names: Sequence[str], config: PromptConfig | None = None) -> None:
        super().__init__()
        self.prompt = PromptLearner(clip, class_names, config or PromptConfig())
        self.tower = text_tower(clip)
        self.scale = clip.logit_scale()
        self.class_names = list(class_names)

    def text_features(self) -> torch.Tensor:
        """Normalised features of the learned prompts ``[C, D]``."""
        return nn.functional.normalize(self.tower.encode_embeddings(self.prompt(), self.prompt.tokens), dim=-1)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        text = self.text_features()
        return self.scale * image_features.to(text.dtype) @ text.T
