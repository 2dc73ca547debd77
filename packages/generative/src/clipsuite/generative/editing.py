"""The editing generator: image variation by img2img DDIM, conditioned on one CLIP image code.

A diffusers ``UNet2DConditionModel`` (4 input channels) attends to a single token, the generator's
conditioning code ``e`` (the un-normalised projected CLIP image embedding, as diffusers'
``StableDiffusionImageVariationPipeline`` uses it). Editing keeps the input's structure by starting
from its latent noised to ``noise_strength`` (img2img), and steers content by the code: DeltaSpace
moves ``e`` (``methods.deltaspace.edit_codes``), this module renders it. Classifier-free guidance
uses the zero code as the unconditional input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from clipsuite.core.errors import InputError
from clipsuite.generative.components import DiffusionParts

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput


@dataclass(frozen=True)
class EditOptions:
    steps: int = 20
    noise_strength: float = 0.6   # how far into the noise the input goes (1 = ignore its structure)
    guidance: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.noise_strength <= 1:
            raise InputError(f"noise strength must be in (0, 1], got {self.noise_strength}")
        if self.steps < 1:
            raise InputError(f"steps must be at least 1, got {self.steps}")


class VariationGenerator:
    """``parts.unet`` must take 4 channels and attend to ``code_dim``-wide states."""

    def __init__(self, parts: DiffusionParts, device: str | torch.device = "cpu") -> None:
        if parts.unet.config["in_channels"] != parts.vae.config["latent_channels"]:
            raise InputError(f"the editing UNet takes {parts.unet.config['in_channels']} channels; an image-variation "
                             f"UNet takes the VAE's {parts.vae.config['latent_channels']} (build_parts(in_channels=4))")
        self.parts, self.device = parts, torch.device(device)
        # diffusers wraps ModelMixin.to in functools.wraps(nn.Module.to), which mypy cannot bind to an instance
        cast(nn.Module, parts.unet).to(self.device).eval()
        cast(nn.Module, parts.vae).to(self.device).eval()

    @property
    def code_dim(self) -> int:
        return int(self.parts.unet.config["cross_attention_dim"])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, codes: torch.Tensor, options: EditOptions | None = None,
                 on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """``images`` ``[B, 3, H, W]`` in [-1, 1], ``codes`` ``[B, code_dim]`` -> images in [-1, 1]."""
        options = options or EditOptions()
        if codes.shape != (len(images), self.code_dim):
            raise InputError(f"codes must be [{len(images)}, {self.code_dim}], got {list(codes.shape)}")
        vae, unet, scheduler = self.parts.vae, self.parts.unet, self.parts.scheduler
        latents = vae.encode(images.to(self.device)).latent_dist.mode() * vae.config["scaling_factor"]
        scheduler.set_timesteps(options.steps, device=self.device)
        start = options.steps - max(1, round(options.steps * options.noise_strength))
        timesteps = scheduler.timesteps[start:]
        generator = torch.Generator("cpu").manual_seed(options.seed)
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        latents = scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps[:1].repeat(len(latents))))
        states = codes.to(self.device, latents.dtype)[:, None, :]
        guided = options.guidance > 1.0
        if guided:
            states = torch.cat([torch.zeros_like(states), states])
        for i, t in enumerate(timesteps):
            model_in = scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, t)
            pred = unet(model_in, t, encoder_hidden_states=states).sample
            if guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + options.guidance * (cond - uncond)
            latents = cast("DDIMSchedulerOutput", scheduler.step(pred, t, latents)).prev_sample  # return_dict=True
            if on_step is not None:
                on_step(i + 1, len(timesteps))
        return vae.decode(latents / vae.config["scaling_factor"]).sample.float().clamp(-1, 1)
