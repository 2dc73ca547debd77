"""The try-on training stages as tasks for the core ``Trainer`` (``module`` + ``loss(batch)``).

LaDI-VTON trains in stages, each saving its part for the next: the garment warper (L1 of the TPS
and refined garment against the garment as worn), EMASC (L1 of the decoded person with skips,
against the person; the paper adds 0.5 x a VGG perceptual term, used here when a perceptual network
is passed), the inversion adapter (``inversion.InversionTask``) and the try-on UNet (epsilon MSE,
classifier-free dropout of each condition). Frozen parts (the VAE, a trained warper, the text side)
are declared through ``frozen_modules`` so the Trainer places them on its device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL  # not `from diffusers`: mypy sees its dummies
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from torch import nn

from clipsuite.core.checkpoints import save_tensors
from clipsuite.core.train import TrainConfig, Trainer, TrainResult
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.tryon_unet import TryOnConditions, TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.part_files import clip_identity
from clipsuite.generative.pipeline import encode_latents, latent_mask

if TYPE_CHECKING:
    from clipsuite.generative.methods.inversion import InversionAdapter

Batch = Mapping[str, torch.Tensor]
STAGES = ("warping", "emasc", "inversion", "tryon")


def _frozen(*modules: nn.Module | None) -> list[nn.Module]:
    out = []
    for module in modules:
        if module is not None:
            module.requires_grad_(False).eval()
            out.append(module)
    return out


class WarpingTask:
    def __init__(self, warper: GarmentWarper, smoothness: float = 0.1) -> None:
        self.module, self.smoothness = warper, smoothness

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.module(batch["cloth"], batch["masked_image"], batch["pose"])
        region = batch["garment_region"]
        area = region.sum().clamp_min(1) * 3
        l1_tps = ((out["tps"] - batch["image"]).abs() * region).sum() / area
        l1_refined = ((out["refined"] - batch["image"]).abs() * region).sum() / area
        grid = out["grid"]  # second differences of the sampling grid: keep the warp smooth
        bend = ((grid[:, 2:] - 2 * grid[:, 1:-1] + grid[:, :-2]).abs().mean()
                + (grid[:, :, 2:] - 2 * grid[:, :, 1:-1] + grid[:, :, :-2]).abs().mean())
        return {"loss": l1_tps + l1_refined + self.smoothness * bend, "l1_tps": l1_tps.detach(),
                "l1_refined": l1_refined.detach()}

    def config(self) -> dict[str, Any]:
        return {"stage": "warping", "size": list(self.module.size)}


class EMASCTask:
    def __init__(self, vae: AutoencoderKL, emasc: EMASC,
                 perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.module, self.vae, self.perceptual = emasc, vae, perceptual
        _frozen(vae)

    def frozen_modules(self) -> Sequence[nn.Module]:
        return [self.vae]

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        latents = encode_latents(self.vae, batch["image"]) / self.vae.config["scaling_factor"]
        decoded = self.module.decode(self.vae, latents, batch["masked_image"], batch["mask"])
        l1 = F.l1_loss(decoded.float(), batch["image"])
        out = {"loss": l1, "l1": l1.detach()}
        if self.perceptual is not None:
            vgg = self.perceptual(decoded.float(), batch["image"])
            out = {"loss": l1 + 0.5 * vgg, "l1": l1.detach(), "perceptual": vgg.detach()}
        return out

    def config(self) -> dict[str, Any]:
        return {"stage": "emasc", "block_out_channels": list(self.vae.config["block_out_channels"])}


@dataclass
class Dropout:
    """Classifier-free dropout probability of each condition (LaDI-VTON: 0.2 each)."""

    text: float = 0.2
    pose: float = 0.2
    cloth: float = 0.2


class TryOnTask:
    """Epsilon-prediction MSE of the try-on UNet. ``text_states(batch)`` gives the prompt states
    (through the inversion adapter and the frozen text encoder); ``null_states`` is the empty prompt's."""

    # set by stages.make_stage_task: what the task was wired to, and the digests of the earlier stages' files
    adapter: InversionAdapter | None
    inputs: dict[str, str]
    clip_identity: dict[str, str] | None = None  # the CLIP whose text states it learnt (part_files.check_clip)

    def __init__(self, unet: TryOnUNet, vae: AutoencoderKL, scheduler: DDIMScheduler,
                 text_states: Callable[[Batch], torch.Tensor], null_states: torch.Tensor,
                 warper: GarmentWarper | None = None, dropout: Dropout | None = None,
                 frozen: Sequence[nn.Module] = ()) -> None:
        self.module, self.vae, self.scheduler = unet, vae, scheduler
        self.text_states, self.warper = text_states, warper
        self.dropout = dropout or Dropout()
        self._frozen = _frozen(vae, warper, *frozen)
        unet.register_buffer("null_states", null_states.detach().clone(), persistent=False)

    def frozen_modules(self) -> Sequence[nn.Module]:
        return self._frozen

    def loss(self, batch: Batch) -> torch.Tensor:
        image = batch["image"]
        b = image.shape[0]
        cloth = batch["cloth"]
        if self.warper is not None:
            with torch.no_grad():
                cloth = self.warper(cloth, batch["masked_image"], batch["pose"])["refined"]
        latents = encode_latents(self.vae, image)
        cond = TryOnConditions(latent_mask(batch["mask"], latents.shape[-2:]),
                               encode_latents(self.vae, batch["masked_image"]), batch["pose"],
                               encode_latents(self.vae, cloth))
        keep = {name: (torch.rand(b, device=image.device) >= p).float()
                for name, p in (("text", self.dropout.text), ("pose", self.dropout.pose),
                                ("cloth_latent", self.dropout.cloth))}
        cond = cond.drop(keep)
        states = self.text_states(batch)
        null = cast(torch.Tensor, self.module.null_states).to(states.dtype).expand_as(states)  # buffer set above
        k = keep["text"].view(-1, 1, 1)
        states = states * k + null * (1 - k)
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.scheduler.config["num_train_timesteps"], (b,), device=image.device)
        noisy = self.scheduler.add_noise(latents, noise, cast(torch.IntTensor, t))  # any integer tensor
        pred = self.module(noisy, t, states, cond)
        return F.mse_loss(pred.float(), noise.float())

    def config(self) -> dict[str, Any]:
        return {"stage": "tryon", "unet": dict(self.module.unet.config)}


