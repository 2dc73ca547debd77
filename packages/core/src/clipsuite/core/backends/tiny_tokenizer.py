"""The tiny offline CLIP tokenizer of ``tiny-transformers``, built here from a corpus we wrote.

CLIP's tokenizer is a byte-level BPE whose vocabulary is laid out as the 256 byte symbols, the same
256 with the end-of-word suffix ``</w>``, one token per merge in merge order, then
``<|startoftext|>`` and ``<|endoftext|>`` last (so the end token has the highest id, which old
configs with ``eos_token_id == 2`` rely on: they pool at the argmax of the ids). We train the merges
with the ``tokenizers`` library on ``tiny_corpus.txt`` (the same normaliser and pre-tokeniser as
transformers' ``CLIPTokenizer``) and lay out the vocabulary the same way, so every byte string has
a tokenisation and the files load with ``CLIPTokenizer(Fast).from_pretrained``. No download, ever.

Regenerate the shipped files with ``python -m clipsuite.core.backends.tiny_tokenizer``.
"""

from __future__ import annotations

import json
from pathlib import Path

from open_clip.tokenizer import bytes_to_unicode
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from clipsuite.core.checkpoints import atomic_write_json, atomic_write_text

CORPUS = Path(__file__).with_name("tiny_corpus.txt")
TINY_FOLDER = Path(__file__).parent.parent / "model_configs" / "tiny-transformers"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
SUFFIX = "</w>"
VOCAB_SIZE = 1000  # as the tiny CLIPTextConfig of diffusers' tests
CONTEXT_LENGTH = 32
# CLIPTokenizer's pre-tokeniser: special tokens, contractions, letter runs, single digits, punctuation runs
SPLIT_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _trainable_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(BPE(end_of_word_suffix=SUFFIX, continuing_subword_prefix=""))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    return tokenizer


def train_merges(lines: list[str], n_merges: int) -> list[tuple[str, str]]:
    """The first ``n_merges`` BPE merges learned from ``lines`` (in priority order)."""
    tokenizer = _trainable_tokenizer()
    # the vocabulary budget covers the byte alphabet twice (with and without the suffix) plus the
    # merges; extra merges are cut below, so the result does not depend on which suffixed bytes occur
    trainer = BpeTrainer(vocab_size=512 + n_merges, end_of_word_suffix=SUFFIX, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator(lines, trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    if len(pairs) < n_merges:
        raise ValueError(f"the corpus yields only {len(pairs)} merges, {n_merges} asked for")
    return [(a, b) for a, b in pairs[:n_merges]]


def clip_vocabulary(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's layout: bytes, bytes + ``</w>``, one token per merge, then the two special tokens."""
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + SUFFIX for c in alphabet] + [a + b for a, b in merges] + [BOS, EOS]
    if len(set(tokens)) != len(tokens):
        raise ValueError("duplicate tokens in the vocabulary")
    return {token: index for index, token in enumerate(tokens)}


def build_tokenizer_files(folder: Path, vocab_size: int = VOCAB_SIZE, context_length: int = CONTEXT_LENGTH,
                          corpus: Path = CORPUS) -> dict[str, int]:
    """Write ``vocab.json``, ``merges.txt``, ``tokenizer.json``, ``tokenizer_config.json`` and
    ``special_tokens_map.json`` into ``folder``; returns the vocabulary."""
    # transformers 5 exports it only lazily (an alias of CLIPTokenizer), so its stubs lack the name
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]  # (4.x exports it)

    lines = [line.strip() for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    merges = train_merges(lines, vocab_size - 512 - 2)
    vocab = clip_vocabulary(merges)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "vocab.json", vocab)
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    # transformers' own class writes tokenizer.json (normaliser, pre-tokeniser, BOS/EOS post-processor)
    tokenizer = CLIPTokenizerFast(vocab=vocab, merges=merges, model_max_length=context_length)
    tokenizer.save_pretrained(str(folder))
    return vocab


if __name__ == "__main__":
    size = len(build_tokenizer_files(TINY_FOLDER))
    print(f"wrote a {size}-token CLIP tokenizer to {TINY_FOLDER}")
