"""AnomalyCLIP / AdaptCLIP pieces: exactness of the building blocks, training, save/load, CLI."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.anomaly.data import load_dataset
from clipsuite.anomaly.methods.adaptclip import AdaptClip
from clipsuite.anomaly.methods.anomalyclip import AnomalyClip
from clipsuite.anomaly.methods.dpam import default_dpam_layer, default_features, encode_with_dpam
from clipsuite.anomaly.methods.learned import load_learned
from clipsuite.anomaly.methods.text_prompts import PromptTextEncoder
from clipsuite.anomaly.train import train_learned
from clipsuite.anomaly_app.main import app
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.towers import text_tower, vision_tower
from clipsuite.core.train import read_metrics

runner = CliRunner()
TINY = ["--model", "tiny", "--device", "cpu"]


@pytest.mark.parametrize("spec", ["tiny", "tiny-hf"])
def test_prompt_encoder_equals_encode_text_when_ctx_is_the_words(spec):
    clip = load_model(spec, device="cpu")
    encoder = PromptTextEncoder(clip, n_ctx=3, deep_depth=0)
    words = clip.tokenize(["a b c object.", "a b c damaged object."])
    with torch.no_grad():
        encoder.ctx.copy_(text_tower(clip).embed(words)[:, 1:4])
        expected = clip.model.encode_text(words)
        torch.testing.assert_close(encoder(), expected, atol=1e-6, rtol=0)
    deep = PromptTextEncoder(clip, n_ctx=3, deep_depth=2)
    assert deep.deep.shape[0] == 1  # layer 1 gets fresh tokens
    with torch.no_grad():
        moved = deep()
    assert (moved - encoder()).abs().max() > 1e-4  # the deep prompts reach the features


def test_dpam_keeps_the_cls_path_and_changes_patches(tiny):
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image, (patches,) = encode_with_dpam(vision_tower(tiny), pixels, [4], dpam_layer=3)
        plain = tiny.model.encode_image(pixels)
        plain_patches = tiny.dense_features(pixels, [-1])[0]
    torch.testing.assert_close(image, plain, atol=1e-5, rtol=0)
    assert patches.shape == plain_patches.shape == (2, 64, tiny.embed_dim)
    assert (patches - plain_patches).abs().max() > 1e-3


def test_dpam_off_gives_the_plain_layers(tiny):
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, layers = encode_with_dpam(vision_tower(tiny), pixels, [2, 4], dpam_layer=1)
        plain = tiny.dense_features(pixels, [1, 3])
    for got, want in zip(layers, plain):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_dpam_stream_adds_vv_attention_of_the_normal_stream(tiny):
    """The reference's dual path: the v-v stream adds, at each DPAM block, the v-v attention of the
    *normal* stream's input (not of its own), and never runs an FFN."""
    tower = vision_tower(tiny)
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, (first, second) = encode_with_dpam(tower, pixels, [1, 2], dpam_layer=tower.depth + 1)
        x0 = tower.pre_norm(tower.embed(pixels))
        x1 = tower.block(0, x0)
        vv1 = tower.vv_block(0, x0)
        vv2 = vv1 + tower.vv_block(1, x1) - x1
        chained = tower.vv_block(1, vv1)  # what a stream running on its own tokens would give
    torch.testing.assert_close(first, tower.project(vv1[:, 1:]), atol=1e-5, rtol=0)
    torch.testing.assert_close(second, tower.project(vv2[:, 1:]), atol=1e-5, rtol=0)
    assert (second - tower.project(chained[:, 1:])).abs().max() > 1e-3


def test_anomalyclip_defaults_scale_the_reference_to_the_depth():
    assert default_features(24) == (6, 12, 18, 24) and default_dpam_layer(24) == 20
    assert default_features(12) == (3, 6, 9, 12) and default_dpam_layer(12) == 11
    assert default_features(4) == (1, 2, 3, 4) and default_dpam_layer(4) == 5


def test_anomalyclip_sums_the_layer_maps(tiny):
    module = AnomalyClip(tiny, features=[2, 4], smoothing_sigma=0)
    single = [AnomalyClip(tiny, features=[k], smoothing_sigma=0) for k in (2, 4)]
    for other in single:
        other.prompts.load_state_dict(module.prompts.state_dict())
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    both = module.predict(pixels).maps
    torch.testing.assert_close(both, single[0].predict(pixels).maps + single[1].predict(pixels).maps,
                               atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="feature layers must be 1..4"):
        AnomalyClip(tiny, features=[5])