# ---- running a stage and handing its part on --------------------------------------------------------
def train_stage(task: Any, data: Any, config: TrainConfig, part_file: str | Path,
                options: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``task.module`` on ``data`` and save it (EMA weights when ``ema_decay`` is set) to
    ``part_file`` as safetensors with the task's config (and the digests of the earlier stages it was
    trained with, ``task.inputs``), for the next stage to load. ``options``: the command's flags, kept
    with the run for ``--resume``."""
    result = Trainer(task, config, options).fit(data)
    meta = task.config() if hasattr(task, "config") else {}
    inputs = getattr(task, "inputs", None)
    clip = getattr(task, "clip_identity", None) or {}  # stages that read CLIP features record which CLIP
    save_tensors(part_file, task.module.state_dict(), {**meta, **({"inputs": inputs} if inputs else {}), **clip,
                                                       "step": result.step})
    return result


def fit_delta_mapper(clip: Any, images: Sequence[Any], config: TrainConfig, part_file: str | Path,
                     hidden: int = 256, options: Mapping[str, Any] | None = None) -> TrainResult:
    """DeltaSpace from a set of images alone: embed them once with the frozen CLIP model, train the
    mapper on all ordered pairs, save it as the ``delta`` stage (``delta_scale`` included)."""
    from clipsuite.generative.methods.deltaspace import DeltaMapper, DeltaTask, PairDeltas, embed_images

    c, e = embed_images(clip, images)
    data = PairDeltas(c, e)
    mapper = DeltaMapper(c.shape[1], e.shape[1], hidden=hidden)
    mapper.delta_scale.fill_(data.mean_delta_norm())
    task = DeltaTask(mapper)
    task.clip_identity = clip_identity(clip)
    return train_stage(task, data, config, part_file, options)
