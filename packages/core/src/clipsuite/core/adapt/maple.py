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

from clipsuite.core.adapt.coop import PromptConfig, PromptLearner, logit_scale
from clipsuite.core.adapt.text_encoding import TextTower, replace_tokens
from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel


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


def _vision_tower(clip: ClipModel) -> nn.Module:
    visual = clip.model.visual
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "_pool")
    if not all(hasattr(visual, name) for name in needed) or getattr(visual, "pool_type", "tok") != "tok":
        raise ModelError(f"{clip.name}: MaPLe needs an open_clip ViT image tower pooled at the class token")
    return visual


class MaPLeClassifier(nn.Module):
    def __init__(self, clip: ClipModel, class_names: Sequence[str], config: MaPLeConfig | None = None) -> None:
        super().__init__()
        config = config or MaPLeConfig()
        self.config = config
        self.tower = TextTower(clip)
        _vision_tower(clip)  # checked now; reached through self.clip so it is not a submodule (nor saved)
        self.clip = clip
        words = config.ctx_init.split()
        # the first n_ctx tokens of the init phrase are learned; the rest stays part of the frozen prompt
        learned, fixed = " ".join(words[:config.n_ctx]), " ".join(words[config.n_ctx:])
        prompt_names = [f"{fixed} {name}".strip() for name in class_names]
        self.prompt = PromptLearner(clip, prompt_names, PromptConfig(n_ctx=config.n_ctx, ctx_init=learned))
        n, text_width = self.prompt.n_ctx, self.tower.width
        vision_width = int(self.visual.conv1.out_channels)
        self.depth = max(1, min(config.depth, len(self.tower.blocks), len(self.visual.transformer.resblocks)))
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
        self.scale = logit_scale(clip)
        self.class_names = list(class_names)

    @torch.no_grad()
    def _hidden_states(self) -> list[torch.Tensor]:
        """Inputs of blocks 1..depth-1 at the context positions for the plain prompts, averaged over
        classes (they are class-independent under a causal mask; an average for bidirectional towers)."""
        captured: list[torch.Tensor] = []
        n = self.prompt.n_ctx

        def hook(module, args, kwargs):  # type: ignore[no-untyped-def]
            hidden = args[0] if args else kwargs["hidden_states"]
            captured.append(hidden[:, 1:1 + n].float().mean(dim=0))

        blocks = self.tower.blocks[1:self.depth]
        handles = [b.register_forward_pre_hook(hook, with_kwargs=True) for b in blocks]
        try:
            self.tower.encode(self.prompt(), self.prompt.tokens)
        finally:
            for handle in handles:
                handle.remove()
        return captured

    @property
    def visual(self) -> nn.Module:
        return self.clip.model.visual

    def text_features(self) -> torch.Tensor:
        deep = [None, *self.text_deep]
        return self.tower.encode(self.prompt(), self.prompt.tokens, deep_prompts=deep, deep_start=1)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        dtype = visual.conv1.weight.dtype
        x = visual.conv1(pixels.to(self.clip.device, dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        shallow = self.proj(self.prompt.ctx).to(x.dtype)
        x = torch.cat([x, shallow.expand(x.shape[0], -1, -1)], dim=1)
        x = visual.ln_pre(x)
        deep = [None, *[proj(p) for proj, p in zip(self.deep_proj, self.text_deep)]]
        with replace_tokens(list(visual.transformer.resblocks), deep, start=None):
            x = visual.transformer(x)
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        text = self.text_features()
        return self.scale * self.image_features(pixels) @ text.T
