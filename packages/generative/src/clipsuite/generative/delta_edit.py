"""One DeltaSpace edit from what an ``edit`` run names: the image, the two prompts, the mapper file.

The mapper must come from the CLIP model given (its codes mean nothing in another's space); the image is
embedded, its code moved by the mapper's answer to the prompts' text delta, and rendered by the
image-variation generator from the input noised to ``noise_strength`` (``editing``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from PIL import Image

from clipsuite.core.checkpoints import read_config
from clipsuite.core.images import load_image
from clipsuite.generative.components import build_parts, load_parts
from clipsuite.generative.data import to_tensor
from clipsuite.generative.editing import EditOptions, VariationGenerator
from clipsuite.generative.methods.deltaspace import DeltaMapper, edit_codes, embed_images, text_delta
from clipsuite.generative.part_files import check_clip, load_part

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel
    from clipsuite.generative.inference_runs import EditRun

BUILT_PARTS = ("micro", "tiny")  # seeded random parts built here as an image-variation generator (4 channels)


def edit_image(run: EditRun, clip: ClipModel, device: str = "cpu",
               on_step: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the input at the working size, the edited image), each ``[1, 3, H, W]`` in [-1, 1]."""
    check_clip(run.mapper, clip)  # a mapper trained on another CLIP's embeddings would map them wrongly
    picture = load_image(run.image)
    c, e = embed_images(clip, [picture])
    saved = read_config(run.mapper) or {}
    mapper = load_part(DeltaMapper(int(saved.get("clip_dim", c.shape[1])), int(saved.get("code_dim", e.shape[1])),
                                   int(saved.get("hidden", 256))), run.mapper, "delta")
    delta = text_delta(clip, run.target, run.neutral, float(mapper.delta_scale))
    codes = edit_codes(mapper, c, e, delta, run.strength)
    diffusion = (build_parts(run.parts, 0, e.shape[1], in_channels=4) if run.parts in BUILT_PARTS
                 else load_parts(run.parts))
    h, w = run.hw()
    pixels = to_tensor(picture.resize((w, h), Image.Resampling.BICUBIC))[None]
    options = EditOptions(run.steps, run.noise_strength, run.guidance, run.seed)
    return pixels, VariationGenerator(diffusion, device)(pixels, codes, options, on_step=on_step)
