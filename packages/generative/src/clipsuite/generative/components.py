"""The diffusers parts of a try-on / editing model, built from configs (no hub, no network).

``TINY_UNET`` / ``TINY_VAE`` are the shapes diffusers' own tests use for an inpainting pipeline
(1.4 M + 0.7 M parameters, seconds on a CPU), ``MICRO_*`` a quarter of that for tests and the
demo; ``SD2_INPAINT_UNET`` / ``SD2_VAE`` are the
published ``stabilityai/stable-diffusion-2-inpainting`` shapes (``sd2-inpainting-random``), for randomly
initialised full-size benchmarks. Real weights load through ``from_pretrained`` on a local folder (same
classes) or the ``sd2-inpainting`` preset (``presets.sd2_parts``, from the Hugging Face cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL  # not `from diffusers`: mypy sees its dummies
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler

from clipsuite.core.errors import ModelError

TINY_UNET: dict[str, Any] = {
    "block_out_channels": (32, 64), "layers_per_block": 2, "sample_size": 32, "in_channels": 9,
    "out_channels": 4, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "cross_attention_dim": 32,
    "attention_head_dim": 8, "norm_num_groups": 16,
}
TINY_VAE: dict[str, Any] = {
    "block_out_channels": (32, 64), "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"), "norm_num_groups": 16,
}
# stabilityai/stable-diffusion-2-inpainting (unet/config.json, vae/config.json)
SD2_INPAINT_UNET: dict[str, Any] = {
    "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "sample_size": 64, "in_channels": 9,
    "out_channels": 4, "cross_attention_dim": 1024, "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
SD2_VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512), "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "sample_size": 512,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
}
# smaller still, for tests and the one-minute demo on a shared CPU (one layer per block, half the width)
MICRO_UNET: dict[str, Any] = {**TINY_UNET, "block_out_channels": (16, 32), "layers_per_block": 1,
                              "norm_num_groups": 8}
MICRO_VAE: dict[str, Any] = {**TINY_VAE, "block_out_channels": (16, 32), "layers_per_block": 1,
                             "norm_num_groups": 8}
SIZES = {"micro": (MICRO_UNET, MICRO_VAE), "tiny": (TINY_UNET, TINY_VAE),
         "sd2-inpainting-random": (SD2_INPAINT_UNET, SD2_VAE)}
SCHEDULER: dict[str, Any] = {  # SD-2 inpainting's scheduler settings, as DDIM
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
    "set_alpha_to_one": False, "steps_offset": 1, "num_train_timesteps": 1000,
}


class _NoEmptyFp32Note(logging.Filter):
    """diffusers warns "There are modules in AutoencoderKL that should be kept in float32: []" whenever a part
    is moved with a dtype, also when the list is empty: nothing to act on, so that record is dropped (a
    non-empty list still shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def _quiet_diffusers() -> None:
    source = logging.getLogger("diffusers.models.modeling_utils")  # the logger that emits it (ModelMixin.to)
    if not any(isinstance(f, _NoEmptyFp32Note) for f in source.filters):
        source.addFilter(_NoEmptyFp32Note())


_quiet_diffusers()


@dataclass
class DiffusionParts:
    """The diffusers parts of the generator: inpainting UNet, VAE and scheduler."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell (8 for SD, 2 for the tiny VAE)."""
        return 2 ** (len(self.vae.config["block_out_channels"]) - 1)


def build_parts(size: str = "tiny", seed: int = 0, cross_attention_dim: int | None = None,
                in_channels: int | None = None) -> DiffusionParts:
    """Seeded, randomly initialised parts of a named size (``micro``, ``tiny`` or ``sd2-inpainting-random``).
    The caller's RNG is left as it was. ``cross_attention_dim`` follows the text tower (or image code) the
    UNet will listen to; ``in_channels`` 4 makes a plain (not inpainting) UNet, for image variation and editing."""
    if size not in SIZES:
        raise ModelError(f"unknown generator size '{size}' (choose from {', '.join(SIZES)})")
    unet_cfg, vae_cfg = (dict(c) for c in SIZES[size])
    if cross_attention_dim is not None:
        unet_cfg["cross_attention_dim"] = cross_attention_dim
    if in_channels is not None:
        unet_cfg["in_channels"] = in_channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
    return DiffusionParts(unet.eval(), vae.eval(), DDIMScheduler(**SCHEDULER))


def load_parts(folder: str | Path) -> DiffusionParts:
    """``unet/``, ``vae/`` and ``scheduler/`` of a local diffusers pipeline folder (e.g. a downloaded
    ``stable-diffusion-2-inpainting``). Never touches the network."""
    folder = Path(folder)
    missing = [name for name in ("unet", "vae") if not (folder / name / "config.json").is_file()]
    if missing:
        raise ModelError(f"{folder}: not a diffusers pipeline folder (no {', '.join(missing)}/config.json)")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True)
    scheduler_dir = folder / "scheduler"
    scheduler = (DDIMScheduler.from_pretrained(scheduler_dir, local_files_only=True)
                 if (scheduler_dir / "scheduler_config.json").is_file() else DDIMScheduler(**SCHEDULER))
    return DiffusionParts(unet.eval(), vae.eval(), scheduler)
