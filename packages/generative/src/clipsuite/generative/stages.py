"""Build the task of a named try-on training stage (what ``train tryon-stage`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clipsuite.core.errors import InputError
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.inversion import CATEGORY_WORDS, InversionAdapter, InversionTask, prompt_states
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.train import EMASCTask, TryOnTask, WarpingTask, load_part
from clipsuite.generative.tryon import diffusion_parts

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel


def make_stage_task(stage: str, clip: ClipModel, parts: str, size: tuple[int, int],
                    warping: Path | None = None, category: str = "upper_body", n_tokens: int = 16) -> Any:
    from clipsuite.core.towers import text_tower, vision_tower

    if stage == "warping":
        return WarpingTask(GarmentWarper(size))
    text = text_tower(clip)
    diffusion = diffusion_parts(parts, text.width)
    if stage == "emasc":
        return EMASCTask(diffusion.vae, EMASC(diffusion.vae.config))
    if stage == "inversion":
        adapter = InversionAdapter(vision_tower(clip).width, text.width, n_tokens=n_tokens)
        return InversionTask(adapter, clip, TryOnUNet(diffusion.unet), diffusion.vae, diffusion.scheduler, category)
    if stage == "tryon":
        warper = load_part(GarmentWarper(size), warping, "warping") if warping is not None else None
        prompt = f"a photo of a model wearing {CATEGORY_WORDS[category]}"
        with torch.no_grad():
            null = prompt_states(text, [""], None)

        def states(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with torch.no_grad():
                return prompt_states(text, [prompt] * len(batch["image"]), None)
        return TryOnTask(TryOnUNet(diffusion.unet), diffusion.vae, diffusion.scheduler, states, null, warper=warper,
                         frozen=[text.module])
    raise InputError(f"unknown stage '{stage}'")
