"""What an adaptation run is, torch-free: ``clipsuite adapt train`` builds its options from these fields
(``clipsuite.cli.run_config``) and they check themselves here, before torch is imported;
``clipsuite.core.adapt.runner.train_adapt_run`` runs it (methods x seeds on K-shot draws).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clipsuite.core.adapt.registry import MethodOptions, check_method_names, resolve_methods
from clipsuite.core.comma_lists import parse_list
from clipsuite.core.errors import InputError
from clipsuite.core.input_paths import need
from clipsuite.core.run_config import below, cli

if TYPE_CHECKING:
    from clipsuite.core.adapt.fewshot_data import Split

SUBSETS = ("all", "base", "novel")
TOKEN_POSITIONS = ("end", "middle", "front")


def parse_methods(text: str) -> tuple[str, ...]:
    """``coop, KgCoOp`` -> ``("coop", "kgcoop")``; ``all`` stays ``("all",)`` (resolved when the methods load)."""
    return tuple(name.lower() for name in parse_list(text, "--methods", kind="methods", example="coop,kgcoop"))


def parse_seeds(text: str) -> tuple[int, ...]:
    return tuple(parse_list(text, "--seeds", int, "integers", "1,2,3"))


@dataclass
class AdaptRun:
    """Which methods, on which K-shot draws of which split, with which model and overrides (not where the
    adapters and the table go, nor on which device: those belong to the invocation)."""

    split: str = field(metadata=cli("Dassl split JSON, or a folder of class folders.", "--split", path=True))
    methods: tuple[str, ...] = field(default=("coop",), metadata=cli(
        "A method, a comma-separated list, or 'all' (one row per method); `clipsuite adapt methods` lists them.",
        "--method", "--methods", parse=parse_methods))
    shots: int = field(default=16, metadata=cli("Training images per class (validation uses min(K, 4))."))
    seed: int = field(default=1, metadata=cli("Seed of the K-shot draw and of the initialisation."))
    seeds: tuple[int, ...] | None = field(default=None, metadata=cli(
        "Several seeds, comma-separated (overrides --seed).", parse=parse_seeds))
    model: str = field(default="tiny", metadata=cli(
        "Model spec: a preset (`clipsuite models`), open_clip name, folder, .safetensors file or hf-hub:org/repo.",
        "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli("Pretrained tag or weight file for --model."))
    epochs: int | None = field(default=None, metadata=cli("Training epochs (default: the method's, from its paper)."))
    lr: float | None = field(default=None, metadata=cli("Learning rate (default: the method's)."))
    batch_size: int | None = field(default=None, metadata=cli("Batch size (default: the method's)."))
    n_ctx: int | None = field(default=None, metadata=cli("Context vectors for random init (prompt learners)."))
    ctx_init: str | None = field(default=None, metadata=cli(
        "Initial context phrase (default 'a photo of a'; '' = random)."))
    csc: bool = field(default=False, metadata=cli("Class-specific contexts (CoOp).", "--csc/--no-csc"))
    class_token_position: str = field(default="end", metadata=cli("end, middle or front (CoOp)."))
    views: int = field(default=10, metadata=cli("Augmented views of the training images cached for Tip-Adapter/GDA."))
    augment: bool = field(default=False, metadata=cli("Train prompt learners on the augmented views.",
                                                      "--augment/--no-augment"))
    descriptions: str | None = field(default=None, metadata=cli("CuPL / descriptor JSON (class -> sentences).",
                                                                path=True))
    subset: str = field(default="all", metadata=cli(
        "Classes: all, base or novel (base-to-novel protocol; learned prompts transfer to the novel names)."))
    image_root: str | None = field(default=None, metadata=cli(
        "Folder the split's paths are relative to (default: the split file's folder).", path=True))
    cache_dir: str | None = field(default=None, metadata=cli("Keep encoded image features here between runs.",
                                                             path=True))

    def __post_init__(self) -> None:
        """Every bad flag in one line (torch-free: the CLI calls this before loading anything)."""
        need(self.split, "--split")  # paths first: a typo costs milliseconds
        need(self.descriptions, "--descriptions file", "file")
        need(self.image_root, "--image-root folder", "dir")
        if self.methods != ("all",):
            check_method_names(self.methods)
        problems = [*below(self, 1, "shots", "epochs", "batch_size", "n_ctx"), *below(self, 0, "lr", strict=True),
                    *below(self, 0, "views")]
        if self.subset not in SUBSETS:
            problems.append(f"--subset '{self.subset}': choose base, novel or all")
        if self.class_token_position not in TOKEN_POSITIONS:
            problems.append(f"--class-token-position '{self.class_token_position}': choose end, middle or front")
        if problems:
            raise InputError("; ".join(problems))

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]

    def check_single_file(self, output: Path) -> None:
        """A ``.safetensors`` output holds one adapter: one method (``all`` counts as several), one seed."""
        if len(self.methods) > 1 or self.methods == ("all",) or len(self.seed_list) > 1:
            raise InputError(f"--output {output}: a single .safetensors file holds one method and one seed; "
                             "give a folder for several")

    def method_names(self) -> list[str]:
        """The methods to run, ``all`` resolved (this imports the installed methods: after the checks)."""
        return resolve_methods(list(self.methods), have_descriptions=self.descriptions is not None)

    def method_options(self) -> MethodOptions:
        """The user's overrides of every method's defaults."""
        return MethodOptions(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, n_ctx=self.n_ctx,
                             ctx_init=self.ctx_init, csc=self.csc, class_token_position=self.class_token_position,
                             augment=self.augment, descriptions=self.descriptions, progress=False)

    def load_split(self) -> Split:
        """The split (or class folders) read and checked, reduced to ``subset``."""
        from clipsuite.core.adapt.fewshot_data import read_split

        return read_split(self.split, self.image_root, self.subset)

