"""Try-on inference: DDIM sampling with classifier-free guidance over the try-on conditions.

One step of guidance runs the UNet on two halves of a batch: the conditional half sees the prompt
states, the pose heatmaps and the warped garment; the unconditional half sees the empty-prompt states
with pose and garment zeroed (the same dropout the UNet was trained with). The repaint mask and the
masked person are given to both, as in inpainting. After decoding (through EMASC when there is one),
pixels outside the mask are the input's own (``keep_unmasked``): a try-on never alters what was not
asked to change.

Memory options: ``precision`` fp16/bf16 casts the weights (half the memory), ``attention_slicing``
computes attention a head-slice at a time (diffusers' ``set_attention_slice``), ``cpu_offload`` keeps
every part on the CPU and moves each to the accelerator only while it runs (a no-op on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import InputError
from clipsuite.generative.components import DiffusionParts
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.tryon_unet import TryOnConditions, TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput

WEIGHT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class MemoryOptions:
    precision: str = "fp32"          # fp32 | fp16 | bf16 (cast weights)
    attention_slicing: bool = False
    cpu_offload: bool = False

    def __post_init__(self) -> None:
        if self.precision not in WEIGHT_DTYPES:
            raise InputError(f"unknown precision '{self.precision}' (choose from {', '.join(WEIGHT_DTYPES)})")


@dataclass(frozen=True)
class SamplingOptions:
    steps: int = 50
    guidance: float = 7.5
    seed: int = 0
    keep_unmasked: bool = True


def latent_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Pixel mask ``[B, 1, H, W]`` -> latent resolution, as diffusers' inpainting pipeline does (nearest)."""
    return F.interpolate(mask, size=size, mode="nearest")


class TryOnPipeline:
    """The try-on model's parts and the sampling loop. ``warper`` / ``emasc`` are optional stages."""

    def __init__(self, parts: DiffusionParts, unet: TryOnUNet, emasc: EMASC | None = None,
                 warper: GarmentWarper | None = None, device: str | torch.device = "cpu",
                 memory: MemoryOptions | None = None) -> None:
        self.parts, self.unet, self.emasc, self.warper = parts, unet, emasc, warper
        self.device = torch.device(device)
        self.memory = memory or MemoryOptions()
        self.dtype = WEIGHT_DTYPES[self.memory.precision]
        home = torch.device("cpu") if self.memory.cpu_offload else self.device
        for module in self._modules():
            module.to(device=home, dtype=self.dtype).eval()
        slice_size = "auto" if self.memory.attention_slicing else None
        # diffusers' annotation omits None, which it passes itself to turn slicing off (disable_attention_slicing)
        self.unet.unet.set_attention_slice(slice_size)  # type: ignore[arg-type]  # None: slicing off

    def _modules(self) -> list[nn.Module]:
        return [m for m in (self.parts.vae, self.unet, self.emasc, self.warper) if m is not None]

    @contextmanager
    def _placed(self, module: nn.Module) -> Iterator[nn.Module]:
        """``module`` on the compute device for the duration (model-level CPU offload)."""
        if self.memory.cpu_offload and self.device.type != "cpu":
            module.to(self.device)
            try:
                yield module
            finally:
                module.to("cpu")
        else:
            yield module

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.parts.vae
        with self._placed(vae):
            latents = vae.encode(pixels.to(self.device, self.dtype)).latent_dist.mode()
        return latents * vae.config["scaling_factor"]

    @torch.no_grad()
    def __call__(self, sample: dict[str, torch.Tensor], prompt_states: torch.Tensor, null_states: torch.Tensor,
                 options: SamplingOptions | None = None,
                 on_step: Callable[[int, int], None] | None = None) -> dict[str, torch.Tensor]:
        """``sample``: batched tensors as ``data.load_sample`` makes them (image, mask, masked_image,
        pose, cloth). ``prompt_states`` / ``null_states``: text-encoder states ``[B, L, D]``.
        Returns ``{"image": [B, 3, H, W] in [-1, 1], "warped_cloth": ...}``."""
        options = options or SamplingOptions()
        image, mask = sample["image"].to(self.device), sample["mask"].to(self.device)
        masked, pose, cloth = (sample[k].to(self.device) for k in ("masked_image", "pose", "cloth"))
        if self.warper is not None:
            with self._placed(self.warper):
                cloth = self.warper(cloth.to(self.dtype), masked.to(self.dtype), pose.to(self.dtype))["refined"]
        masked_latent = self._encode(masked)
        cloth_latent = self._encode(cloth)
        b, c, h, w = masked_latent.shape
        cond = TryOnConditions(latent_mask(mask, (h, w)).to(self.dtype), masked_latent, pose.to(self.dtype),
                               cloth_latent)
        guided = options.guidance > 1.0
        if guided:
            uncond = cond.drop({"pose": torch.zeros(b), "cloth_latent": torch.zeros(b)})
            both = TryOnConditions(*(torch.cat([cast(torch.Tensor, u), cast(torch.Tensor, v)]) for u, v in  # all given
                                     zip((uncond.mask, uncond.masked_latent, uncond.pose, uncond.cloth_latent),
                                         (cond.mask, cond.masked_latent, cond.pose, cond.cloth_latent))))
            states = torch.cat([null_states, prompt_states]).to(self.device, self.dtype)
        else:
            both, states = cond, prompt_states.to(self.device, self.dtype)
        scheduler = self.parts.scheduler
        scheduler.set_timesteps(options.steps, device=self.device)
        generator = torch.Generator("cpu").manual_seed(options.seed)
        latents = torch.randn((b, c, h, w), generator=generator).to(self.device, self.dtype)
        latents = latents * scheduler.init_noise_sigma
        with self._placed(self.unet):
            for i, t in enumerate(scheduler.timesteps):
                model_in = scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, t)
                noise = self.unet(model_in, t, states, both)
                if guided:
                    noise_uncond, noise_cond = noise.chunk(2)
                    noise = noise_uncond + options.guidance * (noise_cond - noise_uncond)
                latents = cast("DDIMSchedulerOutput", scheduler.step(noise, t, latents)).prev_sample  # return_dict
                if on_step is not None:
                    on_step(i + 1, len(scheduler.timesteps))
        latents = latents / self.parts.vae.config["scaling_factor"]
        with self._placed(self.parts.vae):
            if self.emasc is not None:
                with self._placed(self.emasc):
                    out = self.emasc.decode(self.parts.vae, latents, masked.to(self.dtype), mask)
            else:
                out = self.parts.vae.decode(latents).sample
        out = out.float().clamp(-1, 1)
        if options.keep_unmasked:
            out = out * mask + image * (1 - mask)
        return {"image": out, "warped_cloth": cloth.float()}


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] -> the VAE's scaled latents (the distribution's mode: training and inference agree)."""
    return vae.encode(pixels.to(vae.dtype)).latent_dist.mode() * vae.config["scaling_factor"]
