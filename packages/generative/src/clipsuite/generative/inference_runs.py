"""What a ``tryon`` or ``edit`` run asks for, torch-free: ``clipsuite-generative tryon`` (``TryOnRun``) and
``edit`` (``EditRun``) build their options from these fields (``clipsuite.cli.run_config``) and check them
here, then ``precheck()`` reads what the run will read (each file once, the CLIP weights in the cache), so
a mistake is one line before torch is imported. Where the result goes and the device are the command's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli
from clipsuite.generative.names import CATEGORIES, STAGE_PRESETS, WEIGHT_PRECISIONS, check_category, strength_problem
from clipsuite.generative.prechecks import check_clip_weights, check_file, check_parts, note_random_parts, parse_size
from clipsuite.generative.run_fields import clip_field, parts_field, size_field, steps_field

STEPS_HELP = "Sampling (DDIM) steps."
GUIDANCE_HELP = "Classifier-free guidance scale."


def check_sampling(steps: int, guidance: float) -> None:
    if steps < 1:
        raise InputError(f"--steps must be >= 1 (got {steps})")
    if not guidance >= 0:
        raise InputError(f"--guidance must be >= 0 (got {guidance})")


@dataclass
class TryOnRun:
    """One try-on: the sample's files, the trained stages, the diffusion parts and how to sample."""

    person: Path = field(metadata=cli("Person photo."))
    garment: Path = field(metadata=cli("Garment photo (flat, on white)."))
    category: str = field(default="upper_body", metadata=cli(", ".join(CATEGORIES)))
    mask: Path | None = field(default=None, metadata=cli("Binary repaint mask (0/255), or give --parse."))
    parse: Path | None = field(default=None, metadata=cli("Human parsing PNG (LIP labels): the mask is made from it."))
    keypoints: Path | None = field(default=None, metadata=cli("OpenPose keypoint JSON (18 or 25 points)."))
    garment_mask: Path | None = field(default=None, metadata=cli("Binary garment mask."))
    unet: Path | None = field(default=None, metadata=cli(
        f"Try-on UNet stage file (train tryon-stage tryon), or {' / '.join(STAGE_PRESETS)} (LaDI-VTON's released "
        "UNet, from the torch hub cache; with --parts sd2-inpainting)."))
    emasc: Path | None = field(default=None, metadata=cli("EMASC stage file."))
    warping: Path | None = field(default=None, metadata=cli("Warping stage file."))
    inversion: Path | None = field(default=None, metadata=cli("Inversion adapter stage file."))
    parts: str = parts_field()
    clip: str = clip_field()
    size: str = size_field("64x48")
    steps: int = steps_field(50, STEPS_HELP)
    guidance: float = field(default=7.5, metadata=cli(GUIDANCE_HELP))
    seed: int = field(default=0, metadata=cli("Seed of the sampling noise."))
    precision: str = field(default="fp32", metadata=cli(f"{', '.join(WEIGHT_PRECISIONS)} (weights)."))
    attention_slicing: bool = field(default=False, metadata=cli(
        "Compute attention a head-slice at a time (less memory, slower).",
        "--attention-slicing/--no-attention-slicing"))
    cpu_offload: bool = field(default=False, metadata=cli(
        "Keep every part on the CPU, each moved to --device only while it runs.", "--cpu-offload/--no-cpu-offload"))

    def __post_init__(self) -> None:
        """The run's first problem in one line (torch-free: the CLI calls this first)."""
        check_category(self.category)
        for path, what in ((self.person, "person image"), (self.garment, "garment image"), (self.mask, "mask"),
                           (self.parse, "parsing"), (self.keypoints, "keypoint file"),
                           (self.garment_mask, "garment mask")):
            check_file(path, what)
        for path, what in ((self.unet, "UNet stage file"), (self.emasc, "EMASC stage file"),
                           (self.warping, "warping stage file"), (self.inversion, "inversion stage file")):
            if path is not None and str(path) not in STAGE_PRESETS:  # a released-weights name: checked on load
                check_file(path, what)
        if self.mask is None and self.parse is None:
            raise InputError("give --mask or --parse: the region to repaint")
        if self.precision not in WEIGHT_PRECISIONS:
            raise InputError(f"--precision '{self.precision}': choose fp32, fp16 or bf16")
        self.hw()
        check_sampling(self.steps, self.guidance)
        check_parts(self.parts)

    def hw(self) -> tuple[int, int]:
        return parse_size(self.size)

    def precheck(self) -> None:
        """Read what the run will read, before torch: each of the sample's files once (a grey mask, an unknown
        parsing label, malformed keypoints), the CLIP weights offline; say when the parts are random."""
        from clipsuite.generative.sample_files import check_sample_files

        check_sample_files(self.person, self.garment, self.mask, self.parse, self.keypoints, self.garment_mask)
        check_clip_weights(self.clip)
        note_random_parts(self.parts)


@dataclass
class EditRun:
    """One DeltaSpace edit: the image, the prompts, the mapper, the strength and how to sample."""

    image: Path = field(metadata=cli("Image to edit.", argument=True))
    target: str = field(metadata=cli("Target prompt, e.g. 'a red car'.", argument=True))
    neutral: str = field(metadata=cli("Neutral prompt, e.g. 'a car'."))
    mapper: Path = field(metadata=cli("DeltaSpace mapper (train delta)."))
    strength: float = field(default=0.8, metadata=cli(
        "Edit strength in [0, 2]: 0 no edit, 1 a change as large as a typical one between two training images "
        "(the opposite edit: swap the prompts)."))
    noise_strength: float = field(default=0.6, metadata=cli("img2img noise level in (0, 1]."))
    steps: int = steps_field(20, STEPS_HELP)
    guidance: float = field(default=3.0, metadata=cli(GUIDANCE_HELP))
    seed: int = field(default=0, metadata=cli("Seed of the img2img noise."))
    parts: str = parts_field()
    clip: str = clip_field()
    size: str = size_field("64x64")

    def __post_init__(self) -> None:
        """The run's first problem in one line (torch-free: the CLI calls this first)."""
        check_file(self.image, "image")
        check_file(self.mapper, "mapper file")
        if not self.target.strip() or not self.neutral.strip():
            raise InputError("the target and --neutral prompts must not be empty")
        if not 0 < self.noise_strength <= 1:
            raise InputError(f"--noise-strength {self.noise_strength}: must be in (0, 1]")
        problem = strength_problem(self.strength, "--strength")
        if problem:
            raise InputError(problem.replace("neutral prompts", "--neutral prompts"))
        check_sampling(self.steps, self.guidance)
        check_parts(self.parts)
        self.hw()

    def hw(self) -> tuple[int, int]:
        return parse_size(self.size)

    def precheck(self) -> None:
        """The CLIP weights offline, before torch; say when the parts are random."""
        check_clip_weights(self.clip)
        note_random_parts(self.parts)
