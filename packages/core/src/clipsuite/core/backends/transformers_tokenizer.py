"""transformers' CLIP tokenizer behind open_clip's calling convention.

The rest of clipsuite calls a tokenizer as ``tokenizer(texts, context_length=None) -> LongTensor
[N, context_length]`` (padded, truncated with the end token kept), and reads ``context_length``.
This wraps a transformers tokenizer (``CLIPTokenizer(Fast)`` from a folder's tokenizer files) that
way, without open_clip's extra text cleaning, so the ids equal what transformers' own pipeline makes.

CLIP's tokenizers usually pad with the end token itself (``pad == eos``), so "not padding" is not
"not the pad id": ``attention_mask`` marks every position up to and including the one transformers
pools at (``eos_positions``: the first end token).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from clipsuite.core.errors import ModelError

TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # a fast tokenizer file, or vocab.json + merges.txt


class ClipTokenizer:
    """``texts -> [N, context_length]`` token ids from a transformers CLIP tokenizer."""

    def __init__(self, tokenizer: Any, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = int(context_length)
        if tokenizer.eos_token_id is None:
            raise ModelError("the tokenizer has no end-of-text token; CLIP pools at it")

    @classmethod
    def from_folder(cls, folder: Path, context_length: int) -> ClipTokenizer:
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise ModelError(f"{folder}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt); "
                             "save them beside the model with tokenizer.save_pretrained(folder)")
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as error:  # what transformers raises for bad files
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ModelError(f"{folder}: the tokenizer files cannot be read ({first[:200]})") from None
        return cls(tokenizer, context_length)

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self.eos_id

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = int(context_length or self.context_length)
        encoded = self.tokenizer(texts, padding="max_length", max_length=length, truncation=True,
                                 return_tensors="pt")
        return encoded["input_ids"].long()

    def save(self, folder: Path) -> None:
        """Write the tokenizer files into ``folder``, each one moved into place whole."""
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".tokenizer.") as staging:
            self.tokenizer.save_pretrained(staging)
            for item in Path(staging).iterdir():
                if item.is_file():
                    os.replace(item, folder / item.name)


def attention_mask(tokens: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """``[N, L]`` long: 1 up to and including the position transformers pools at (the end token, see
    ``eos_positions``), 0 after it: what the tokenizer returns for right-padded text, whatever the
    pad id (CLIP tokenizers often pad with the end token itself)."""
    last = eos_positions(tokens, eos_token_id)
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    return (positions[None, :] <= last[:, None]).long()


def eos_positions(tokens: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """Where transformers' ``CLIPTextModel`` pools: the first ``eos_token_id``; for old configs with
    ``eos_token_id == 2`` (before transformers PR #24773), the argmax of the ids, exactly as it does."""
    ids = tokens.to(torch.int)
    if eos_token_id == 2 or eos_token_id is None:
        return ids.argmax(dim=-1)
    return (ids == eos_token_id).int().argmax(dim=-1)
