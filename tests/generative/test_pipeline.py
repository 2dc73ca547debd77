from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.generative.components import build_parts
from clipsuite.generative.data import VitonHD
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.pipeline import MemoryOptions, SamplingOptions, TryOnPipeline

SIZE = (32, 24)


@pytest.fixture(scope="module")
def batch(vitonhd: Path) -> dict[str, torch.Tensor]:
    ds = VitonHD(vitonhd, "test", size=SIZE)
    return torch.utils.data.default_collate([ds[0]])


def _pipe(memory: MemoryOptions | None = None, warper: bool = True) -> TryOnPipeline:
    parts = build_parts("micro", seed=0)
    torch.manual_seed(0)
    return TryOnPipeline(parts, TryOnUNet(parts.unet), EMASC(parts.vae.config),
                         GarmentWarper(SIZE) if warper else None, memory=memory)


def test_end_to_end_keeps_unmasked_pixels_and_is_seeded(batch: dict[str, torch.Tensor]) -> None:
    pipe = _pipe()
    states = torch.randn(1, 5, 32)
    steps: list[int] = []
    out = pipe(batch, states, torch.zeros_like(states), SamplingOptions(steps=3, guidance=2.0, seed=3),
               on_step=lambda i, n: steps.append(i))
    image, mask = out["image"], batch["mask"]
    assert image.shape == (1, 3, *SIZE) and steps == [1, 2, 3]
    assert torch.equal(image * (1 - mask), batch["image"] * (1 - mask))  # untouched outside the mask
    assert (image - batch["image"]).abs()[mask.expand_as(image) > 0].mean() > 0.01  # repainted inside
    again = pipe(batch, states, torch.zeros_like(states), SamplingOptions(steps=3, guidance=2.0, seed=3))
    torch.testing.assert_close(again["image"], image, rtol=0, atol=0)
    other = pipe(batch, states, torch.zeros_like(states), SamplingOptions(steps=3, guidance=2.0, seed=4))
    assert (other["image"] - image).abs().max() > 1e-3
    # without the paste-back the raw decode differs outside the mask (it is a generated image)
    raw = pipe(batch, states, torch.zeros_like(states), SamplingOptions(steps=3, guidance=2.0, seed=3,
                                                                        keep_unmasked=False))
    assert (raw["image"] - image).abs()[mask.expand_as(image) == 0].max() > 1e-3


def test_guidance_one_is_the_conditional_prediction_alone(batch: dict[str, torch.Tensor]) -> None:
    pipe = _pipe(warper=False)
    states = torch.randn(1, 5, 32)
    a = pipe(batch, states, torch.randn(1, 5, 32), SamplingOptions(steps=2, guidance=1.0))
    b = pipe(batch, states, torch.randn(1, 5, 32), SamplingOptions(steps=2, guidance=1.0))
    torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)  # null states unused without guidance


def test_memory_options_agree_with_plain(batch: dict[str, torch.Tensor]) -> None:
    states = torch.randn(1, 5, 32)
    opts = SamplingOptions(steps=2, guidance=2.0)
    plain = _pipe(warper=False)(batch, states, states * 0, opts)["image"]
    sliced = _pipe(MemoryOptions(attention_slicing=True, cpu_offload=True), warper=False)(batch, states, states * 0,
                                                                                          opts)["image"]
    torch.testing.assert_close(sliced, plain, rtol=0, atol=1e-5)
    half = _pipe(MemoryOptions(precision="bf16"), warper=False)(batch, states, states * 0, opts)["image"]
    assert half.dtype == torch.float32 and (half - plain).abs().mean() < 0.1
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        MemoryOptions(precision="fp8")
