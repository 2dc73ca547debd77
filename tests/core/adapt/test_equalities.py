"""Exactness: learned methods at their neutral settings equal zero-shot; GDA equals its formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipsuite.core.adapt import gda, tip_adapter
from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
from clipsuite.core.adapt.feature_cache import CachedFeatures
from clipsuite.core.adapt.fewshot_data import load_split
from clipsuite.core.adapt.registry import MethodOptions
from clipsuite.core.adapt.runner import prepare, train_one
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.towers import text_tower
from clipsuite.core.zeroshot import build_classifier, logits

NAMES = ["red circle", "blue square", "green triangle", "yellow star"]


@pytest.fixture(scope="module", params=["tiny", "tiny-hf"])
def model(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return load_model(request.param, device="cpu")


def _features(n: int = 10, dim: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_text_tower_matches_encode_text(model) -> None:  # type: ignore[no-untyped-def]
    tower = text_tower(model)
    tokens = model.tokenize(["a photo of a red circle.", "blue square", "a yellow star at the top"])
    with torch.no_grad():
        ours = torch.nn.functional.normalize(tower.encode_embeddings(tower.embed(tokens), tokens), dim=-1)
    torch.testing.assert_close(ours, model.encode_texts(["a photo of a red circle.", "blue square",
                                                          "a yellow star at the top"]), atol=1e-6, rtol=0)


def test_maple_text_side_starts_at_the_hand_crafted_prompt() -> None:
    """Causal tower: the deep prompts initialised from the tower's own hidden states change nothing,
    so MaPLe's text features equal "a photo of a {class}." (agreement ~1e-7)."""
    from clipsuite.core.adapt.maple import MaPLeClassifier, MaPLeConfig

    model = load_model("tiny", device="cpu")
    maple = MaPLeClassifier(model, NAMES, MaPLeConfig(n_ctx=2, depth=4, deep_init="hidden"))
    with torch.no_grad():
        ours = maple.text_features()
    torch.testing.assert_close(ours, model.encode_texts([f"a photo of a {n}." for n in NAMES]), atol=1e-6, rtol=0)


def test_maple_image_side_equals_open_clip_forward_with_the_prompts_inserted() -> None:
    """The oracle is open_clip's own image forward with torch hooks: shallow prompts appended at
    ``ln_pre``'s input, deep prompts written over the last tokens at each block's input."""
    from clipsuite.core.adapt.maple import MaPLeClassifier, MaPLeConfig

    model = load_model("tiny", device="cpu")
    maple = MaPLeClassifier(model, NAMES, MaPLeConfig(n_ctx=2, depth=3, deep_init="random"))
    visual, n = model.model.visual, maple.prompt.n_ctx
    shallow = maple.proj(maple.prompt.ctx).detach()
    deep = [proj(p).detach() for proj, p in zip(maple.deep_proj, maple.text_deep)]
    handles = [visual.ln_pre.register_forward_pre_hook(
        lambda m, args: (torch.cat([args[0], shallow.expand(args[0].shape[0], -1, -1)], dim=1),))]
    for block, prompt in zip(visual.transformer.resblocks[1:], deep):
        handles.append(block.register_forward_pre_hook(
            lambda m, args, p=prompt: (torch.cat([args[0][:, :-n], p.expand(args[0].shape[0], -1, -1)], dim=1),)))
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    try:
        with torch.no_grad():
            expected = torch.nn.functional.normalize(visual(pixels), dim=-1)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        ours = maple.image_features(pixels)
        plain = model.encode_images(pixels)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    assert (ours - plain).abs().max() > 1e-3  # the prompts did change the image features


def test_coop_with_zero_steps_equals_hand_crafted_zero_shot(model) -> None:  # type: ignore[no-untyped-def]
    features = _features()
    coop = CoOpClassifier(model, NAMES, PromptConfig(ctx_init="a photo of a"))
    assert coop.prompt.ctx.shape[0] == 4  # "a photo of a" is four tokens in both tokenizers
    with torch.no_grad():
        learned = coop(features)
    expected = logits(features, build_classifier(model, NAMES, ["a photo of a {}."]), scale=model.logit_scale())
    torch.testing.assert_close(learned, expected, atol=2e-5, rtol=1e-5)


def test_coop_zero_training_steps_through_the_runner(model, shapes_split) -> None:  # type: ignore[no-untyped-def]
    data = prepare(model, load_split(shapes_split), 2, seed=0, views=0)
    coop, coop_row = train_one("coop", data, MethodOptions(epochs=0))
    zero, zero_row = train_one("zeroshot", data)
    test = data.features("test").features[0]
    torch.testing.assert_close(coop.logits(test), zero.logits(test), atol=2e-5, rtol=1e-5)
    assert coop_row.accuracy == zero_row.accuracy


def test_prompt_positions_and_csc_place_context_around_the_class(model) -> None:  # type: ignore[no-untyped-def]
    for position in ("end", "middle", "front"):
        coop = CoOpClassifier(model, NAMES, PromptConfig(n_ctx=4, ctx_init=None, csc=True,
                                                          class_token_position=position))
        prompts = coop.prompt()
        assert prompts.shape[:2] == (4, coop.prompt.tokens.shape[1])
        rows = torch.arange(4)[:, None]
        torch.testing.assert_close(prompts[rows, coop.prompt.ctx_index], coop.prompt.ctx)


