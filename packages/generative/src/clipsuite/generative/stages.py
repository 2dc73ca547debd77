"""Build the task of a named try-on training stage (what ``train tryon-stage`` runs), wired to the
parts the earlier stages saved.

What each LaDI-VTON stage takes from the ones before it: the warper and EMASC learn on the data and
the frozen VAE alone; the inversion adapter on the frozen base inpainting UNet; the try-on UNet trains
on the *trained* warper's garment and the *trained* adapter's pseudo-words (both frozen). The try-on
stage records the digest of each file it used (``inputs``), so inference can refuse other parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clipsuite.core.checkpoints import read_config
from clipsuite.core.errors import InputError
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.inversion import (
    CATEGORY_WORDS,
    InversionAdapter,
    InversionTask,
    clip_pixels,
    prompt_states,
    tryon_prompt,
    vision_tokens,
)
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.part_files import check_clip, clip_identity, load_part
from clipsuite.generative.train import EMASCTask, TryOnTask, WarpingTask
from clipsuite.generative.tryon import StageFiles, diffusion_parts

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

# which earlier stage files a stage's training reads
STAGE_INPUTS = {"warping": (), "emasc": (), "inversion": (), "tryon": ("warping", "inversion")}


def part_digest(path: str | Path) -> str:
    """16 hex digits of the file's bytes: which saved part a later stage was trained with."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=8).hexdigest()


def load_adapter(clip: ClipModel, part_file: str | Path) -> InversionAdapter:
    from clipsuite.core.towers import text_tower, vision_tower

    check_clip(part_file, clip)  # its pseudo-words live in the text space of the CLIP it was trained with
    n_tokens = int((read_config(part_file) or {}).get("n_tokens", 16))
    adapter = InversionAdapter(vision_tower(clip).width, text_tower(clip).width, n_tokens)
    return load_part(adapter, part_file, "inversion")


def load_warper(part_file: str | Path, size: tuple[int, int]) -> GarmentWarper:
    trained_size = (read_config(part_file) or {}).get("size", list(size))
    return load_part(GarmentWarper(tuple(trained_size)), part_file, "warping")


def make_stage_task(stage: str, clip: ClipModel, parts: str, size: tuple[int, int],
                    previous: StageFiles | None = None, category: str = "upper_body", n_tokens: int = 16) -> Any:
    """The stage's task; for ``tryon``, ``previous.warping`` / ``previous.inversion`` are loaded frozen
    (each optional: without them the garment goes unwarped and the prompt has no pseudo-words)."""
    from clipsuite.core.towers import text_tower, vision_tower

    previous = previous or StageFiles()
    if stage == "warping":
        return WarpingTask(GarmentWarper(size))
    text = text_tower(clip)
    diffusion = diffusion_parts(parts, text.width)
    if stage == "emasc":
        return EMASCTask(diffusion.vae, EMASC(diffusion.vae.config))
    adapter: InversionAdapter | None   # the one trained here (inversion) or the frozen one loaded (tryon, optional)
    if stage == "inversion":
        adapter = InversionAdapter(vision_tower(clip).width, text.width, n_tokens=n_tokens)
        inversion = InversionTask(adapter, clip, TryOnUNet(diffusion.unet), diffusion.vae, diffusion.scheduler,
                                  category)
        inversion.clip_identity = clip_identity(clip)
        return inversion
    if stage != "tryon":
        raise InputError(f"unknown stage '{stage}'")
    warper = load_warper(previous.warping, size) if previous.warping is not None else None
    adapter = load_adapter(clip, previous.inversion) if previous.inversion is not None else None
    from clipsuite.generative.presets import text_clip_skip

    skip = text_clip_skip(clip.name)   # SD-2 reads OpenCLIP ViT-H one layer short
    with torch.no_grad():
        null = prompt_states(text, [""], None, skip)
    vision = vision_tower(clip)
    frozen: list[torch.nn.Module] = [text.module]
    if adapter is not None:
        frozen += [adapter, vision.module]
        prompt = tryon_prompt(category, adapter.n_tokens)
    else:
        prompt = f"a photo of a model wearing {CATEGORY_WORDS[category]}"

    def states(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            words = None
            if adapter is not None:  # the trained adapter's pseudo-words for this batch's garments
                words = adapter(vision_tokens(vision, clip_pixels(batch["cloth"], clip)).float())
            return prompt_states(text, [prompt] * len(batch["image"]), words, skip)

    task = TryOnTask(TryOnUNet(diffusion.unet), diffusion.vae, diffusion.scheduler, states, null, warper=warper,
                     frozen=frozen)
    task.adapter = adapter  # what it was wired to (tests, inspection)
    task.clip_identity = clip_identity(clip)
    task.inputs = {name: part_digest(getattr(previous, name)) for name in STAGE_INPUTS["tryon"]
                   if getattr(previous, name) is not None}
    return task


def check_stage_inputs(unet_file: str | Path, stages: StageFiles) -> None:
    """Refuse, in one line, parts other than those the try-on UNet in ``unet_file`` was trained with."""
    recorded = (read_config(unet_file) or {}).get("inputs") or {}
    for name, digest in recorded.items():
        given = getattr(stages, name, None)
        if given is None:
            raise InputError(f"{unet_file}: this try-on UNet was trained with the {name} stage (digest {digest}); "
                             f"pass that file with --{name}")
        if part_digest(given) != digest:
            raise InputError(f"{given}: not the {name} stage the try-on UNet {unet_file} was trained with "
                             f"(digest {part_digest(given)}, trained with {digest})")


def train_chain(clip: ClipModel, parts: str, size: tuple[int, int], data: Any, folder: str | Path,
                steps: dict[str, int], category: str = "upper_body", n_tokens: int = 16,
                lrs: dict[str, float] | None = None, batch_size: int = 4) -> StageFiles:
    """The four stages in order (warping -> EMASC -> inversion adapter -> try-on UNet), each saved to
    ``folder/{stage}.safetensors`` and handed to the stages after it; returns the four files."""
    from clipsuite.core.train import TrainConfig
    from clipsuite.generative.names import STAGES
    from clipsuite.generative.train import train_stage

    folder = Path(folder)
    files = StageFiles()
    lr = {"warping": 1e-3, "emasc": 1e-3, "inversion": 1e-3, "tryon": 1e-4, **(lrs or {})}
    for stage in STAGES:
        task = make_stage_task(stage, clip, parts, size, files, category, n_tokens)
        part = folder / f"{stage}.safetensors"
        config = TrainConfig(output_dir=folder / f"{stage}_run", max_steps=steps[stage], batch_size=batch_size,
                             lr=lr[stage], progress=False, precision="fp32", schedule="constant")
        train_stage(task, data, config, part)
        setattr(files, "unet" if stage == "tryon" else stage, part)
    return files
