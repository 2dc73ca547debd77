"""Training the MLP decoder on the core Trainer (AMP, accumulation, ``--resume``, multi-GPU).

The trained module is ``DecoderObjective``: the decoder plus a buffer counting optimizer steps, and
its ``forward(batch)`` computes the loss (BiMixCo or SoftCLIP, by the epoch the step counter says).
The counter lives in the module's state, so the core Trainer checkpoints it with the weights and a
resumed run continues the schedule where it stopped; mixup draws from the global RNG, which the
Trainer restores too. ``DecoderTask`` is the ``TrainTask`` the Trainer runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from clipsuite.brain.evaluate import retrieval
from clipsuite.brain.losses import LossSchedule, mixco, mixco_nce, soft_clip_loss
from clipsuite.brain.methods.mlp import BrainMLP
from clipsuite.core.errors import InputError
from clipsuite.core.train.task import RunSteps


class DecoderDataset(Dataset):
    """``{"voxels", "image", "text"}`` per sample: responses and the CLIP targets of their stimuli."""

    def __init__(self, voxels: np.ndarray, targets: Mapping[str, np.ndarray]) -> None:
        self.voxels = torch.as_tensor(np.asarray(voxels, dtype=np.float32))
        self.targets = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in targets.items()}
        if any(len(v) != len(self.voxels) for v in self.targets.values()):
            raise InputError(f"decoder data: {len(self.voxels)} responses but targets of lengths "
                             f"{[len(v) for v in self.targets.values()]}")
        if not torch.isfinite(self.voxels).all():
            raise InputError("decoder data: responses have NaN or infinite values")

    def __len__(self) -> int:
        return len(self.voxels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"voxels": self.voxels[index], **{k: v[index] for k, v in self.targets.items()}}


@dataclass(frozen=True)
class LossSettings:
    mixup_fraction: float = 0.33              # MindEye: BiMixCo for the first third of the epochs
    mix_temperature: float = 0.006
    soft_temperature: tuple[float, float] = (0.004, 0.0075)
    text_weight: float = 1.0                  # the text head's loss beside the image head's
    kl_weight: float = 1e-3                   # VAE variant: KL(posterior || N(0, I)), mean over code dims
    recon_weight: float = 0.1                 # VAE variant: mean squared error of the reconstructed voxels


def vae_terms(extra: Mapping[str, torch.Tensor], voxels: torch.Tensor) -> dict[str, torch.Tensor]:
    """KL divergence of ``N(mu, exp(logvar))`` from ``N(0, I)`` (mean over samples and code dims) and the
    reconstruction's mean squared error against the voxels the network read."""
    mu, logvar = extra["mu"].float(), extra["logvar"].float()
    kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).mean()
    return {"loss_kl": kl, "loss_recon": torch.nn.functional.mse_loss(extra["recon"].float(), voxels.float())}


class DecoderObjective(nn.Module):
    """The decoder and its loss: ``forward(batch) -> {"loss", "loss_image", "loss_text", "bimixco"}``."""

    steps: torch.Tensor  # the registered buffer

    def __init__(self, decoder: BrainMLP, schedule: LossSchedule, text_weight: float = 1.0,
                 kl_weight: float = 0.0, recon_weight: float = 0.0) -> None:
        super().__init__()
        self.decoder = decoder
        self.schedule = schedule
        self.steps_per_epoch = 1  # the Trainer tells the run's count before the first step (start)
        self.text_weight = text_weight
        self.kl_weight, self.recon_weight = kl_weight, recon_weight
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # optimizer steps done

    def start(self, steps: RunSteps) -> None:
        """The run's length as the Trainer counts it: the epochs the loss schedule spans (a ``max_steps`` run
        included) and the optimizer steps in each."""
        self.steps_per_epoch = max(1, steps.per_epoch)
        self.schedule = dataclasses.replace(self.schedule, epochs=steps.epochs)

    def phase(self) -> tuple[str, float]:
        return self.schedule.at(int(self.steps) // self.steps_per_epoch)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kind, temperature = self.phase()
        voxels = batch["voxels"]
        mix = None
        if kind == "bimixco":
            voxels, mix = mixco(voxels)
        out, extra = self.decoder.forward_parts(voxels)
        parts: dict[str, torch.Tensor] = {}
        for space, pred in out.items():
            parts[f"loss_{space}"] = (mixco_nce(pred, batch[space], temperature, mix) if mix is not None
                                      else soft_clip_loss(pred, batch[space], temperature))
        weights = {"image": 1.0, "text": self.text_weight}
        loss = cast(torch.Tensor, sum(weights[s] * parts[f"loss_{s}"] for s in out))  # out: never empty
        if extra:  # the VAE variant
            parts.update(vae_terms(extra, voxels))
            loss = loss + self.kl_weight * parts["loss_kl"] + self.recon_weight * parts["loss_recon"]
        return {"loss": loss, **parts, "bimixco": torch.tensor(float(kind == "bimixco"), device=loss.device)}


class DecoderTask:
    """The ``TrainTask``: ``module`` is the objective; ``loss`` is its forward; evaluation is MindEye's
    retrieval (both directions) of the held-out samples, per space."""

    def __init__(self, objective: DecoderObjective, eval_data: DecoderDataset | None = None,
                 config: dict[str, Any] | None = None, eval_batch: int = 512) -> None:
        self.module = objective
        self.eval_data = eval_data
        self._config = dict(config or {})
        self.eval_batch = eval_batch

    def loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module(batch)

    def start_schedule(self, steps: RunSteps) -> None:
        self.module.start(steps)

    def after_step(self) -> None:
        self.module.steps += 1

    def config(self) -> dict[str, Any]:
        return self._config

    def evaluate(self) -> dict[str, float]:
        if self.eval_data is None or len(self.eval_data) < 2:
            return {}
        decoded = predict(self.module.decoder, self.eval_data.voxels, self.eval_batch)
        out: dict[str, float] = {}
        for space, pred in decoded.items():
            scores = retrieval(pred, self.eval_data.targets[space].numpy(), n_way=300, draws=30)
            out[f"{space}_image_retrieval"] = scores["image_retrieval"]
            out[f"{space}_brain_retrieval"] = scores["brain_retrieval"]
        return out


@torch.no_grad()
def predict(decoder: BrainMLP, voxels: np.ndarray | torch.Tensor, batch_size: int = 512) -> dict[str, np.ndarray]:
    """Decoded embeddings (float32, not normalised) of ``voxels``, in eval mode, batch by batch."""
    x = torch.as_tensor(np.asarray(voxels, dtype=np.float32) if not isinstance(voxels, torch.Tensor) else voxels)
    device = next(decoder.parameters()).device
    was_training = decoder.training
    decoder.eval()
    chunks: dict[str, list[torch.Tensor]] = {s: [] for s in decoder.config.spaces}
    for start in range(0, len(x), batch_size):
        out = decoder(x[start:start + batch_size].to(device, torch.float32))
        for space, value in out.items():
            chunks[space].append(value.float().cpu())
    decoder.train(was_training)
    return {s: torch.cat(v).numpy() for s, v in chunks.items()}
