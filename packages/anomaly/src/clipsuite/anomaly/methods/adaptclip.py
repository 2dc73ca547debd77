"""AdaptCLIP-style adapters (Gao et al., 2025): visual, textual and prompt-query adapters on a frozen CLIP.

* visual adapter: residual bottleneck MLPs on the image embedding and on the projected patch tokens,
  scored against the static WinCLIP prompt ensemble for "object";
* textual adapter: learnable 12-token normal/anomalous prompts (no deep prompts), scored against the
  unadapted features;
* prompt-query adapter (few-shot): each query patch is aligned to its nearest patch among the normal
  references; fused = q + |q - aligned| goes through a small conv decoder to a 2-class map, and a
  global head reads [mean, top-10 mean] of the fused tokens.

Zero-shot = mean of the visual- and textual-adapter outputs; with references the prompt-query output
joins the mean. One image-encoder pass per query (references are encoded once in ``fit``).
Loss per branch: CE(image) + focal(map) + dice(anomalous) + dice(normal).
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.anomaly.methods.base import AnomalyResult, MethodSetup, References, gaussian_smooth, upsample
from clipsuite.anomaly.methods.learned import load_learned
from clipsuite.anomaly.methods.prompts import prompt_ensemble
from clipsuite.anomaly.methods.text_prompts import PromptTextEncoder
from clipsuite.core.errors import InputError
from clipsuite.core.losses import dice_loss, focal_loss
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import vision_tower

TEMPERATURE = 0.07


class ResidualAdapter(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(cast(nn.Linear, self.net[2]).weight)  # starts as the identity: training begins from plain CLIP
        nn.init.zeros_(cast(nn.Linear, self.net[2]).bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PromptQueryAdapter(nn.Module):
    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.decoder = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 3, padding=1),
                                     nn.GELU(), nn.Conv2d(hidden, 2, 1))
        self.head = nn.Sequential(nn.Linear(2 * dim, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, grid: tuple[int, int],
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``[B, P, D]``, memory ``[M, D]`` (shared) or ``[B, M, D]`` (one per query) ->
        (image logits ``[B, 2]``, map logits ``[B, 2, h, w]``)."""
        q = F.normalize(query, dim=-1)
        m = F.normalize(memory, dim=-1)
        m = m.unsqueeze(0).expand(q.shape[0], -1, -1) if m.ndim == 2 else m
        nearest = (q @ m.transpose(1, 2)).argmax(dim=-1)
        aligned = torch.gather(m, 1, nearest.unsqueeze(-1).expand(-1, -1, m.shape[-1]))
        fused = q + (q - aligned).abs()
        map_logits = self.decoder(fused.transpose(1, 2).reshape(q.shape[0], -1, *grid))
        top = fused.norm(dim=-1).topk(min(10, fused.shape[1]), dim=1).indices
        top_mean = torch.gather(fused, 1, top.unsqueeze(-1).expand(-1, -1, fused.shape[-1])).mean(1)
        return self.head(torch.cat([fused.mean(1), top_mean], dim=-1)), map_logits


class AdaptClip(nn.Module):
    name = "adaptclip"
    references: ClassVar[References] = "optional"  # references add the prompt-query branch
    trained: ClassVar[bool] = True
    static_text: torch.Tensor  # a registered buffer

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> AdaptClip:
        return cast(AdaptClip, load_learned(clip, cls.name, setup.weights, setup.smoothing_sigma))  # cls's own

    def __init__(self, clip: ClipModel, n_ctx: int = 12, hidden: int = 128, smoothing_sigma: float = 4.0) -> None:
        super().__init__()
        self.tower = vision_tower(clip)
        self.clip = clip
        self.settings: dict[str, Any] = {"n_ctx": n_ctx, "hidden": hidden, "smoothing_sigma": smoothing_sigma}
        dim = clip.embed_dim
        self.image_adapter = ResidualAdapter(dim, hidden)
        self.patch_adapter = ResidualAdapter(dim, hidden)
        self.prompts = PromptTextEncoder(clip, n_ctx, deep_depth=0)
        self.pqa = PromptQueryAdapter(dim, hidden // 2)
        self.to(clip.device)
        clip.freeze()
        normal, anomalous = prompt_ensemble("object")
        static = torch.stack([clip.encode_texts(p, normalize=False).mean(0) for p in (normal, anomalous)])
        self.register_buffer("static_text", F.normalize(static, dim=-1).to(clip.device), persistent=False)
        self.memory: torch.Tensor | None = None

    def set_class(self, class_name: str) -> None:
        """Class-agnostic (prompts say "object")."""

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tower, prefix = self.tower, self.tower.prefix_tokens
        with self.clip.autocast():
            projected = tower.project(tower.run_blocks(tower.pre_norm(tower.embed(pixels.to(self.clip.device)))))
        return projected[:, 0].float(), projected[:, prefix:].float()

    @torch.no_grad()
    def fit(self, reference_pixels: torch.Tensor) -> AdaptClip:
        if reference_pixels.ndim != 4 or reference_pixels.shape[0] == 0:
            raise InputError("AdaptCLIP prompt-query adapter needs at least one normal reference image")
        self.memory = self.encode(reference_pixels)[1].reshape(-1, self.clip.embed_dim)
        return self

    def _grid(self, logits: torch.Tensor) -> torch.Tensor:
        height, width = self.clip.patch_grid
        return logits.transpose(1, 2).reshape(-1, 2, height, width)

    def branches(self, pixels: torch.Tensor, memory: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(image logits, map logits) per active branch."""
        image, patches = self.encode(pixels)
        text = F.normalize(self.prompts().float(), dim=-1)
        out = []
        adapted_image = F.normalize(self.image_adapter(image), dim=-1)
        adapted_patches = F.normalize(self.patch_adapter(patches), dim=-1)
        out.append((adapted_image @ self.static_text.T / TEMPERATURE,
                    self._grid(adapted_patches @ self.static_text.T / TEMPERATURE)))
        out.append((F.normalize(image, dim=-1) @ text.T / TEMPERATURE,
                    self._grid(F.normalize(patches, dim=-1) @ text.T / TEMPERATURE)))
        if memory is not None:
            out.append(self.pqa(patches, memory, self.clip.patch_grid))
        return out

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # the prompt-query branch learns against one normal reference from each item's category
        memory_per_item = self.encode(batch["reference"].to(self.clip.device))[1].detach()
        masks = batch["mask"].to(self.clip.device)
        labels = batch["label"].to(self.clip.device).long()
        total = torch.zeros((), device=self.clip.device)
        branches = self.branches(batch["pixels"], memory_per_item)
        for image_logits, map_logits in branches:
            logits = F.interpolate(map_logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            probs = logits.softmax(dim=1)
            total = total + F.cross_entropy(image_logits, labels) + focal_loss(logits, (masks > 0.5).long())
            total = total + dice_loss(probs[:, 1], masks) + dice_loss(probs[:, 0], 1 - masks)
        return {"loss": total}

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> AnomalyResult:
        branches = self.branches(pixels, self.memory)
        size = (pixels.shape[-2], pixels.shape[-1])
        scores = torch.stack([b[0].softmax(-1)[:, 1] for b in branches]).mean(0)
        maps = torch.stack([upsample(b[1].softmax(1)[:, 1], size) for b in branches]).mean(0)
        sigma = self.settings["smoothing_sigma"] * pixels.shape[-1] / 518
        return AnomalyResult(scores, gaussian_smooth(maps, sigma))

    def learned_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("static_text")}
