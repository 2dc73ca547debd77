"""What a remote-sensing training run is, torch-free: the method's settings and the whole run's config,
which owns their checks.

``RemoteRun`` is the one description of a ``clipsuite-remote train`` run: the CLI builds its options from
these fields (``clipsuite.cli.run_config``), checks them here before torch is imported, stores exactly this
config with the run (``to_options``: the keys the command stored before, so older runs resume) and reloads
it on ``--resume``; ``clipsuite.remote.train.train_remote_run`` trains it. ``RemoteTrainConfig`` is the
method's part (RS-M-CLIP's self-distillation); the schedule's rules are ``TrainConfig``'s own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli, schedule_problems
from clipsuite.core.train.config import TrainConfig
from clipsuite.remote.flag_values import check_stretch, parse_languages, parse_stretch, parse_training_bands
from clipsuite.remote.held_out import check_held_out
from clipsuite.remote.methods.crop_scales import GLOBAL_SCALE, LOCAL_SCALE

BAND_RULES = ("repeat", "average")  # clipsuite.core.towers.bands.BAND_RULES, whose module imports torch


def _nodata(text: str | float | None) -> float | None:
    from clipsuite.remote.fill import parse_nodata  # numpy and rasterio: when a run is checked, not at startup

    return parse_nodata(text)


def _check_scale(scale: float | None) -> None:
    from clipsuite.remote.rasters import check_scale

    check_scale(scale, "--scale")


def _flag(flags: dict[str, str]) -> Callable[[str], str]:
    return lambda name: flags.get(name, "--" + name.replace("_", "-"))


class _Named(dict[str, str]):
    """``"{lr} must be > 0".format_map(_Named(say))``: each field named as ``say`` names it."""

    def __init__(self, say: Callable[[str], str]) -> None:
        super().__init__()
        self.say = say

    def __missing__(self, key: str) -> str:
        return self.say(key)


@dataclass
class RemoteTrainConfig:
    """The method's settings (the run's are ``TrainConfig``). ``flags``: a field -> the flag a command gives
    it, where that is not ``--field-name``; a refusal's command-line words name those flags."""

    languages: tuple[str, ...] = ("en",)
    distill_weight: float = 0.0          # 0: contrastive only; > 0 adds RS-M-CLIP's self-distillation
    teacher_decay: float = 0.996         # EMA of the teacher at the first step (DINO's)
    teacher_decay_end: float = 1.0       # ... rising on a cosine to this at the last step (DINO's)
    local_crops: int = 4
    local_size: int | None = None        # default: half the model's image size (whole patches)
    global_scale: tuple[float, float] = GLOBAL_SCALE
    local_scale: tuple[float, float] = LOCAL_SCALE
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    teacher_temp_start: float | None = None  # DINO's warm-up: linear from this to teacher_temp
    teacher_temp_warmup_steps: int = 0       # over this many optimizer steps (0: no warm-up)
    center_momentum: float = 0.9
    head_hidden: int = 512
    head_bottleneck: int = 128
    head_out: int = 1024
    augment: bool = True                 # the contrastive view is a global crop (else the whole image)
    learn_logit_scale: bool = True
    flags: InitVar[dict[str, str] | None] = None

    def __post_init__(self, flags: dict[str, str] | None = None) -> None:
        self.languages = tuple(dict.fromkeys(str(x).strip() for x in self.languages if str(x).strip()))
        self.global_scale = (float(self.global_scale[0]), float(self.global_scale[1]))
        self.local_scale = (float(self.local_scale[0]), float(self.local_scale[1]))
        problems = self._problems()
        if problems:  # the library's words name fields, the command line's name flags
            raise InputError("RemoteTrainConfig: " + "; ".join(p.format_map(_Named(str)) for p in problems),
                             cli="; ".join(p.format_map(_Named(_flag(flags or {}))) for p in problems))

    def _problems(self) -> list[str]:
        """Each problem with its fields as ``{name}``, so it can be said in field or in flag words."""
        problems = []
        if not self.languages:
            problems.append("{languages}: give at least one language")
        if self.distill_weight < 0:
            problems.append(f"{{distill_weight}} must be >= 0 (got {self.distill_weight})")
        if not (0.0 < self.teacher_decay < 1.0 and self.teacher_decay <= self.teacher_decay_end <= 1.0):
            problems.append(f"{{teacher_decay}} {self.teacher_decay} and {{teacher_decay_end}} "
                            f"{self.teacher_decay_end}: need 0 < decay < 1 and decay <= end <= 1")
        if self.teacher_temp_warmup_steps < 0:
            problems.append(f"{{teacher_temp_warmup_steps}} must be >= 0 (got {self.teacher_temp_warmup_steps})")
        if self.local_crops < 0:
            problems.append(f"{{local_crops}} must be >= 0 (got {self.local_crops})")
        for name in ("global_scale", "local_scale"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                problems.append(f"{{{name}}} must satisfy 0 < low <= high <= 1 (got {low}, {high})")
        for name in ("student_temp", "teacher_temp", "teacher_temp_start"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{{{name}}} must be > 0 (got {value})")
        if not 0 <= self.center_momentum < 1:
            problems.append(f"{{center_momentum}} must be in [0, 1) (got {self.center_momentum})")
        return problems


@dataclass
class RemoteRun:
    """A remote-sensing fine-tuning run: data, model, method and schedule (not where it writes or how it
    shows progress: those belong to the invocation, not to the run)."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("epochs", "max_steps", "checkpoint_every")  # may change on --resume
    FLAGS: ClassVar[dict[str, str]] = {"teacher_temp_warmup_steps": "--teacher-temp-warmup",
                                       "warmup_steps": "--warmup"}  # the method's and Trainer's names -> flags

    data: str | None = field(default=None, metadata=cli(
        "Captions (Karpathy JSON as RSICD/RSITMD/UCM ship it, CSV, JSONL, .tar shards) or a folder of class "
        "folders (EuroSAT, RESISC45; captions from the class names). With --resume it may be left out.",
        argument=True, path=True))
    model: str = field(default="tiny-multilingual", metadata=cli(
        "Model to fine-tune: rs-m-clip, an open_clip xlm-roberta model, a folder, or the offline "
        "tiny-multilingual.", "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli("Pretrained tag or weight file for --model."))
    languages: tuple[str, ...] = field(default=("en",), metadata=cli(
        "Caption languages trained, comma-separated (en is the source; others come from --translations).",
        parse=parse_languages))
    translations: str | None = field(default=None, metadata=cli(
        "Translations JSONL: {\"caption\": ..., \"translations\": {lang: text}} per line.", path=True))
    split: str | None = field(default="train", metadata=cli("Karpathy JSON: the training split."))
    eval_split: str | None = field(default=None, metadata=cli(
        "Karpathy JSON: held-out split evaluated each epoch, per language (e.g. test)."))
    distill_weight: float = field(default=0.0, metadata=cli(
        "Weight of RS-M-CLIP's self-distillation term (0: contrastive only)."))
    teacher_decay: float = field(default=0.996, metadata=cli("EMA decay of the teacher at the first step."))
    teacher_decay_end: float = field(default=1.0, metadata=cli(
        "... rising on a cosine to this at the last step (DINO: 1)."))
    teacher_temp: float = field(default=0.04, metadata=cli("Teacher temperature (DINO: 0.04-0.07)."))
    teacher_temp_start: float | None = field(default=None, metadata=cli(
        "Warm the teacher temperature up linearly from this ..."))
    teacher_temp_warmup: int = field(default=0, metadata=cli("... over this many steps."))
    local_crops: int = field(default=4, metadata=cli("Local crops per image."))
    # names or 1-based indexes (rasters.BandRef, spelled out: rasterio waits until a run is checked)
    bands: tuple[int | str, ...] | None = field(default=None, metadata=cli(
        "Multispectral rasters: bands by name or 1-based index (B02,B03,B04,B08), or 'all'. The model's patch "
        "embedding is adapted to that many bands.", parse=parse_training_bands))
    band_rule: str = field(default="repeat", metadata=cli(
        "repeat | average: how N-band filters are built from the RGB ones."))
    scale: float | None = field(default=None, metadata=cli("Rasters: DN multiplier (default by dtype: uint16 1e-4)."))
    s2_offset: bool = field(default=False, metadata=cli("Sentinel-2 L2A baseline >= 04.00: subtract 1000 DN.",
                                                        "--s2-offset"))
    stretch: tuple[float, float] | None = field(default=(2, 98), metadata=cli(
        "Rasters: per-chip percentile stretch 'LOW,HIGH' or 'none'.", parse=parse_stretch))
    nodata: float | None = field(default=None, metadata=cli(
        "Rasters: fill value overriding the chips' own (default: the file's; 0 in every band for untagged "
        "integer chips).", parse=_nodata))
    epochs: int = field(default=1, metadata=cli("Passes over every caption in every language."))
    max_steps: int | None = field(default=None, metadata=cli("Stop after this many optimizer steps."))
    batch_size: int = field(default=64, metadata=cli("Pairs per step and process.", "--batch-size", "-b"))
    lr: float = field(default=1e-5, metadata=cli("Peak learning rate (AdamW)."))
    weight_decay: float = field(default=0.2, metadata=cli("AdamW weight decay."))
    warmup: int = field(default=0, metadata=cli("Linear warm-up steps."))
    schedule: str = field(default="cosine", metadata=cli("cosine | constant (after warm-up)."))
    precision: str = field(default="auto", metadata=cli("auto, fp32, amp_bf16 or amp_fp16."))
    grad_accum: int = field(default=1, metadata=cli("Micro-batches per optimizer step."))
    checkpoint_every: int | None = field(default=None, metadata=cli(
        "Steps between checkpoints (default: each epoch end)."))
    seed: int = field(default=0, metadata=cli("Seed of the data order, the crops and the initialisation."))

    def __post_init__(self) -> None:
        """Every problem of the run in one line, naming the flags (torch-free: a CLI calls this first)."""
        # a stored run gives lists back (JSON): held as the tuples a fresh run holds
        self.bands = tuple(self.bands) if self.bands is not None else None
        self.stretch = (float(self.stretch[0]), float(self.stretch[1])) if self.stretch is not None else None
        if self.data is None:
            raise InputError("missing DATA (captions or class folders); only --resume of a run started by this "
                             "command may leave it out")
        if not Path(self.data).exists():
            raise InputError(f"{self.data}: not found (DATA)")
        if self.translations is not None and not Path(self.translations).is_file():
            raise InputError(f"{self.translations}: file not found (--translations)")
        check_held_out(self.data, self.split, self.eval_split)  # a CSV has no test split
        problems = []
        if self.band_rule not in BAND_RULES:
            problems.append(f"--band-rule '{self.band_rule}': choose {' or '.join(BAND_RULES)}")
        problems += schedule_problems(lambda: self.train_config(Path(".")))  # epochs, batch, lr ...: TrainConfig's
        checks: list[Callable[[], object]] = [  # the method's own rules, then how rasters are read
            self.settings, lambda: _check_scale(self.scale), lambda: _nodata(self.nodata),
            lambda: check_stretch(self.stretch, f"--stretch {self._stretch_text()}")]
        for check in checks:
            try:
                check()
            except InputError as error:
                problems.append(error.cli_message)
        if problems:
            raise InputError("; ".join(problems))
        self.languages = self.settings().languages  # as the method reads them: stripped, each once

    def _stretch_text(self) -> str:
        return "none" if self.stretch is None else ",".join(f"{v:g}" for v in self.stretch)

    def settings(self) -> RemoteTrainConfig:
        """The method's settings of this run."""
        return RemoteTrainConfig(languages=tuple(self.languages), distill_weight=self.distill_weight,
                                 teacher_decay=self.teacher_decay, teacher_decay_end=self.teacher_decay_end,
                                 teacher_temp=self.teacher_temp, teacher_temp_start=self.teacher_temp_start,
                                 teacher_temp_warmup_steps=self.teacher_temp_warmup, local_crops=self.local_crops,
                                 flags=self.FLAGS)

    def train_options(self) -> dict[str, Any]:
        """The Trainer's settings of this run (``TrainConfig`` fields)."""
        return {"epochs": self.epochs, "max_steps": self.max_steps, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "warmup_steps": self.warmup, "schedule": self.schedule,
                "precision": self.precision, "grad_accum": self.grad_accum,
                "checkpoint_every": self.checkpoint_every, "seed": self.seed}

    def train_config(self, output_dir: Path, **how: Any) -> TrainConfig:
        """The Trainer's config for this run in ``output_dir``; ``how``: resume, progress ..."""
        return TrainConfig(output_dir=output_dir, **self.train_options(), flags=self.FLAGS, **how)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run (``train.run_options``) and compared on ``--resume``: the keys the
        command stored before this config existed, so a run started then resumes."""
        return asdict(self)
