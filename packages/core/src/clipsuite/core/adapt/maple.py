"""MaPLe: coupled deep prompts in both towers.

Text: n_ctx (2) learned vectors replace the first tokens of "a photo of a {class}.", and blocks
1..depth-1 each get fresh learned vectors at the same positions. Vision: each text prompt passes a
per-layer Linear(text width -> vision width) and the results are appended as extra tokens to the
image sequence (shallow, before ``ln_pre``) or written over them (deep), so the two towers' prompts
are coupled. Needs pixels: the image tower runs with the prompts, so no feature cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from clipsuite.core.adapt.coop import PromptConfig, PromptLearner
from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import deep_prompt_hooks, text_tower, vision_tower


@dataclass
class MaPLeConfig:
    n_ctx: int = 2
    depth: int = 9  # capped at the towers' depths
    ctx_init: str = "a photo of a"
    # "hidden": deep text prompts start as the frozen tower's own hidden states of the init tokens (so
    # the text side starts at the hand-crafted prompt); "random": N(0, 0.02) as in the paper
    deep_init: str = "hidden"
    zero_vision: bool = False  # start the text->vision couplings at zero

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MaPLeClassifier(nn.Module):
    def __init__(self, clip: ClipModel, class_names: Sequence[str], config: MaPLeConfig | None = None) -> None:
        super().__init__()
        config = config or MaPLeConfig()
        self.config = config
        # towers are plain objects (not submodules), so the frozen CLIP weights are never saved here
        self.tower = text_tower(clip)
        self.vision = vision_tower(clip)
        if not self.vision.pools_class_token:
            raise ModelError(f"{clip.name}: MaPLe needs an image tower pooled at the class token")
        self.clip = clip
        words = config.ctx_init.split()
        # the first n_ctx tokens of the init phrase are learned; the rest stays part of the frozen prompt
        learned, fixed = " ".join(words[:config.n_ctx]), " ".join(words[config.n_ctx:])
        prompt_names = [f"{fixed} {name}".strip() for name in class_names]
        self.prompt = PromptLearner(clip, prompt_names, PromptConfig(n_ctx=config.n_ctx, ctx_init=learned))
        n, text_width = self.prompt.n_ctx, self.tower.width
        vision_width = self.vision.width
        self.depth = max(1, min(config.depth, self.tower.depth, self.vision.depth))
        device = clip.device
        self.text_deep = nn.ParameterList(
            [nn.Parameter(torch.empty(n, text_width, device=device).normal_(std=0.02)) for _ in range(self.depth - 1)])
        self.proj = nn.Linear(text_width, vision_width).to(device)
        self.deep_proj = nn.ModuleList([nn.Linear(text_width, vision_width).to(device) for _ in range(self.depth - 1)])
        if config.deep_init == "hidden" and self.depth > 1:
            with torch.no_grad():
                for param, hidden in zip(self.text_deep, self._hidden_states()):
                    param.copy_(hidden)
        if config.zero_vision:
            for layer in (self.proj, *self.deep_proj):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.scale = clip.logit_scale()
        self.class_names = list(class_names)

    @torch.no_grad()
    def _hidden_states(self) -> list[torch.Tensor]:
        """Inputs of blocks 1..depth-1 at the context positions for the plain prompts, averaged over
        classes (they are class-independent under a causal mask; an average for bidirectional towers)."""
        captured: list[torch.Tensor] = []
        n = self.prompt.n_ctx

        def grab(hidden: torch.Tensor) -> torch.Tensor:
            captured.append(hidden[:, 1:1 + n].float().mean(dim=0))
            return hidden

        self.tower.encode_embeddings(self.prompt(), self.prompt.tokens, {i: grab for i in range(1, self.depth)})
        return captured

    def text_features(self) -> torch.Tensor:
        hooks = deep_prompt_hooks([None, *self.text_deep], start=1)
        text = self.tower.encode_embeddings(self.prompt(), self.prompt.tokens, hooks)
        return torch.nn.functional.normalize(text, dim=-1)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        tower = self.vision
        x = tower.embed(pixels.to(self.clip.device))
        # shallow prompts: appended after the patches, before the pre-norm; deep ones overwrite them
        shallow = self.proj(self.prompt.ctx).to(x.dtype)
        x = tower.pre_norm(torch.cat([x, shallow.expand(x.shape[0], -1, -1)], dim=1))
        deep = [None, *[proj(p) for proj, p in zip(self.deep_proj, self.text_deep)]]
        x = tower.run_blocks(x, hooks=deep_prompt_hooks(deep, start=None))
        return torch.nn.functional.normalize(tower.pool(x).float(), dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        text = self.text_features()
        return self.scale * self.image_features(pixels) @ text.T
