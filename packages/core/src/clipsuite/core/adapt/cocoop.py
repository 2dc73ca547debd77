"""CoCoOp: CoOp whose context is shifted per image by a small meta-net of the image feature.

meta-net: Linear(D -> D/16) -> ReLU -> Linear(-> text width); its output is added to every context
vector, so each image gets its own prompts (``[B, C]`` text encodings per batch); n_ctx 4 by default.
The meta-net's last layer starts at zero, so an untrained CoCoOp equals its CoOp initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from clipsuite.core.adapt.coop import PromptConfig, PromptLearner
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import text_tower


class CoCoOpClassifier(nn.Module):
    def __init__(self, clip: ClipModel, class_names: Sequence[str], config: PromptConfig | None = None) -> None:
        super().__init__()
        self.prompt = PromptLearner(clip, class_names, config or PromptConfig(n_ctx=4))
        self.tower = text_tower(clip)
        dim, hidden = clip.embed_dim, max(clip.embed_dim // 16, 1)
        self.meta_net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, self.tower.width)).to(clip.device)
        # Start from CoOp's prompt: a zero last layer makes the initial shift zero. (The paper keeps
        # PyTorch's default init; with small-norm token embeddings such as the tiny models' that random
        # shift swamps the context and the start is far worse than zero-shot.)
        last = cast(nn.Linear, self.meta_net[2])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.scale = clip.logit_scale()
        self.class_names = list(class_names)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        image_features = image_features.float()
        shift = self.meta_net(image_features)  # [B, W]
        prompts = self.prompt(shift)  # [B, C, L, W]
        batch, classes = prompts.shape[:2]
        tokens = self.prompt.tokens[None].expand(batch, -1, -1).reshape(batch * classes, -1)
        text = self.tower.encode_embeddings(prompts.reshape(batch * classes, *prompts.shape[2:]), tokens)
        text = nn.functional.normalize(text, dim=-1)
        text = text.reshape(batch, classes, -1)
        return self.scale * torch.einsum("bd,bcd->bc", image_features.to(text.dtype), text)
