"""Metrics: torchmetrics where it computes (agreement tested through independent formulas), our own
directional similarity against its formula, and 'unavailable' instead of numbers from random weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from clipsuite.core.errors import InputError, ModelError
from clipsuite.core.models import load_model
from clipsuite.generative import evaluate


class TinyFeatures(nn.Module):
    """A small fixed feature network for FID/KID offline (what Inception is for real numbers)."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)).mean(dim=(2, 3)) * 3


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return load_model("tiny-transformers", device="cpu")


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.rand(20, 3, 24, 24, generator=g)
    fake = (real * 0.6 + 0.3 * torch.rand(20, 3, 24, 24, generator=g)).clamp(0, 1)
    return real, fake


def test_fid_equals_the_frechet_formula_on_the_extractor_features(images) -> None:  # type: ignore[no-untyped-def]
    real, fake = images
    net = TinyFeatures()
    value = evaluate.fid(real, fake, net).value
    with torch.no_grad():
        a, b = net(real).double().numpy(), net(fake).double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    reference = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert value == pytest.approx(reference, rel=1e-3, abs=1e-5)
    assert evaluate.fid(real, real, net).value == pytest.approx(0, abs=1e-4)


def test_kid_equals_the_unbiased_mmd_with_the_cubic_kernel(images) -> None:  # type: ignore[no-untyped-def]
    real, fake = images
    net = TinyFeatures()
    value = evaluate.kid(real, fake, net, subsets=1).value  # one subset of all 20: no sampling
    with torch.no_grad():
        a, b = net(real).double(), net(fake).double()
    d, n = a.shape[1], len(a)

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x @ y.T / d + 1) ** 3
    off = 1 - torch.eye(n, dtype=torch.float64)
    reference = ((k(a, a) * off).sum() + (k(b, b) * off).sum()) / (n * (n - 1)) - 2 * k(a, b).mean()
    assert value == pytest.approx(float(reference), rel=1e-4)


def test_ssim_is_torchmetrics_and_refuses_bad_input(images) -> None:  # type: ignore[no-untyped-def]
    from skimage.metrics import structural_similarity

    real, fake = images
    value = evaluate.ssim(fake[:2], real[:2]).value
    # scikit-image with the same Gaussian window (Wang et al.'s settings), per image; borders differ
    # slightly (torchmetrics pads, scikit-image crops), so a loose tolerance
    ref = np.mean([structural_similarity(fake[i].numpy(), real[i].numpy(), channel_axis=0, data_range=1.0,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                   for i in range(2)])
    assert value == pytest.approx(ref, abs=0.03)
    assert evaluate.ssim(real, real).value == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="paired images differ in shape"):
        evaluate.ssim(fake[:2], real[:3])
    with pytest.raises(InputError, match=r"must be in \[0, 1\]"):
        evaluate.ssim(fake * 2 - 1, real)
    with pytest.raises(InputError, match="NaN"):
        evaluate.ssim(torch.full_like(real, float("nan")), real)


def test_network_metrics_without_weights_are_unavailable_not_random(images, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real, fake = images
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    lp = evaluate.lpips(fake, real)
    assert lp.value is None and "alexnet" in lp.unavailable and str(tmp_path / "hub") in lp.unavailable
    table = {m.name: m for m in evaluate.tryon_metrics(real, fake, fake.flip(0))}
    assert set(table) == {"ssim", "lpips", "fid", "kid", "fid_unpaired", "kid_unpaired"}
    assert table["ssim"].available
    for name in ("fid", "kid", "fid_unpaired", "kid_unpaired"):
        assert table[name].value is None and evaluate.INCEPTION_FILE in table[name].unavailable
    assert table["fid"].as_dict()["unavailable"].startswith("needs torch-fidelity's Inception")


def test_lpips_uses_the_backbone_found_in_the_hub_cache(images, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    real, fake = images
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    target = evaluate.lpips_backbone_file("squeeze")
    target.parent.mkdir(parents=True)
    values = []
    for seed in (0, 1):  # two different backbones in the file: two different values
        torch.manual_seed(seed)
        torch.save(torchvision.models.squeezenet1_1().state_dict(), target)
        values.append(evaluate.lpips(fake[:2], real[:2], net="squeeze").value)
        assert evaluate.lpips(real[:2], real[:2], net="squeeze").value == pytest.approx(0, abs=1e-6)
    assert values[0] is not None and values[1] is not None and abs(values[0] - values[1]) > 1e-4
    with pytest.raises(InputError, match="unknown LPIPS network 'resnet'"):
        evaluate.lpips_backbone_file("resnet")


def test_inception_file_is_loaded_only_if_it_holds_plain_tensors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"x": evaluate.Metric("x")}, bad)  # a pickled object, not tensors
    with pytest.raises(ModelError, match="not a readable Inception weights file"):
        evaluate.InceptionFeatures(bad)
    assert evaluate.inception_file(tmp_path / "absent.pth")[0] is None


def test_clip_score_agrees_with_torchmetrics(clip) -> None:  # type: ignore[no-untyped-def]
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPProcessor

    import clipsuite.core

    folder = Path(os.path.dirname(clipsuite.core.__file__)) / "model_configs" / "tiny-transformers"
    processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)

    class Features(nn.Module):  # torchmetrics expects tensors from get_*_features (transformers 5 returns outputs)
        def __init__(self, hf: nn.Module) -> None:
            super().__init__()
            self.hf, self.config = hf, hf.config

        def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.hf.visual_projection(self.hf.vision_model(pixel_values=pixel_values).pooler_output)

        def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.hf.text_model(input_ids=input_ids, attention_mask=attention_mask)
            return self.hf.text_projection(out.pooler_output)

    reference = CLIPScore(model_name_or_path=lambda: (Features(clip.hf), processor))
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64)
    texts = ["a red car", "a dog on grass", "a blue dress"]
    reference.update((images * 255).round().byte(), texts)
    assert evaluate.clip_score(clip, images, texts).value == pytest.approx(float(reference.compute()), rel=1e-4)
    with pytest.raises(InputError, match="3 images but 2 texts"):
        evaluate.clip_score(clip, images, texts[:2])


def test_directional_similarity_formula(clip) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    before, after = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    src, dst = ["a car", "a dress"], ["a red car", "a long dress"]
    value = evaluate.directional_similarity(clip, before, after, src, dst).value
    e = evaluate.clip_image_embeddings
    di = e(clip, after) - e(clip, before)
    dt = clip.encode_texts(dst) - clip.encode_texts(src)
    reference = ((di * dt).sum(-1) / (di.norm(dim=-1) * dt.norm(dim=-1))).mean()
    assert value == pytest.approx(float(reference), abs=1e-5)
    # the reverse edit points the other way
    assert evaluate.directional_similarity(clip, after, before, src, dst).value == pytest.approx(-value, abs=1e-5)
    assert evaluate.directional_similarity(clip, before, before, src, dst).value == 0.0
