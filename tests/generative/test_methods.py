from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipsuite.core.errors import ModelError
from clipsuite.generative.components import build_parts
from clipsuite.generative.methods.emasc import EMASC, skip_plan
from clipsuite.generative.methods.tryon_unet import TryOnConditions, TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper, TPSGrid


def test_tryon_unet_with_zero_extra_inputs_equals_the_inpainting_unet() -> None:
    parts = build_parts("tiny", seed=0)
    torch.manual_seed(1)
    noisy, mask, masked = torch.randn(2, 4, 32, 24), (torch.rand(2, 1, 32, 24) > 0.5).float(), torch.randn(2, 4, 32, 24)
    text = torch.randn(2, 7, 32)
    with torch.no_grad():
        reference = parts.unet(torch.cat([noisy, mask, masked], 1), 50, encoder_hidden_states=text).sample
        model = TryOnUNet(parts.unet)
        assert model.unet.config.in_channels == 31 and model.unet.conv_in.weight.shape[1] == 31
        cond = TryOnConditions(mask, masked, torch.zeros(2, 18, 64, 48), torch.zeros(2, 4, 32, 24))
        out = model(noisy, 50, text, cond)
        torch.testing.assert_close(out, reference, rtol=0, atol=1e-6)
        # a pose or garment input now changes nothing until trained (zero weights) -- and something after
        cond.pose = torch.rand(2, 18, 64, 48)
        torch.testing.assert_close(model(noisy, 50, text, cond), reference, rtol=0, atol=1e-6)
        model.unet.conv_in.weight[:, 9:].normal_()
        assert (model(noisy, 50, text, cond) - reference).abs().max() > 1e-3


def test_widened_unet_rebuilds_from_its_config() -> None:
    from diffusers import UNet2DConditionModel

    model = TryOnUNet(build_parts("tiny").unet)
    rebuilt = UNet2DConditionModel.from_config(model.unet.config)
    assert rebuilt.conv_in.in_channels == 31
    rebuilt.load_state_dict(model.unet.state_dict())  # strict: same shapes everywhere
    with pytest.raises(ModelError, match="conv_in takes 5 channels"):
        TryOnUNet(UNet2DConditionModel.from_config({**model.unet.config, "in_channels": 5}))


def test_classifier_free_dropout_zeroes_per_sample() -> None:
    cond = TryOnConditions(torch.ones(2, 1, 4, 4), torch.ones(2, 4, 4, 4), torch.ones(2, 18, 4, 4),
                           torch.ones(2, 4, 4, 4))
    dropped = cond.drop({"pose": torch.tensor([1.0, 0.0]), "cloth_latent": torch.tensor([0.0, 1.0])})
    assert dropped.pose is not None and dropped.cloth_latent is not None
    assert dropped.pose[0].sum() == 18 * 16 and dropped.pose[1].sum() == 0
    assert dropped.cloth_latent[0].sum() == 0 and dropped.cloth_latent[1].sum() == 64


def test_emasc_plan_follows_the_vae_config() -> None:
    assert skip_plan([32, 64]) == [(1, 0, 64, 64), (-1, 1, 32, 64)]
    # SD's VAE: 4 blocks 128, 256, 512, 512
    assert skip_plan([128, 256, 512, 512]) == [(3, 0, 512, 512), (1, 1, 256, 512), (0, 2, 128, 512),
                                               (-1, 3, 128, 256)]


def test_emasc_untrained_is_plain_decode_and_skips_respect_the_mask() -> None:
    parts = build_parts("tiny", seed=0)
    vae = parts.vae
    emasc = EMASC(vae.config)
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 64, 48) * 2 - 1
    latents = torch.randn(1, 4, 32, 24)
    mask = torch.zeros(1, 1, 64, 48)
    mask[..., 16:48, 8:40] = 1
    with torch.no_grad():
        plain = vae.decode(latents).sample
        torch.testing.assert_close(emasc.decode(vae, latents, pixels, mask), plain, rtol=0, atol=0)
        # with real skip weights the output changes, and the hooks are gone afterwards
        for conv in emasc.convs:
            conv.weight.normal_(0, 0.05)
        skipped = emasc.decode(vae, latents, pixels, mask)
        assert (skipped - plain).abs().max() > 1e-3
        torch.testing.assert_close(vae.decode(latents).sample, plain, rtol=0, atol=0)
        # a fully repainted image gets no skip at all
        torch.testing.assert_close(emasc.decode(vae, latents, pixels, torch.ones_like(mask)), plain,
                                   rtol=0, atol=0)
    # the shapes of every skip match the decoder's inputs at the SD-2 VAE's sizes too (config only)
    features = {i: torch.zeros(1) for i, *_ in skip_plan([128, 256, 512, 512])}
    assert set(features) == {3, 1, 0, -1}


def test_tps_identity_and_a_known_shift() -> None:
    tps = TPSGrid(4, (16, 12))
    image = torch.rand(1, 3, 16, 12)
    grid = tps(tps.base[None].clone())
    torch.testing.assert_close(F.grid_sample(image, grid, align_corners=False), image, rtol=0, atol=1e-5)
    # all control points moved by +2 pixel widths in x: a pure translation, sampled 2 pixels to the right
    shifted = tps(tps.base[None] + torch.tensor([4 / 12, 0.0]))
    out = F.grid_sample(image, shifted, align_corners=False)
    torch.testing.assert_close(out[..., :10], image[..., 2:], rtol=0, atol=1e-4)


def test_garment_warper_starts_at_identity() -> None:
    torch.manual_seed(0)
    warper = GarmentWarper((64, 48))
    cloth = torch.rand(2, 3, 64, 48)
    out = warper(cloth, torch.rand(2, 3, 64, 48), torch.rand(2, 18, 64, 48))
    torch.testing.assert_close(out["tps"], cloth, rtol=0, atol=1e-5)
    torch.testing.assert_close(out["refined"], out["tps"], rtol=0, atol=0)
