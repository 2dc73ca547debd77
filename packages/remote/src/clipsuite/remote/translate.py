"""Filling the translations JSONL with a machine-translation model, as RS-M-CLIP translated its English
captions into the other languages before training.

A translator is anything with ``translate(texts, language) -> texts`` (``Translator``). The one shipped
here, ``Seq2SeqTranslator``, runs a Hugging Face sequence-to-sequence model: one model per target
language (MarianMT ``Helsinki-NLP/opus-mt-en-zh`` style) or one multilingual model with target-language
codes (NLLB ``facebook/nllb-200-distilled-600M`` style, the code forced as the first generated token).
Models are read only from a local folder or the Hugging Face cache: nothing is downloaded here, and a
model that is not there is one line saying so. ``fill_translations`` translates the captions of a
Karpathy JSON that still lack a language and writes the JSONL that ``train`` and ``evaluate`` read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from clipsuite.core.errors import InputError, first_line
from clipsuite.core.staging import atomic_write_text

# NLLB / FLORES-200 codes of RS-M-CLIP's 10 languages (and a few more)
NLLB_CODES = {"en": "eng_Latn", "pt": "por_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn",
              "nl": "nld_Latn", "it": "ita_Latn", "zh": "zho_Hans", "ko": "kor_Hang", "ru": "rus_Cyrl",
              "ja": "jpn_Jpan"}


class Translator(Protocol):
    """English ``texts`` -> the same number of texts in ``language``."""

    def translate(self, texts: Sequence[str], language: str) -> list[str]: ...


def _load(name: str, device: str) -> tuple[Any, Any]:
    """Tokenizer and model from a folder or the hub cache only (``local_files_only``)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as error:
        first = first_line(error)
        raise InputError(f"{name}: translation model not found locally (a folder, or the Hugging Face cache; "
                         f"fetch it first, e.g. `hf download {name}`): {first}") from None
    except ImportError as error:  # Marian's tokenizer needs sentencepiece
        raise InputError(f"{name}: the tokenizer needs a missing package ({first_line(error)})"
                         ) from None
    return tokenizer, model.to(device).eval()


class Seq2SeqTranslator:
    """``models``: target language -> model (folder or hub name), one model per language (MarianMT);
    or one model name for every language with ``codes`` (language -> the model's language token, NLLB's
    by default) forced as the first generated token and ``source_code`` set on the tokenizer."""

    def __init__(self, models: Mapping[str, str] | str, codes: Mapping[str, str] | None = None,
                 source_code: str | None = "eng_Latn", batch_size: int = 16, max_new_tokens: int = 128,
                 num_beams: int = 1, device: str = "cpu") -> None:
        self.models, self.codes, self.source_code = models, dict(codes or NLLB_CODES), source_code
        self.batch_size, self.max_new_tokens, self.num_beams = batch_size, max_new_tokens, num_beams
        self.device = device
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def _model_for(self, language: str) -> tuple[Any, Any, int | None]:
        if isinstance(self.models, str):
            name, code = self.models, self.codes.get(language)
            if code is None:
                raise InputError(f"{name}: no language code for '{language}' (give codes={{'{language}': ...}})")
        else:
            if language not in self.models:
                raise InputError(f"no translation model for '{language}' (have: {', '.join(self.models)})")
            name, code = self.models[language], None
        if name not in self._loaded:
            self._loaded[name] = _load(name, self.device)
        tokenizer, model = self._loaded[name]
        forced = None
        if code is not None:
            forced = tokenizer.convert_tokens_to_ids(code)
            if forced is None or forced == tokenizer.unk_token_id:
                raise InputError(f"{name}: its tokenizer has no language token '{code}' for '{language}'")
            if self.source_code is not None and hasattr(tokenizer, "src_lang"):
                tokenizer.src_lang = self.source_code
        return tokenizer, model, forced

    def translate(self, texts: Sequence[str], language: str) -> list[str]:
        import torch

        tokenizer, model, forced = self._model_for(language)
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(list(texts[start:start + self.batch_size]), return_tensors="pt", padding=True,
                              truncation=True).to(self.device)
            batch.pop("token_type_ids", None)  # encoders of seq2seq models take none
            extra = {"forced_bos_token_id": forced} if forced is not None else {}
            with torch.no_grad():
                generated = model.generate(**batch, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                           **extra)
            out.extend(t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
        return out


def caption_texts(captions: str | os.PathLike[str]) -> list[str]:
    """Distinct English captions of a Karpathy JSON (every split), in file order."""
    from clipsuite.core.data import read_karpathy_pairs

    return list(dict.fromkeys(p.caption.strip() for p in read_karpathy_pairs(captions)))


def fill_translations(captions: Sequence[str], languages: Sequence[str], translator: Translator,
                      output: str | os.PathLike[str], existing: Mapping[str, Mapping[str, str]] | None = None,
                      ) -> dict[str, int]:
    """Write ``output`` (translations JSONL) covering every caption in every non-English language:
    what ``existing`` already has is kept, the rest is translated. Returns texts translated per language."""
    table = {c: dict((existing or {}).get(c, {})) for c in captions}
    counts: dict[str, int] = {}
    for language in (x for x in languages if x != "en"):
        missing = [c for c in captions if language not in table[c]]
        if missing:
            texts = translator.translate(missing, language)
            if len(texts) != len(missing):
                raise InputError(f"translator gave {len(texts)} texts for {len(missing)} captions ({language})")
            for caption, text in zip(missing, texts):
                table[caption][language] = text
        counts[language] = len(missing)
    lines = [json.dumps({"caption": c, "translations": table[c]}, ensure_ascii=False) for c in captions]
    atomic_write_text(Path(output), "\n".join(lines) + "\n")
    return counts
