"""The built-in offline ``tiny-multilingual`` model: XLM-R-style HF text tower + a Unigram tokenizer
trained in the repo (clipsuite.core.multilingual_tokenizer)."""

from __future__ import annotations

import json

import torch

from clipsuite.core import multilingual_tokenizer as mt
from clipsuite.core.models import load_model

QUERIES = ["a solar farm with rows of panels", "一座有成排面板的太阳能电站", "패널이 줄지어 있는 태양광 발전소",
           "солнечная электростанция с рядами панелей", "une ferme solaire avec des rangées de panneaux"]


def test_loads_offline_with_an_xlm_roberta_tower_and_covers_four_scripts():
    clip = load_model("tiny-multilingual", device="cpu", precision="fp32")
    assert type(clip.model.text.transformer).__name__ == "XLMRobertaModel"
    ids = clip.tokenize(QUERIES)
    assert ids.shape == (5, 32)
    unk, pad = clip.tokenizer.tokenizer.unk_token_id, clip.tokenizer.tokenizer.pad_token_id
    assert (unk, pad) == (3, 1)
    assert not (ids == unk).any()  # every character of every script is in the vocabulary
    assert (ids[:, 0] == 0).all()  # <s> first, as XLM-R
    pieces = clip.tokenizer.tokenizer.convert_ids_to_tokens(ids[1][ids[1] != pad].tolist())
    assert "太阳能" in pieces  # a multi-character Chinese piece was learned, not only single characters
    features = clip.encode_texts(QUERIES)
    assert features.shape == (5, 64) and torch.allclose(features.norm(dim=-1), torch.ones(5), atol=1e-5)


def test_shipped_tokenizer_is_what_the_repo_code_trains(tmp_path):
    folder = mt.write_text_tower(tmp_path / "tower")
    shipped = json.loads((mt.TOWER_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    rebuilt = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    shipped_vocab, rebuilt_vocab = dict(shipped["model"]["vocab"]), dict(rebuilt["model"]["vocab"])
    assert shipped_vocab.keys() == rebuilt_vocab.keys()  # the same pieces (ties may come in another order)
    for piece, score in shipped_vocab.items():
        assert abs(score - rebuilt_vocab[piece]) < 0.02, piece  # EM runs in threads: small jitter
    from tokenizers import Tokenizer

    old = Tokenizer.from_file(str(mt.TOWER_DIR / "tokenizer.json"))
    new = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = list(mt.corpus()) + QUERIES  # the same segmentation (ids may differ where ties swapped places)
    assert [e.tokens for e in old.encode_batch(texts)] == [e.tokens for e in new.encode_batch(texts)]
    assert json.loads((mt.TOWER_DIR / "config.json").read_text()) == json.loads((folder / "config.json").read_text())


def test_save_and_load_round_trip(tmp_path):
    clip = load_model("tiny-multilingual", device="cpu", precision="fp32")
    with torch.no_grad():  # move off the seeded init so the round trip is tested on new weights
        for parameter in clip.model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    folder = clip.save(tmp_path / "saved")
    again = load_model(str(folder), device="cpu", precision="fp32")
    torch.testing.assert_close(again.encode_texts(QUERIES), clip.encode_texts(QUERIES))
    pixels = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(again.encode_images(pixels), clip.encode_images(pixels))
    assert (folder / "text_tower" / "tokenizer.json").is_file()
    torch.testing.assert_close(again.tokenize(QUERIES), clip.tokenize(QUERIES))
