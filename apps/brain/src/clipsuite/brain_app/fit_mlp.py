"""``clipsuite-brain fit --decoder mlp``: the MLP run's flags, checked before torch is imported, stored
with the run and restored by ``--resume`` (``clipsuite.cli.resume``: flags typed again must agree,
``--epochs`` and ``--checkpoint-every`` may change)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsuite.cli.common import fail

if TYPE_CHECKING:
    from clipsuite.brain.pipeline import FittedDecoder

# the run's identity, by parameter name; --device, --cache, --run-dir and --output are where it runs, not what
STORED = ("dataset", "test_fraction", "seed", "per_session", "train_repetitions", "model", "pretrained", "epochs",
          "batch_size", "lr", "hidden", "blocks", "projector", "mixup_fraction", "text_weight", "vae_latent",
          "kl_weight", "recon_weight", "precision", "grad_accum", "checkpoint_every")
ADJUSTABLE = ("epochs", "checkpoint_every")


def check_mlp(o: dict[str, Any]) -> None:
    """The MLP options in one line naming every bad flag (torch-free)."""
    from clipsuite.core.precision import check_precision

    problems = [f"--{name.replace('_', '-')} must be >= 1 (got {o[name]})"
                for name in ("epochs", "batch_size", "hidden", "grad_accum") if o[name] < 1]
    problems += [f"--{name.replace('_', '-')} must be >= 0 (got {o[name]})"
                 for name in ("blocks", "projector", "text_weight", "vae_latent", "kl_weight", "recon_weight")
                 if o[name] < 0]
    if not o["lr"] > 0:
        problems.append(f"--lr must be > 0 (got {o['lr']})")
    if not 0 <= o["mixup_fraction"] <= 1:
        problems.append(f"--mixup-fraction must be in [0, 1] (got {o['mixup_fraction']})")
    try:
        check_precision(o["precision"])
    except ValueError as error:
        problems.append(f"--precision: {error}")
    if problems:
        fail("; ".join(problems))


def train_mlp(o: dict[str, Any], subject: Any, features: Any, out: Path, run_dir: Path, resume: bool,
              device: str | None, spec: dict[str, Any]) -> FittedDecoder:
    """Train on the core Trainer (``device``: where the MLP trains; None: a visible GPU, else the CPU)."""
    from clipsuite.brain.pipeline import MLPFit, fit_mlp_decoder
    from clipsuite.brain.train import LossSettings
    from clipsuite.core.train import TrainConfig

    train = TrainConfig(output_dir=run_dir, epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                        weight_decay=1e-2, precision=o["precision"], grad_accum=o["grad_accum"], seed=o["seed"],
                        resume=resume, log_every=1, checkpoint_every=o["checkpoint_every"], device=device)
    loss = LossSettings(mixup_fraction=o["mixup_fraction"], text_weight=o["text_weight"], kl_weight=o["kl_weight"],
                        recon_weight=o["recon_weight"])
    settings = MLPFit(hidden=o["hidden"], blocks=o["blocks"], projector=o["projector"], vae_latent=o["vae_latent"],
                      loss=loss)
    return fit_mlp_decoder(subject, features, out, spec, train, settings, options=o)
