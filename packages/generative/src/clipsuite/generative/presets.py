"""Named published weights for try-on: the CLIP model, the SD-2 inpainting base, LaDI-VTON's stages.

- ``ladi-vton-clip`` is a core preset (entry point ``clipsuite.presets`` in this package's pyproject):
  OpenCLIP ViT-H/14 as a transformers ``CLIPModel``, read by the core's transformers backend. Its vision
  tokens feed the inversion adapter; its text tower read one layer short (``clip_skip`` 1) *is* SD-2's
  text encoder (SD-2 conditions on OpenCLIP ViT-H's penultimate layer), so prompts go through it with
  ``clip_skip`` 1 (``text_clip_skip``).
- Diffusion parts are not CLIP models, so they are not core presets: ``--parts sd2-inpainting`` reads
  ``stabilityai/stable-diffusion-2-inpainting`` (unet/, vae/, scheduler/) from the Hugging Face cache
  with diffusers, never downloading; the same shapes with random weights must be asked for by name
  (``sd2-inpainting-random``), as the offline test sizes ``micro`` / ``tiny`` are.
- LaDI-VTON's stage weights (``ladi-vton-vitonhd``, ``ladi-vton-dresscode``) are GitHub release files
  that its ``hubconf.py`` reads with ``torch.hub.load_state_dict_from_url``. The try-on UNet is a
  diffusers ``UNet2DConditionModel`` with ``in_channels`` 31 in our channel order, so it loads into
  ``TryOnUNet`` from the torch hub cache; the warper, EMASC and inversion adapter are state dicts of
  LaDI-VTON's own modules (ConvNet_TPS + UNetVanilla, a non-linear EMASC, an adapter built of CLIP
  encoder layers), which clipsuite's parts do not share: naming them is refused with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsuite.core.errors import ModelError, WeightsUnavailableError
from clipsuite.core.presets import Preset

if TYPE_CHECKING:
    from clipsuite.generative.components import DiffusionParts
    from clipsuite.generative.methods.tryon_unet import TryOnUNet

LADI_VTON_CLIP = Preset(
    "ladi-vton-clip", "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K", None, "generative",
    "Hugging Face hub laion/CLIP-ViT-H-14-laion2B-s32B-b79K (transformers CLIPModel)",
    "OpenCLIP ViT-H/14: garment tokens for LaDI-VTON's inversion adapter; text read at the penultimate layer "
    "(clip_skip 1) = SD-2's text encoder", "transformers")
CLIP_SKIP = {"ladi-vton-clip": 1}

SD2_INPAINTING_REPO = "stabilityai/stable-diffusion-2-inpainting"
PARTS_PRESETS = {"sd2-inpainting": SD2_INPAINTING_REPO}

LADI_VTON_RELEASE = "https://github.com/miccunifi/ladi-vton/releases/download/weights"
# LaDI-VTON's part file names -> our stage names
LADI_VTON_PARTS = {"unet": "unet", "emasc": "emasc", "inversion": "inversion_adapter", "warping": "warping"}
NOT_OURS = {"emasc": "a non-linear EMASC with LaDI-VTON's own channel plan",
            "inversion": "an InversionAdapter built of CLIP vision encoder layers",
            "warping": "ConvNet_TPS + UNetVanilla refinement"}


@dataclass(frozen=True)
class StageWeights:
    """LaDI-VTON's released stage weights for one dataset."""

    name: str
    dataset: str   # vitonhd | dresscode

    def url(self, stage: str) -> str:
        return f"{LADI_VTON_RELEASE}/{LADI_VTON_PARTS[stage]}_{self.dataset}.pth"

    def cached(self, stage: str) -> Path:
        """Where ``torch.hub.load_state_dict_from_url`` keeps the file."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.url(stage).rsplit("/", 1)[1]


STAGE_PRESETS = {w.name: w for w in (StageWeights("ladi-vton-vitonhd", "vitonhd"),
                                     StageWeights("ladi-vton-dresscode", "dresscode"))}


def text_clip_skip(clip_name: str) -> int:
    """Text layers left out for the UNet's conditioning (1 for SD-2's OpenCLIP ViT-H)."""
    return CLIP_SKIP.get(clip_name, 0)


def sd2_parts(name: str) -> DiffusionParts:
    """The published SD-2 inpainting parts from the Hugging Face cache (no request), else one line."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from clipsuite.generative.components import load_parts

    repo = PARTS_PRESETS[name]
    try:
        folder = snapshot_download(repo, local_files_only=True,
                                   allow_patterns=["unet/*", "vae/*", "scheduler/*", "model_index.json"])
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise WeightsUnavailableError(
            f"{name}: the weights of {repo} are not in the Hugging Face cache and nothing is downloaded; fetch "
            f"them (huggingface-cli download {repo}) or pass a local diffusers folder, or use "
            f"'{name}-random' for the same shapes with random weights") from None
    return load_parts(folder)


def stage_preset_refusal(name: str, stage: str) -> str | None:
    """Why ``name`` cannot stand for ``stage`` (None: it can)."""
    weights = STAGE_PRESETS[name]
    if stage == "unet":
        return None
    return (f"{name}: LaDI-VTON's {weights.url(stage).rsplit('/', 1)[1]} holds {NOT_OURS[stage]}, not clipsuite's "
            f"{stage} part; train that stage (clipsuite-generative train tryon-stage {stage})")


def load_stage_preset(unet: TryOnUNet, name: str) -> None:
    """LaDI-VTON's try-on UNet from the torch hub cache into ``unet`` (every weight, or an error)."""
    import torch

    weights = STAGE_PRESETS[name]
    path = weights.cached("unet")
    if not path.is_file():
        raise WeightsUnavailableError(f"{name}: {path} not found and nothing is downloaded; fetch "
                                      f"{weights.url('unet')} there, or pass a trained --unet FILE")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        unet.unet.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ModelError(f"{path}: does not fit these diffusion parts (LaDI-VTON's UNet needs --parts "
                         f"sd2-inpainting): {first}") from None
