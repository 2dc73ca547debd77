from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipsuite.core.data import Pair, read_karpathy_pairs
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.retrieval import evaluate_retrieval
from clipsuite.remote import evaluate, synthetic


@pytest.fixture(scope="module")
def clip():
    return load_model("tiny-multilingual", device="cpu", precision="fp32")


def test_dedup_convention_keeps_each_caption_once_per_image(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    pairs = [Pair(a, "A forest", "1"), Pair(a, "a  forest", "2"), Pair(a, "a river", "3"), Pair(b, "a forest", "4")]
    out = evaluate.dedup_pairs(pairs)
    assert [(p.image.name, p.caption) for p in out] == [("a.png", "a satellite image. A forest"),
                                                        ("a.png", "a satellite image. a river"),
                                                        ("b.png", "a satellite image. a forest")]


def test_caption_evaluation_in_languages_and_conventions(clip, captions):
    caption_json, translations = captions
    rows = evaluate.evaluate_captions(clip, caption_json, "test", ("en", "zh"), translations)
    assert [(r["language"], r["convention"]) for r in rows] == [(lang, c) for lang in ("en", "zh")
                                                                for c in ("all", "dedup")]
    pairs = read_karpathy_pairs(caption_json, split="test")
    table = evaluate.read_translations(translations)
    for row in rows:
        translated = evaluate.translate_pairs(pairs, table, row["language"])
        used = translated if row["convention"] == "all" else evaluate.dedup_pairs(translated)
        expected = evaluate_retrieval(clip, used)
        assert row["mean_recall"] == pytest.approx(round(100 * expected["mean_recall"], 2))
        assert row["images"] == 6 and row["captions"] == 12
    zh = evaluate.translate_pairs(pairs, table, "zh")
    assert zh[0].caption == "一片茂密的绿色森林"


def test_missing_images_and_translations_are_named(tmp_path, captions):
    caption_json, translations = captions
    data = json.loads(caption_json.read_text(encoding="utf-8"))
    data["images"][0]["filename"] = "gone.png"
    broken = caption_json.parent / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=r"broken.json images\[0\]: image not found: .*gone.png"):
        evaluate.evaluate_captions(None, broken, split="test")  # type: ignore[arg-type]  # fails before the model
    pairs = [Pair(tmp_path / "x.png", "a caption nobody translated", "data.json images[3]")]
    with pytest.raises(InputError, match=r"images\[3\]: no 'ko' translation of caption 'a caption nobody"):
        evaluate.translate_pairs(pairs, evaluate.read_translations(translations), "ko")


def test_zero_shot_matches_a_hand_computation(clip, tmp_path):
    root = synthetic.write_class_folders(tmp_path / "eurosat", per_class=2, classes=("forest", "river", "desert"))
    assert evaluate.class_prompt_name("SeaLake") == "sea lake"
    assert evaluate.class_prompt_name("solar_farm") == "solar farm"
    result = evaluate.zero_shot_classify(clip, root)
    assert result["classes"] == ["desert", "forest", "river"] and result["images"] == 6
    texts = torch.stack([torch.nn.functional.normalize(clip.encode_texts(
        [t.format(name) for t in evaluate.RS_TEMPLATES]).mean(0), dim=-1) for name in result["classes"]])
    images = clip.encode_images(sorted(root.glob("*/*.png")))
    predicted = (images @ texts.T).argmax(1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert result["top1"] == pytest.approx(round(100 * (predicted == labels).float().mean().item(), 2))


def test_leakage_by_content_not_name(clip, tmp_path):
    rng = np.random.default_rng(5)
    train = []
    for i, kind in enumerate(("forest", "desert", "residential")):
        path = tmp_path / f"train_{i}.png"
        Image.fromarray(synthetic.to_rgb8(synthetic.render(kind, 64, rng))).save(path)
        train.append(path)
    renamed = tmp_path / "test_renamed.tif"
    Image.open(train[1]).save(renamed)  # same pixels, other name and format
    shifted = tmp_path / "test_brighter.png"
    pixels = np.asarray(Image.open(train[2]), dtype=np.int16) + 3
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(shifted)
    fresh = tmp_path / "test_fresh.png"
    Image.fromarray(synthetic.to_rgb8(synthetic.render("solar_farm", 64, rng))).save(fresh)
    found = evaluate.find_leakage(train, [renamed, shifted, fresh], clip, threshold=0.999)
    assert [(f["test"], f["train"], f["kind"]) for f in found] == [
        (str(renamed), str(train[1]), "exact"), (str(shifted), str(train[2]), "near-duplicate")]
    assert evaluate.find_leakage(train, [shifted]) == []  # without a model only identical pixels count
