"""What a generative training run is, torch-free: ``clipsuite-generative train delta`` (``DeltaRun``) and
``train tryon-stage`` (``TryOnStageRun``) build their options from these fields (``clipsuite.cli.run_config``),
check them here before torch is imported, store exactly this config with the run and reload it on ``--resume``.

Both count their run in optimizer steps (``--steps``, the one flag a resume may change); the schedule's rules
(steps, batch, learning rate) are ``TrainConfig``'s own. The stored keys are those the commands stored before
these configs existed, so a run started then still resumes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli
from clipsuite.core.train.config import TrainConfig
from clipsuite.generative.names import CATEGORIES, STAGES, check_category
from clipsuite.generative.prechecks import check_file, check_parts, dataset_layout, image_files, parse_size
from clipsuite.generative.run_fields import clip_field, parts_field, size_field, steps_field

MIN_HIDDEN = 8  # the mapper's narrowest useful width
STEPS_HELP = "Optimizer steps to train (a --resume may raise it)."


def _batch_size(default: int) -> Any:
    return field(default=default, metadata=cli("Samples per optimizer step."))


def _lr(default: float) -> Any:
    return field(default=default, metadata=cli("Peak learning rate (AdamW, cosine schedule)."))


class StepRun:
    """What the two runs share: a schedule counted in optimizer steps, handed to the Trainer as a TrainConfig."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("steps",)  # may change on --resume: the run length, to train on
    steps: int
    batch_size: int
    lr: float

    def train_config(self, output_dir: Path, device: str = "cpu", **how: Any) -> TrainConfig:
        """The Trainer's config in ``output_dir``; ``device``: where it trains (the CPU in fp32, else autocast; the
        Trainer is told too, or a visible GPU would take a run asked for on the CPU);
        ``how``: resume, progress ..."""
        return TrainConfig(output_dir=output_dir, max_steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           precision="fp32" if device == "cpu" else "auto", device=device,
                           flags={"max_steps": "--steps"}, **how)

    def check_schedule(self) -> None:
        self.train_config(Path("."))  # steps, batch and lr: TrainConfig's rules, in this command's flags


@dataclass
class DeltaRun(StepRun):
    """A DeltaSpace mapper learnt from the pairs of a folder's images (not where it writes or runs)."""

    images: str | None = field(default=None, metadata=cli(
        "Folder of images (pairs are formed from them; no captions). With --resume: the run's own.",
        argument=True, path=True))
    steps: int = steps_field(500, STEPS_HELP)
    batch_size: int = _batch_size(64)
    lr: float = _lr(1e-3)
    hidden: int = field(default=256, metadata=cli(f"Width of the mapper's hidden layers (at least {MIN_HIDDEN})."))
    clip: str = clip_field()

    def __post_init__(self) -> None:
        """The run's first problem in one line, naming its flag (torch-free: the CLI calls this first)."""
        if self.images is None:
            raise InputError("give the IMAGES folder (or --resume a run that has one)")
        self.image_paths()
        if self.hidden < MIN_HIDDEN:
            raise InputError(f"--hidden must be >= {MIN_HIDDEN} (got {self.hidden})")
        self.check_schedule()

    def image_paths(self) -> list[Path]:
        """The pictures the mapper learns from (at least two: it learns from their pairs)."""
        assert self.images is not None  # __post_init__ refuses a run without
        return image_files(self.images)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run and compared on ``--resume`` (the keys older runs stored too)."""
        return asdict(self)


@dataclass
class TryOnStageRun(StepRun):
    """One LaDI-VTON stage trained on a VITON-HD or Dress Code folder (not where it writes or runs)."""

    stage: str = field(metadata=cli(", ".join(STAGES), argument=True))
    data: str | None = field(default=None, metadata=cli(
        "VITON-HD root (train/, train_pairs.txt) or Dress Code root ({category}/, train_pairs.txt). With --resume: "
        "the run's own.", path=True))
    warping: str | None = field(default=None, metadata=cli("Trained warping stage (input of the tryon stage).",
                                                           path=True))
    inversion: str | None = field(default=None, metadata=cli(
        "Trained inversion adapter (input of the tryon stage).", path=True))
    category: str = field(default="upper_body", metadata=cli(", ".join(CATEGORIES)))
    steps: int = steps_field(1000, STEPS_HELP)
    batch_size: int = _batch_size(4)
    lr: float = _lr(1e-5)
    parts: str = parts_field(path=True)
    clip: str = clip_field()
    size: str = size_field("64x48")  # stored as typed: "32x24"

    def __post_init__(self) -> None:
        """The run's first problem in one line, naming its flag (torch-free: the CLI calls this first)."""
        if self.stage not in STAGES:
            raise InputError(f"unknown stage '{self.stage}' (choose from {', '.join(STAGES)})")
        if self.data is None:
            raise InputError("give --data (or --resume a run that has it)")
        check_category(self.category)
        self.layout()
        check_file(self.warping, "warping stage file")
        check_file(self.inversion, "inversion stage file")
        if self.stage != "tryon" and (self.warping or self.inversion):
            raise InputError(f"--warping/--inversion are inputs of the tryon stage, not of {self.stage}")
        check_parts(self.parts)
        self.hw()
        self.check_schedule()

    def layout(self) -> str:
        """``vitonhd`` or ``dresscode``: how the ``--data`` folder is laid out."""
        assert self.data is not None  # __post_init__ refuses a run without
        return dataset_layout(self.data, self.category)

    def hw(self) -> tuple[int, int]:
        return parse_size(self.size)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run and compared on ``--resume`` (the keys older runs stored too)."""
        return asdict(self)
