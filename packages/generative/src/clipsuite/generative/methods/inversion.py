"""The textual-inversion adapter (LaDI-VTON): a garment, seen by the CLIP image tower, becomes
pseudo-word embeddings that stand in a prompt for the CLIP text encoder.

Garment pixels -> the CLIP vision tower's final tokens (all of them) -> one transformer layer ->
layer norm -> class token -> MLP -> ``n_tokens`` embeddings of the text tower's width. The prompt
``"a photo of a model wearing {category} $ $ ... $"`` is tokenized, embedded by the text tower, and
each placeholder ``$`` embedding is replaced by a pseudo-word, in order; the text tower then runs on
embeddings (``TextTower.encode_states``: no private transformers helpers), giving the states the
UNet attends to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import InputError, ModelError

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    from clipsuite.core.models import ClipModel
    from clipsuite.core.towers.base import TextTower, VisionTower
    from clipsuite.generative.methods.tryon_unet import TryOnUNet

PLACEHOLDER = "$"
CATEGORY_WORDS = {"upper_body": "upper body garment", "lower_body": "lower body garment", "dresses": "dress"}


def tryon_prompt(category: str, n_tokens: int) -> str:
    if category not in CATEGORY_WORDS:
        raise InputError(f"unknown category '{category}' (choose from {', '.join(CATEGORY_WORDS)})")
    return f"a photo of a model wearing {CATEGORY_WORDS[category]} " + " ".join([PLACEHOLDER] * n_tokens)


class InversionAdapter(nn.Module):
    def __init__(self, vision_width: int, text_width: int, n_tokens: int = 16, heads: int = 4,
                 hidden: int | None = None) -> None:
        super().__init__()
        self.n_tokens, self.text_width = n_tokens, text_width
        self.layer = nn.TransformerEncoderLayer(vision_width, heads, 4 * vision_width, dropout=0.0,
                                                activation="gelu", batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(vision_width)
        hidden = hidden or 4 * vision_width
        self.mlp = nn.Sequential(nn.Linear(vision_width, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, n_tokens * text_width))

    def forward(self, vision_tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L, vision_width]`` (class token first) -> pseudo-words ``[B, n_tokens, text_width]``."""
        pooled = self.norm(self.layer(vision_tokens))[:, 0]
        return self.mlp(pooled).view(-1, self.n_tokens, self.text_width)


def clip_pixels(images: torch.Tensor, clip: ClipModel) -> torch.Tensor:
    """Images in [-1, 1] ``[B, 3, H, W]`` -> the CLIP tower's input (square resize, its mean/std)."""
    size = clip.image_size
    x = F.interpolate((images.float() + 1) / 2, size=(size, size), mode="bicubic", align_corners=False)
    mean = torch.tensor(clip.preprocess_cfg.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(clip.preprocess_cfg.std, device=x.device).view(1, 3, 1, 1)
    return (x.clamp(0, 1) - mean) / std


def vision_tokens(tower: VisionTower, pixels: torch.Tensor) -> torch.Tensor:
    """The image tower's final hidden tokens ``[B, 1 + h*w, width]`` through the core tower steps."""
    return tower.run_blocks(tower.pre_norm(tower.embed(pixels.to(tower.dtype))))


def placeholder_id(tower: TextTower) -> int:
    """The token id of ``$`` alone (refuses a tokenizer that splits it or merges it)."""
    with_mark = tower.tokenize([PLACEHOLDER])[0]
    plain = tower.tokenize([""])[0]
    extra = [int(t) for t in with_mark[tower.attention_mask(with_mark[None])[0] > 0]
             if int(t) not in set(plain.tolist())]
    if len(extra) != 1:
        raise ModelError(f"the text tokenizer splits the placeholder '{PLACEHOLDER}' into {len(extra)} tokens")
    return extra[0]


def prompt_states(tower: TextTower, prompts: Sequence[str], pseudo_words: torch.Tensor | None,
                  clip_skip: int = 0) -> torch.Tensor:
    """Text-encoder states ``[B, L, width]`` of ``prompts`` with the ``$`` embeddings replaced by
    ``pseudo_words`` ``[B, n, width]`` (n per prompt, in order). Gradients flow into the pseudo-words.
    ``clip_skip``: last text layers left out (1 for SD-2's OpenCLIP ViT-H, see ``presets``)."""
    tokens = tower.tokenize(prompts)
    embeddings = tower.embed(tokens)
    if pseudo_words is not None:
        where = tokens == placeholder_id(tower)
        counts = where.sum(dim=1)
        if not bool((counts == pseudo_words.shape[1]).all()):
            raise ModelError(f"prompt holds {counts.tolist()} placeholders for {pseudo_words.shape[1]} pseudo-words "
                             "(did the tokenizer cut the prompt?)")
        embeddings = embeddings.clone()
        embeddings[where] = pseudo_words.reshape(-1, pseudo_words.shape[-1]).to(embeddings.dtype)
    return tower.encode_states(embeddings, tokens, clip_skip=clip_skip)


class InversionTask:
    """Train the adapter (LaDI-VTON stage 3): epsilon MSE of the frozen inpainting UNet conditioned on
    the prompt whose placeholders hold the garment's pseudo-words; CLIP, VAE and UNet stay frozen."""

    clip_identity: dict[str, str] | None = None  # the CLIP it reads and writes for (part_files.check_clip)

    def __init__(self, adapter: InversionAdapter, clip: ClipModel, unet: TryOnUNet, vae: AutoencoderKL,
                 scheduler: DDIMScheduler, category: str = "upper_body") -> None:
        from clipsuite.core.towers import text_tower, vision_tower

        self.module, self.clip, self.unet, self.vae, self.scheduler = adapter, clip, unet, vae, scheduler
        self.vision, self.text = vision_tower(clip), text_tower(clip)
        self.prompt = tryon_prompt(category, adapter.n_tokens)
        self.text.check_fits(self.prompt, "inversion prompt")
        from clipsuite.generative.presets import text_clip_skip

        self.clip_skip = text_clip_skip(clip.name)
        for module in (self.vision.module, self.text.module, unet, vae):
            module.requires_grad_(False).eval()

    def frozen_modules(self) -> list[nn.Module]:
        return [self.vision.module, self.text.module, self.unet, self.vae]

    def states(self, cloth: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            tokens = vision_tokens(self.vision, clip_pixels(cloth, self.clip))
        words = self.module(tokens.float())
        return prompt_states(self.text, [self.prompt] * len(cloth), words, self.clip_skip)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from clipsuite.generative.methods.tryon_unet import TryOnConditions
        from clipsuite.generative.pipeline import encode_latents, latent_mask

        image = batch["image"]
        latents = encode_latents(self.vae, image)
        cond = TryOnConditions(latent_mask(batch["mask"], latents.shape[-2:]),
                               encode_latents(self.vae, batch["masked_image"]))
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.scheduler.config["num_train_timesteps"], (len(image),),
                          device=image.device)
        noisy = self.scheduler.add_noise(latents, noise, cast(torch.IntTensor, t))  # any integer tensor
        return F.mse_loss(self.unet(noisy, t, self.states(batch["cloth"]), cond).float(), noise)

    def config(self) -> dict[str, object]:
        return {"stage": "inversion", "n_tokens": self.module.n_tokens, "text_width": self.module.text_width,
                "prompt": self.prompt}
