"""Zero-shot classifier weights equal open_clip's, for template sets and description files."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

from clipsuite.core import InputError
from clipsuite.core.prompts import TEMPLATE_SETS, load_descriptions, resolve_templates
from clipsuite.core.zeroshot import build_classifier, build_descriptor_classifier, predict

CLASSES = ["red circle", "blue square", "green triangle"]


@pytest.mark.parametrize("template_set", ["photo", "simple", "openai"])
def test_classifier_equals_open_clip(tiny, template_set):
    ours = build_classifier(tiny, CLASSES, template_set)
    theirs = open_clip.build_zero_shot_classifier(
        tiny.model, tiny.tokenizer, CLASSES, [lambda c, t=t: t.format(c) for t in TEMPLATE_SETS[template_set]],
        num_classes_per_batch=2, device="cpu", use_tqdm=False)
    assert ours.shape == (tiny.embed_dim, len(CLASSES))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("template_set, callables", [("openai", OPENAI_IMAGENET_TEMPLATES),
                                                     ("simple", SIMPLE_IMAGENET_TEMPLATES)])
def test_classifier_equals_open_clip_on_its_own_templates(tiny, template_set, callables):
    """open_clip fed its own template callables, not strings we derived from them."""
    ours = build_classifier(tiny, CLASSES, template_set)
    theirs = open_clip.build_zero_shot_classifier(tiny.model, tiny.tokenizer, CLASSES, callables,
                                                  num_classes_per_batch=2, device="cpu", use_tqdm=False)
    assert len(TEMPLATE_SETS[template_set]) == len(callables)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_descriptions_replace_templates(tiny, tmp_path):
    path = tmp_path / "cupl.json"
    sentences = {c: [f"a {c} drawn on paper", f"a picture of a {c}"] for c in CLASSES}
    path.write_text(json.dumps(sentences))
    descriptions = load_descriptions(path, CLASSES)
    ours = build_classifier(tiny, CLASSES, descriptions=descriptions)
    for i, c in enumerate(CLASSES):
        expected = torch.nn.functional.normalize(tiny.encode_texts(sentences[c]).mean(0), dim=-1)
        torch.testing.assert_close(ours[:, i], expected)


def test_descriptor_classifier_averages_similarities(tiny):
    descriptors = {c: ["sharp edges", "is bright"] for c in CLASSES}
    clf = build_descriptor_classifier(tiny, CLASSES, descriptors)
    feats = tiny.encode_images(torch.randn(2, 3, 64, 64))
    scores = clf.logits(feats, scale=100.0)
    prompts = [f"{CLASSES[1]}, which has sharp edges", f"{CLASSES[1]}, which is bright"]
    expected = (100 * feats @ tiny.encode_texts(prompts).T).mean(dim=1)
    torch.testing.assert_close(scores[:, 1], expected)


def test_predict_gives_probabilities(tiny):
    pixels, classifier = torch.randn(4, 3, 64, 64), build_classifier(tiny, CLASSES)
    probs = predict(tiny, pixels, classifier)
    # the model's own temperature (tiny's init: 1 / 0.07), not a fixed 100
    assert tiny.logit_scale() == pytest.approx(1 / 0.07, rel=1e-5)
    expected = (tiny.logit_scale() * tiny.encode_images(pixels) @ classifier).softmax(dim=-1)
    torch.testing.assert_close(probs, expected)


def test_malformed_description_file_names_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: malformed JSON"):
        load_descriptions(path)
    path.write_text(json.dumps({"red circle": ["x"]}))
    with pytest.raises(InputError, match="no sentences for class 'blue square'"):
        load_descriptions(path, CLASSES)


def test_truncated_class_name_is_refused(tiny):
    with pytest.raises(InputError, match="needs .* tokens"):
        build_classifier(tiny, ["red " * 40 + "circle"])


def test_template_without_placeholder_is_refused():
    with pytest.raises(InputError):
        resolve_templates(["a photo"])
