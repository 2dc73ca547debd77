"""What a medical VQA training run is, torch-free: ``clipsuite-medical vqa train`` builds its options from
these fields (``clipsuite.cli.run_config``), checks them here before torch is imported, stores exactly this
config with the run and reloads it on ``--resume``; ``clipsuite.medical.train_vqa.train_vqa_run`` runs it.
The schedule's rules (epochs, batch, lr) are ``TrainConfig``'s own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.core.errors import InputError
from clipsuite.core.input_paths import need
from clipsuite.core.run_config import below, cli, schedule_problems
from clipsuite.core.train.config import TrainConfig

HEADS = ("qcr", "mevf")
MIN_WIDTH = 8  # --hidden and --word-dim


@dataclass
class VQASettings:
    head: str = "qcr"
    finetune_visual: bool = False   # PubMedCLIP's QCR fine-tunes; frozen runs the tower once per image
    # pooled image feature only by default: on a pretrained backbone it carries the closed answers
    # (lesion yes/no: linear probe 97%) and the head learns them; attending over its 64 patch tokens too
    # learned less in the same epochs (docs/medical.md, "Evidence that it learns")
    patch_tokens: bool = False
    pool_grid: int | None = None    # e.g. 4: patch tokens averaged to 4 x 4 regions
    word_dim: int = 300
    hidden: int = 1024
    glimpses: int = 2
    max_tokens: int = 12
    use_ae: bool = True
    ae_size: int = 128
    ae_channels: int = 64
    dropout: float = 0.2


@dataclass
class VQATrainRun:
    """The data, the CLIP model, the head and its schedule (not where the run is written nor on which device)."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("epochs",)  # may be raised on --resume

    data: str | None = field(default=None, metadata=cli(
        "VQA-RAD folder/JSON or SLAKE folder. With --resume it may be left out (the run's own).",
        argument=True, path=True))
    head: str = field(default="qcr", metadata=cli("qcr | mevf"))
    epochs: int = field(default=40, metadata=cli("Passes over the training questions."))
    batch_size: int = field(default=32, metadata=cli("Questions per step."))
    lr: float = field(default=1e-3, metadata=cli("Learning rate (Adam, cosine schedule)."))
    finetune_visual: bool = field(default=False, metadata=cli(
        "Also train the CLIP image tower.", "--finetune-visual/--no-finetune-visual"))
    hidden: int = field(default=1024, metadata=cli("GRU/BAN width (MEVF: 1024; at least 8)."))
    word_dim: int = field(default=300, metadata=cli("Question word-embedding width (at least 8)."))
    patch_tokens: bool = field(default=False, metadata=cli(
        "Attend over patch tokens, not only the image feature (off: the pooled feature learned more).",
        "--patch-tokens/--no-patch-tokens"))
    model: str = field(default="pubmedclip", metadata=cli(
        "Preset (biomedclip, pubmedclip), open_clip name, folder, or tiny / tiny-hf offline.", "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli("Weights file or open_clip tag."))

    def __post_init__(self) -> None:
        """Every bad flag of the run in one line (torch-free: the CLI calls this before loading anything)."""
        if self.data is None:
            raise InputError("missing DATA (VQA-RAD folder/JSON or SLAKE folder); only --resume of a run started "
                             "with this clipsuite may leave it out")
        need(self.data, "VQA data")
        problems = []
        if self.head not in HEADS:
            problems.append(f"--head '{self.head}': use qcr or mevf")
        problems += below(self, MIN_WIDTH, "hidden", "word_dim")
        problems += schedule_problems(lambda: self.train_config(Path(".")))  # epochs, batch, lr: TrainConfig's
        if problems:
            raise InputError("; ".join(problems))

    def settings(self) -> VQASettings:
        return VQASettings(head=self.head, finetune_visual=self.finetune_visual, hidden=self.hidden,
                           word_dim=self.word_dim, patch_tokens=self.patch_tokens)

    def train_config(self, run_dir: Path, **how: Any) -> TrainConfig:
        """The Trainer's config for this run in ``run_dir``; ``how``: resume ..."""
        return TrainConfig(output_dir=run_dir, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           optimizer="adam", checkpoint_every=None, **how)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run and compared on ``--resume``: the keys runs stored before this config."""
        return asdict(self)
