"""A ready try-on model: diffusion parts + trained stages + the CLIP text side, from files.

What a user (or the CLI) calls: ``TryOnModel.build(...)`` assembles the pipeline from a parts size or
a local diffusers folder and the stage files ``train`` wrote (each optional: an untrained stage is
the identity by construction), ``run(loaded, category)`` does one sample. The prompt is LaDI-VTON's
"a photo of a model wearing {category}", with the garment's pseudo-words when an inversion adapter
is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from clipsuite.core.errors import ModelError
from clipsuite.generative.components import SIZES, DiffusionParts, build_parts, load_parts
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.inversion import (
    CATEGORY_WORDS,
    InversionAdapter,
    clip_pixels,
    prompt_states,
    tryon_prompt,
    vision_tokens,
)
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.part_files import check_clip, load_part
from clipsuite.generative.pipeline import MemoryOptions, SamplingOptions, TryOnPipeline

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel
    from clipsuite.generative.data import Loaded
    from clipsuite.generative.inference_runs import TryOnRun


@dataclass
class StageFiles:
    unet: Path | None = None
    emasc: Path | None = None
    warping: Path | None = None
    inversion: Path | None = None


def diffusion_parts(spec: str, cross_attention_dim: int, seed: int = 0) -> DiffusionParts:
    """A named size (``micro``, ``tiny``, ``sd2-inpainting-random``: seeded random weights), a parts preset
    (``sd2-inpainting``: published weights from the Hugging Face cache) or a local folder."""
    from clipsuite.generative.presets import PARTS_PRESETS, sd2_parts

    if spec in SIZES:
        return build_parts(spec, seed, cross_attention_dim)
    return sd2_parts(spec) if spec in PARTS_PRESETS else load_parts(spec)


class TryOnModel:
    def __init__(self, clip: ClipModel, pipeline: TryOnPipeline, adapter: InversionAdapter | None) -> None:
        from clipsuite.core.towers import text_tower, vision_tower
        from clipsuite.generative.presets import text_clip_skip

        self.clip, self.pipeline, self.adapter = clip, pipeline, adapter
        self.text, self.vision = text_tower(clip), vision_tower(clip)
        self.clip_skip = text_clip_skip(clip.name)  # SD-2 reads OpenCLIP ViT-H one layer short

    @classmethod
    def build(cls, clip: ClipModel, parts: str, stages: StageFiles, size: tuple[int, int],
              device: str = "cpu", memory: MemoryOptions | None = None) -> TryOnModel:
        from clipsuite.core.towers import text_tower
        from clipsuite.generative.stages import check_stage_inputs, load_adapter, load_warper

        diffusion = diffusion_parts(parts, text_tower(clip).width)
        unet = TryOnUNet(diffusion.unet)
        from clipsuite.generative.presets import STAGE_PRESETS, load_stage_preset, stage_preset_refusal

        for stage in ("emasc", "warping", "inversion"):
            named = getattr(stages, stage)
            if named is not None and str(named) in STAGE_PRESETS:
                raise ModelError(cast(str, stage_preset_refusal(str(named), stage)))  # a str for any stage but unet
        if stages.unet is not None and str(stages.unet) in STAGE_PRESETS:
            load_stage_preset(unet, str(stages.unet))   # LaDI-VTON's released UNet
        elif stages.unet is not None:
            check_stage_inputs(stages.unet, stages)  # the warper and adapter it was trained with, no others
            check_clip(stages.unet, clip)  # and the CLIP text states it learnt
            load_part(unet, stages.unet, "tryon")
        emasc = load_part(EMASC(diffusion.vae.config), stages.emasc, "emasc") if stages.emasc else None
        warper = load_warper(stages.warping, size) if stages.warping is not None else None
        adapter = load_adapter(clip, stages.inversion) if stages.inversion is not None else None
        pipeline = TryOnPipeline(diffusion, unet, emasc, warper, device=device, memory=memory)
        return cls(clip, pipeline, adapter)

    @torch.no_grad()
    def prompt_states(self, category: str, cloth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt states, empty-prompt states) for a batch of garments in [-1, 1]."""
        n = len(cloth)
        if self.adapter is not None:
            words = self.adapter(vision_tokens(self.vision, clip_pixels(cloth, self.clip)).float())
            states = prompt_states(self.text, [tryon_prompt(category, self.adapter.n_tokens)] * n, words,
                                   self.clip_skip)
        else:
            states = prompt_states(self.text, [f"a photo of a model wearing {CATEGORY_WORDS[category]}"] * n, None,
                                   self.clip_skip)
        return states, prompt_states(self.text, [""] * n, None, self.clip_skip)

    def run(self, sample: dict[str, torch.Tensor], category: str, options: SamplingOptions,
            on_step: Callable[[int, int], None] | None = None) -> dict[str, torch.Tensor]:
        batch = {k: v[None] for k, v in sample.items()}
        states, null = self.prompt_states(category, batch["cloth"])
        return self.pipeline(batch, states, null, options, on_step)


def load_run_sample(run: TryOnRun) -> Loaded:
    """The sample a ``tryon`` run names, at its working size (its notes: a garment resized, no keypoints)."""
    from clipsuite.generative.data import TryOnFiles, load_sample

    return load_sample(TryOnFiles(run.person, run.garment, run.category, run.garment_mask, run.parse, run.keypoints,
                                  run.mask), run.hw())


def build_run_model(run: TryOnRun, clip: ClipModel, device: str = "cpu") -> TryOnModel:
    """The model a ``tryon`` run names: its parts, stage files, working size and memory options."""
    return TryOnModel.build(clip, run.parts, StageFiles(run.unet, run.emasc, run.warping, run.inversion), run.hw(),
                            device, MemoryOptions(run.precision, run.attention_slicing, run.cpu_offload))


def run_sampling(run: TryOnRun) -> SamplingOptions:
    return SamplingOptions(run.steps, run.guidance, run.seed)