def test_train_lowers_loss_and_round_trips(tiny, mvtec_root, tmp_path):
    categories = load_dataset(mvtec_root, categories=["bottle"])
    run = tmp_path / "run"
    path = train_learned(tiny, "anomalyclip", categories, tmp_path / "ac.safetensors", epochs=4, lr=3e-4,
                         batch_size=7, run_dir=run, progress=False).path
    losses = [e["loss"] for e in read_metrics(run) if "loss" in e]
    assert len(losses) == 4 and losses[-1] < losses[0]
    module = load_learned(tiny, "anomalyclip", path)
    assert isinstance(module, AnomalyClip)
    pixels = torch.randn(2, 3, 64, 64)
    result = module.predict(pixels)
    assert result.maps.shape == (2, 64, 64) and ((result.scores >= 0) & (result.scores <= 1)).all()
    with pytest.raises(InputError, match="holds 'anomalyclip' weights, not 'adaptclip'"):
        load_learned(tiny, "adaptclip", path)
    with pytest.raises(InputError, match="needs trained prompts/adapters"):
        load_learned(tiny, "anomalyclip", None)


def test_adaptclip_branches_zero_and_few_shot(tiny):
    module = AdaptClip(tiny)
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert len(module.branches(pixels, None)) == 2
    zero = module.predict(pixels)
    module.fit(pixels[:1])
    assert len(module.branches(pixels, module.memory)) == 3
    few = module.predict(pixels)
    assert zero.maps.shape == few.maps.shape == (3, 64, 64)
    assert not torch.allclose(zero.scores, few.scores)
    batch = {"pixels": pixels, "mask": torch.zeros(3, 64, 64), "label": torch.tensor([0, 1, 0]),
             "reference": pixels[:1].expand(3, -1, -1, -1)}
    batch["mask"][1, 10:20, 10:20] = 1
    loss = module.loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and module.pqa.head[0].weight.grad is not None
    assert all(p.grad is None for p in tiny.model.parameters())


def test_cli_train_then_evaluate_and_detect(mvtec_root, tmp_path):
    weights = tmp_path / "adapt.safetensors"
    # trained on bottle, evaluated on carpet (training on both and evaluating carpet is now refused)
    result = runner.invoke(app, ["train", str(mvtec_root / "bottle"), "--method", "adaptclip", "--out", str(weights),
                                 "--max-steps", "2", "--batch-size", "4", *TINY], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert weights.is_file() and weights.stat().st_size < 2_000_000
    table = tmp_path / "t.csv"
    result = runner.invoke(app, ["evaluate", str(mvtec_root), "--method", "adaptclip", "--weights", str(weights),
                                 "--shots", "1", "--category", "carpet", "--out", str(table), *TINY])
    assert result.exit_code == 0, result.output
    assert table.read_text().splitlines()[1].startswith("carpet,")
    result = runner.invoke(app, ["detect", str(mvtec_root / "carpet" / "test" / "good"), "--method", "anomalyclip",
                                 "--weights", str(weights), "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 2 and "not 'anomalyclip'" in result.output and not (tmp_path / "r").exists()


def test_train_needs_masks(tiny, mvtec_root, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(mvtec_root / "bottle" / "test", plain)
    out = tmp_path / "w.safetensors"
    result = runner.invoke(app, ["train", str(plain), "--method", "anomalyclip", "--out", str(out), *TINY])
    assert result.exit_code == 2 and "without a mask" in result.output and not out.exists()


def test_evaluating_on_the_training_images_is_refused(mvtec_root, tmp_path):
    """evaluate --weights on the data the weights were trained on printed metrics of the training images as if
    held out; the weights file now lists its training images and evaluate refuses an overlap."""
    weights = tmp_path / "ac.safetensors"
    result = runner.invoke(app, ["train", str(mvtec_root), "--method", "anomalyclip", "--out", str(weights),
                                 "--max-steps", "1", "--batch-size", "4", *TINY], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = tmp_path / "t.csv"
    result = runner.invoke(app, ["evaluate", str(mvtec_root / "carpet"), "--method", "anomalyclip", "--weights",
                                 str(weights), "--out", str(table), *TINY])
    assert result.exit_code == 2 and not table.exists()
    assert "carpet: 7 of its 7 test images were used to train these anomalyclip weights" in result.output


def test_train_needs_anomalous_images(mvtec_root, tmp_path):
    """A dataset of normal images only trained and saved weights that had seen no defect."""
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(mvtec_root / "bottle" / "test" / "good", plain / "good")
    out = tmp_path / "w.safetensors"
    result = runner.invoke(app, ["train", str(plain), "--method", "anomalyclip", "--out", str(out), *TINY])
    assert result.exit_code == 2 and "no anomalous training images" in result.output and not out.exists()
