"""DeltaSpace: the mapper trains on image pairs only (loss falls), strength 0 is the identity, and a
trained mapper moves the conditioning toward the text direction far more than an untrained one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.train import TrainConfig, Trainer
from clipsuite.generative.components import build_parts
from clipsuite.generative.editing import EditOptions, VariationGenerator
from clipsuite.generative.methods.deltaspace import (
    DeltaMapper,
    DeltaTask,
    PairDeltas,
    edit_codes,
    embed_images,
    text_delta,
)

PROMPTS = [("a red car", "a car"), ("a long dress", "a dress"), ("a smiling face", "a face")]


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return load_model("tiny-transformers", device="cpu")


@pytest.fixture(scope="module")
def embedded(clip) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    # varied pictures (smooth colour fields and blobs), so the image deltas span the embedding space
    g = torch.Generator().manual_seed(0)
    images = []
    for _ in range(40):
        low = torch.rand(3, 4, 4, generator=g)
        field = F.interpolate(low[None], size=(64, 64), mode="bilinear", align_corners=False)[0]
        images.append(Image.fromarray((field.permute(1, 2, 0).numpy() * 255).astype("uint8")))
    return embed_images(clip, images)


@pytest.fixture(scope="module")
def trained(embedded, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    c, e = embedded
    data = PairDeltas(c, e)
    torch.manual_seed(0)
    mapper = DeltaMapper(c.shape[1], e.shape[1], hidden=128)
    mapper.delta_scale.fill_(data.mean_delta_norm())
    task = DeltaTask(mapper)
    batch = torch.utils.data.default_collate([data[i] for i in range(0, len(data), 7)])
    with torch.no_grad():
        before = float(task.loss(batch)["loss"])
    Trainer(task, TrainConfig(output_dir=tmp_path_factory.mktemp("delta"), max_steps=150, batch_size=64, lr=3e-3,
                              progress=False, precision="fp32", schedule="constant")).fit(data)
    with torch.no_grad():
        after = float(task.loss(batch)["loss"])
    return mapper, before, after


def test_pairs_and_the_loss_falls(embedded, trained) -> None:  # type: ignore[no-untyped-def]
    c, e = embedded
    data = PairDeltas(c, e)
    assert len(data) == 40 * 39
    item = data[0]  # pair (0, 1)
    torch.testing.assert_close(item["delta_c"], c[1] - c[0])
    torch.testing.assert_close(item["delta_e"], e[1] - e[0])
    _, before, after = trained
    assert after < 0.3 * before, (before, after)
    with pytest.raises(InputError, match="at least 2 images"):
        PairDeltas(c[:1], e[:1])


def _direction(clip, mapper: DeltaMapper, c: torch.Tensor, e: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    """Mean cos(normalise(e') - normalise(e), text delta) over images and prompts: how well the edited
    code, read as a CLIP image embedding, moved along the text direction."""
    scores = []
    for target, neutral in PROMPTS:
        delta = text_delta(clip, target, neutral, float(mapper.delta_scale))
        edited = edit_codes(mapper, c, e, delta, strength=1.0)
        moved = F.normalize(edited, dim=-1) - F.normalize(e, dim=-1)
        scores.append(F.cosine_similarity(moved, delta[None], dim=-1).mean())
    return float(torch.stack(scores).mean())


def test_trained_mapper_follows_the_text_direction(clip, embedded, trained) -> None:  # type: ignore[no-untyped-def]
    c, e = embedded
    mapper, _, _ = trained
    torch.manual_seed(1)
    untrained = DeltaMapper(c.shape[1], e.shape[1], hidden=128)
    untrained.delta_scale.copy_(mapper.delta_scale)
    good, random = _direction(clip, mapper, c[:8], e[:8]), _direction(clip, untrained, c[:8], e[:8])
    # text deltas lie partly outside the span of the training image deltas (a random tiny CLIP has no
    # text-image alignment), so the trained mapper follows them only partly; the untrained one not at all
    assert good > 0.2 and good > random + 0.3, (good, random)


def test_strength_zero_is_the_identity_and_edits_render(clip, embedded, trained) -> None:  # type: ignore[no-untyped-def]
    c, e = embedded
    mapper, _, _ = trained
    delta = text_delta(clip, "a red car", "a car", float(mapper.delta_scale))
    assert torch.equal(edit_codes(mapper, c[:2], e[:2], delta, 0.0), e[:2])
    assert (edit_codes(mapper, c[:2], e[:2], delta, 0.8) - e[:2]).abs().max() > 1e-3
    generator = VariationGenerator(build_parts("micro", seed=0, cross_attention_dim=e.shape[1], in_channels=4))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    opts = EditOptions(steps=3, noise_strength=0.6, guidance=2.0, seed=0)
    plain = generator(images, e[:2], opts)
    same = generator(images, edit_codes(mapper, c[:2], e[:2], delta, 0.0), opts)
    torch.testing.assert_close(same, plain, rtol=0, atol=0)
    edited = generator(images, edit_codes(mapper, c[:2], e[:2], delta, 0.8), opts)
    assert edited.shape == images.shape and (edited - plain).abs().max() > 1e-4
    with pytest.raises(InputError, match="same CLIP text embedding"):
        text_delta(clip, "a car", "a car", 1.0)
    # the documented range [0, 2]: 2 is the last strength accepted; below 0 names the opposite edit's way
    assert edit_codes(mapper, c[:2], e[:2], delta, 2.0).shape == e[:2].shape
    with pytest.raises(InputError, match=r"edit strength -1: must be in \[0, 2\].*swap the target and neutral"):
        edit_codes(mapper, c[:2], e[:2], delta, -1.0)
    for outside in (2.01, float("nan")):
        with pytest.raises(InputError, match=r"must be in \[0, 2\]"):
            edit_codes(mapper, c[:2], e[:2], delta, outside)
    with pytest.raises(InputError, match="noise strength"):
        EditOptions(noise_strength=0)
