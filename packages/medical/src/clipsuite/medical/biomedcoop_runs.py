"""What ``clipsuite-medical biomedcoop train`` and ``compare`` run, torch-free: their options are these fields
(``clipsuite.cli.run_config``), checked here before torch is imported. Both read one Dassl split and its LLM
sentences; ``train`` fits BiomedCoOp on one K-shot draw, ``compare`` runs the paper's table through the core's
comparison runner (``clipsuite.core.adapt.runner.run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clipsuite.core.adapt.registry import check_method_names
from clipsuite.core.comma_lists import parse_list
from clipsuite.core.errors import InputError
from clipsuite.core.input_paths import need
from clipsuite.core.run_config import below, cli

SUBSETS = ("all", "base")  # base: train on the base half of the classes (base-to-novel)
PROTOCOLS = ("few-shot", "base-to-novel")
PAPER_METHODS = ("zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop")  # BiomedCoOp's table
MODEL_HELP = "Preset (biomedclip, pubmedclip), open_clip name, folder, or tiny / tiny-hf offline."


def _ints(flag: str, example: str) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        return tuple(parse_list(text, flag, int, "integers", example))

    return parse


@dataclass
class _SplitRun:
    """What both commands read: a split, its sentences, where its images are, the model."""

    split: str = field(metadata=cli("Dassl split JSON ({'train': [[path, label, class], ...], ...}).",
                                    argument=True, path=True))
    descriptions: str = field(metadata=cli("LLM sentences per class (JSON: class -> list).", path=True))
    image_root: str | None = field(default=None, metadata=cli("Where split paths are relative to.", path=True))
    model: str = field(default="biomedclip", metadata=cli(MODEL_HELP, "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli("Weights file or open_clip tag."))

    def check_paths(self) -> None:
        """Paths first: a typo costs milliseconds."""
        need(self.split, "split file", "file")
        need(self.descriptions, "--descriptions file", "file")
        need(self.image_root, "--image-root folder", "dir")


@dataclass
class BiomedCoOpRun(_SplitRun):
    """One K-shot draw of a split, BiomedCoOp's schedule, the model (not where the adapter is written)."""

    shots: int = field(default=16, metadata=cli("K shots per class (1, 2, 4, 8, 16)."))
    seed: int = field(default=1, metadata=cli("Seed of the K-shot draw and of the context vectors."))
    subset: str = field(default="all", metadata=cli("all | base (base-to-novel training)"))
    epochs: int = field(default=100, metadata=cli("Training epochs (the paper's: 100)."))
    lr: float = field(default=0.0025, metadata=cli("Learning rate (SGD, cosine)."))
    batch_size: int = field(default=4, metadata=cli("Images per step."))

    def __post_init__(self) -> None:
        """Paths, then every bad flag in one line."""
        self.check_paths()
        problems = [*below(self, 1, "shots", "epochs", "batch_size"), *below(self, 0, "lr", strict=True)]
        if self.subset not in SUBSETS:
            problems.append(f"--subset '{self.subset}': choose all or base")
        if problems:
            raise InputError("; ".join(problems))


@dataclass
class BiomedCoOpCompareRun(_SplitRun):
    """Methods x shots x seeds on the same draws, in one protocol (not where the table is written)."""

    shots: tuple[int, ...] = field(default=(16,), metadata=cli(
        "Comma-separated shot counts, e.g. 1,2,4,8,16.", parse=_ints("--shots", "1,2,4,8,16")))
    seeds: tuple[int, ...] = field(default=(1, 2, 3), metadata=cli(
        "Comma-separated seeds.", parse=_ints("--seeds", "1,2,3")))
    protocol: str = field(default="few-shot", metadata=cli("few-shot | base-to-novel"))
    methods: tuple[str, ...] = field(default=PAPER_METHODS, metadata=cli(
        "Comma-separated installed adaptation methods (`clipsuite adapt methods` lists them); default: the "
        "paper's table.", parse=lambda text: tuple(parse_list(text, "--methods", kind="methods",
                                                              example="zeroshot,coop,biomedcoop"))))
    epochs: int | None = field(default=None, metadata=cli("Override every method's epochs (default: papers')."))

    def __post_init__(self) -> None:
        self.check_paths()
        self.shots, self.seeds, self.methods = tuple(self.shots), tuple(self.seeds), tuple(self.methods)
        check_method_names(self.methods)  # installed metadata only, no import
        problems = below(self, 1, "epochs")
        problems += [f"--shots must be >= 1 (got {k})" for k in self.shots if k < 1]
        if self.protocol not in PROTOCOLS:
            problems.append(f"--protocol '{self.protocol}': choose few-shot or base-to-novel")
        if problems:
            raise InputError("; ".join(problems))