def test_truncated_class_name_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    long_name = " ".join(["red"] * 40)
    with pytest.raises(InputError, match=f"class '{long_name[:20]}.*tokenizer would cut it"):
        CoOpClassifier(model, ["blue square", long_name])


def test_tip_adapter_with_alpha_zero_equals_zero_shot(model) -> None:  # type: ignore[no-untyped-def]
    zero_shot = build_classifier(model, NAMES, ["a photo of a {}."]).T
    train = CachedFeatures(torch.stack([_features(8, seed=1), _features(8, seed=2)]), torch.arange(8) % 4)
    head = tip_adapter.build(zero_shot, train, 4, scale=model.logit_scale(), alpha=0.0, beta=5.0)
    features = _features(seed=3)
    torch.testing.assert_close(head(features), logits(features, zero_shot.T, scale=model.logit_scale()))
    # keys are the view-averaged, re-normalised training features
    torch.testing.assert_close(head.keys, torch.nn.functional.normalize(train.features.mean(0), dim=-1))


def _gda_numpy(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's formulas written out directly."""
    n, d = x.shape
    mu = np.stack([x[y == c].mean(axis=0) for c in range(n_classes)])
    centred = x - mu[y]
    cov = centred.T @ centred / (n - 1)
    precision = d * np.linalg.pinv((n - 1) * cov + np.trace(cov) * np.eye(d))
    weight = np.stack([precision @ mu[c] for c in range(n_classes)])
    prior = np.bincount(y, minlength=n_classes) / n
    bias = np.array([np.log(prior[c]) - 0.5 * mu[c] @ precision @ mu[c] for c in range(n_classes)])
    return weight, bias


def test_gda_equals_numpy_formulas() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)) + np.repeat(rng.normal(size=(4, 16)), 10, axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(4), 10)
    y[:3] = 1  # unequal priors, so log pi_c matters
    weight, bias = gda.fit_gaussian(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 4)
    expected_w, expected_b = _gda_numpy(x.astype(np.float32).astype(np.float64), y, 4)
    np.testing.assert_allclose(weight.numpy(), expected_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bias.numpy(), expected_b, rtol=1e-4, atol=1e-4)
    head = gda.GDAHead(torch.eye(4, 16), weight, bias, alpha=0.5, scale=10.0)
    features = torch.tensor(x[:5], dtype=torch.float32)
    expected_logits = 10.0 * x[:5] @ np.eye(4, 16).T + 0.5 * (x[:5] @ expected_w.T + expected_b)
    np.testing.assert_allclose(head(features).numpy(), expected_logits, rtol=1e-4, atol=1e-4)


def test_cocoop_and_kgcoop_start_at_the_hand_crafted_prompt(model) -> None:  # type: ignore[no-untyped-def]
    from clipsuite.core.adapt.cocoop import CoCoOpClassifier
    from clipsuite.core.adapt.kgcoop import kgcoop_task

    features = _features()
    expected = logits(features, build_classifier(model, NAMES, ["a photo of a {}."]), scale=model.logit_scale())
    with torch.no_grad():
        torch.testing.assert_close(CoCoOpClassifier(model, NAMES)(features), expected, atol=2e-5, rtol=1e-5)
        coop = CoOpClassifier(model, NAMES)
        terms = kgcoop_task(model, coop, NAMES).loss({"features": features, "label": torch.arange(10) % 4})
    assert float(terms["kg"]) == pytest.approx(0.0, abs=1e-5)  # learned == hand-crafted at the start
    assert float(terms["loss"]) == pytest.approx(float(terms["ce"]), abs=1e-4)


def test_description_classifiers_match_the_zeroshot_module(model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from clipsuite.core.adapt.descriptions import cupl_head, descriptor_head
    from clipsuite.core.zeroshot import build_descriptor_classifier

    sentences = {name: [f"a picture of a {name}.", f"the {name} is a shape."] for name in NAMES}
    path = tmp_path / "cupl.json"
    path.write_text(json.dumps(sentences))
    features = _features()
    cupl = cupl_head(model, NAMES, path, scale=50.0)
    torch.testing.assert_close(cupl(features), logits(features, build_classifier(model, NAMES, descriptions=sentences),
                                                      scale=50.0))
    reference = build_descriptor_classifier(model, NAMES, sentences)
    torch.testing.assert_close(descriptor_head(model, NAMES, path, scale=50.0)(features),
                               reference.logits(features, scale=50.0))
    path.write_text(json.dumps({NAMES[0]: ["only one class"]}))
    with pytest.raises(InputError, match="no sentences for class 'blue square'"):
        cupl_head(model, NAMES, path, scale=50.0)


@pytest.mark.parametrize("method", ["coop", "cocoop", "kgcoop", "maple"])
def test_prompt_learners_train_through_both_text_towers(model, shapes_split, method: str) -> None:  # type: ignore[no-untyped-def]
    data = prepare(model, load_split(shapes_split), 1, seed=0, views=0)
    before, _ = train_one(method, data, MethodOptions(epochs=0))
    after, _ = train_one(method, data, MethodOptions(max_steps=2, batch_size=6, lr=0.05, optimizer="adamw"))
    pixels = data.pixels("test")[0][:4]
    assert not torch.allclose(before.logits(pixels), after.logits(pixels))  # the learned prompt moved
    assert all(not p.requires_grad for p in model.model.parameters())  # the backbone stayed frozen
