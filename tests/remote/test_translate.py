"""The translation step: a tiny MarianMT built from a config (the repo's multilingual tokenizer), trained
here for a few seconds to translate the synthetic captions into Chinese, then used offline through
``Seq2SeqTranslator`` / ``fill_translations`` / ``clipsuite-remote translate``; a model that is not on
disk is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import clipsuite.core
from clipsuite.core.errors import InputError
from clipsuite.remote import synthetic
from clipsuite.remote.evaluate import read_translations
from clipsuite.remote.translate import Seq2SeqTranslator, caption_texts, fill_translations
from clipsuite.remote_app.main import app

TOKENIZER = Path(clipsuite.core.__file__).parent / "model_configs" / "tiny_xlmr"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    captions, translations = synthetic.write_captions(tmp_path_factory.mktemp("mt_captions"), per_class=1, size=16)
    return captions, read_translations(translations)


@pytest.fixture(scope="module")
def zh_model(tmp_path_factory, corpus) -> Path:
    """A 1+1-layer MarianMT (d_model 64) trained 150 steps on the captions' Chinese translations (~15 s)."""
    from transformers import AutoTokenizer, MarianConfig, MarianMTModel

    captions, table = corpus
    src = caption_texts(captions)
    tgt = [table[c]["zh"] for c in src]
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = MarianConfig(vocab_size=len(tokenizer), d_model=64, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
                          decoder_ffn_dim=128, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                          forced_eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    inputs = tokenizer(src, return_tensors="pt", padding=True)
    inputs.pop("token_type_ids", None)
    labels = tokenizer(text_target=tgt, return_tensors="pt", padding=True)["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("opus-mt-tiny-en-zh")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_translator_translates_with_a_local_model(corpus, zh_model):
    captions, table = corpus
    src = caption_texts(captions)
    assert len(src) == 12
    translator = Seq2SeqTranslator({"zh": str(zh_model)}, batch_size=5)  # batches of 5: padding must not matter
    assert translator.translate(src, "zh") == [table[c]["zh"] for c in src]
    with pytest.raises(InputError, match="no translation model for 'ru'"):
        translator.translate(src[:1], "ru")
    # one model for every language (NLLB style) needs the language token in its tokenizer
    with pytest.raises(InputError, match="no language token 'zho_Hans'"):
        Seq2SeqTranslator(str(zh_model)).translate(src[:1], "zh")


def test_fill_translations_keeps_what_exists_and_translates_the_rest(corpus, zh_model, tmp_path):
    captions, table = corpus
    src = caption_texts(captions)
    existing = {c: {"ru": table[c]["ru"]} for c in src}
    existing[src[0]]["zh"] = "已有的译文"  # kept, not re-translated
    out = tmp_path / "translations.jsonl"
    counts = fill_translations(src, ["en", "ru", "zh"], Seq2SeqTranslator({"zh": str(zh_model)}), out, existing)
    assert counts == {"ru": 0, "zh": 11}
    written = read_translations(out)
    assert written[src[0]]["zh"] == "已有的译文" and written[src[0]]["ru"] == table[src[0]]["ru"]
    assert all(written[c]["zh"] == table[c]["zh"] for c in src[1:])
    assert [json.loads(line)["caption"] for line in out.read_text(encoding="utf-8").splitlines()] == src


def test_translate_command_and_a_model_that_is_not_on_disk(corpus, zh_model, tmp_path):
    captions, table = corpus
    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(app, ["translate", str(captions), "-o", str(out), "--languages", "zh",
                                      "--mt", f"zh={zh_model}"])
    assert result.exit_code == 0, result.output
    assert "12 captions; translated zh 12" in result.output
    assert all(read_translations(out)[c]["zh"] == table[c]["zh"] for c in table)
    missing = CliRunner().invoke(app, ["translate", str(captions), "-o", str(tmp_path / "m.jsonl"), "--languages",
                                       "zh", "--mt", "zh=nobody/opus-mt-en-zh-not-cached"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert "nobody/opus-mt-en-zh-not-cached: translation model not found locally" in " ".join(missing.output.split())
    assert not (tmp_path / "m.jsonl").exists()
    no_model = CliRunner().invoke(app, ["translate", str(captions), "-o", str(out), "--languages", "zh,ru",
                                        "--mt", f"zh={zh_model}"])
    assert no_model.exit_code == 2 and "--mt: no model for ru" in no_model.output
