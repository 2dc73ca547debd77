"""Medical VQA datasets (VQA-RAD, SLAKE), the answer vocabulary and the question tokenizer.

VQA-RAD: one JSON list (``VQA_RAD Dataset Public.json``) of ``qid, image_name, image_organ, question,
answer, answer_type (OPEN/CLOSED), question_type, phrase_type``; test questions are the ones whose
``phrase_type`` starts with ``test`` (the 451-question test split). Images in ``VQA_RAD Image Folder``.
SLAKE: ``train.json`` / ``validate.json`` / ``test.json`` with ``img_name`` relative to ``imgs/``;
only English questions (``q_lang == "en"``) are kept, as the papers report.

Classification data for BiomedCoOp uses the core's Dassl split JSON reader (re-exported here).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from clipsuite.core.checkpoints import atomic_write_json, read_json
from clipsuite.core.errors import InputError

VQA_RAD_JSON = "VQA_RAD Dataset Public.json"
VQA_RAD_IMAGES = ("VQA_RAD Image Folder", "images")
SLAKE_SPLITS = {"train": "train.json", "val": "validate.json", "validate": "validate.json", "test": "test.json"}
AnswerType = Literal["OPEN", "CLOSED"]


@dataclass
class VQASample:
    image: Path
    question: str
    answer: str
    answer_type: AnswerType
    qid: str
    meta: dict[str, Any] = field(default_factory=dict)


def normalize_answer(answer: object) -> str:
    """Lower-case, trim, collapse spaces and drop a final full stop (VQA-RAD answers vary in these)."""
    text = re.sub(r"\s+", " ", str(answer).strip().lower())
    return text[:-1].strip() if text.endswith(".") else text


def _answer_type(value: object, where: str) -> AnswerType:
    text = str(value).strip().upper()
    if text not in ("OPEN", "CLOSED"):
        raise InputError(f"{where}: answer_type must be OPEN or CLOSED, got {value!r}")
    return cast(AnswerType, text)  # checked just above


def _records(path: Path) -> list[dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(f"{path}: expected a JSON list of question objects")
    return data


def _sample(record: dict[str, Any], index: int, path: Path, image_dir: Path, image_key: str,
            qid_key: str) -> VQASample:
    where = f"{path} entry {index}"
    missing = [k for k in (image_key, "question", "answer", "answer_type") if k not in record]
    if missing:
        raise InputError(f"{where}: missing field '{missing[0]}'")
    image = image_dir / str(record[image_key])
    if not image.is_file():
        raise InputError(f"{where}: image '{record[image_key]}' not found (looked in {image_dir})")
    question = str(record["question"]).strip()
    if not question:
        raise InputError(f"{where}: empty question")
    meta = {k: v for k, v in record.items() if k not in (image_key, "question", "answer", "answer_type")}
    return VQASample(image, question, normalize_answer(record["answer"]),
                     _answer_type(record["answer_type"], where), str(record.get(qid_key, index)), meta)


def load_vqa_rad(path: str | os.PathLike[str], split: Literal["train", "test", "all"] = "train",
                 image_dir: str | os.PathLike[str] | None = None) -> list[VQASample]:
    """``path``: the dataset folder or its JSON file. Train = every question whose phrase_type does not
    start with ``test``."""
    if split not in ("train", "test", "all"):  # any other word would silently read the train questions
        raise InputError(f"VQA-RAD split '{split}': use train, test or all (VQA-RAD has no validation split)")
    path = Path(path)
    json_path = path / VQA_RAD_JSON if path.is_dir() else path
    if not json_path.is_file():
        raise InputError(f"{json_path}: VQA-RAD question file not found")
    if image_dir is None:
        folder = json_path.parent
        image_dir = next((folder / name for name in VQA_RAD_IMAGES if (folder / name).is_dir()), folder)
    image_dir = Path(image_dir)
    samples = []
    for index, record in enumerate(_records(json_path)):
        is_test = str(record.get("phrase_type", "")).startswith("test")
        if split == "all" or (split == "test") == is_test:
            samples.append(_sample(record, index, json_path, image_dir, "image_name", "qid"))
    if not samples:
        raise InputError(f"{json_path}: no questions in the '{split}' split")
    return samples


def load_slake(path: str | os.PathLike[str], split: Literal["train", "val", "validate", "test"] = "train",
               language: str = "en") -> list[VQASample]:
    """``path``: the SLAKE folder (holding ``imgs/`` and the split JSON files) or one split JSON."""
    path = Path(path)
    if split not in SLAKE_SPLITS:
        raise InputError(f"SLAKE split '{split}': use train, validate or test")
    json_path = path / SLAKE_SPLITS[split] if path.is_dir() else path
    if json_path.name in SLAKE_SPLITS.values() and json_path.name != SLAKE_SPLITS[split]:
        # one split's file holds only that split: any other word would read it in silence
        raise InputError(f"{json_path}: this file is not SLAKE's '{split}' split; give the SLAKE folder "
                         "(or that split's file) to choose a split")
    if not json_path.is_file():
        raise InputError(f"{json_path}: SLAKE question file not found")
    image_dir = json_path.parent / "imgs"
    samples = [_sample(r, i, json_path, image_dir, "img_name", "qid")
               for i, r in enumerate(_records(json_path)) if str(r.get("q_lang", "en")) == language]
    if not samples:
        raise InputError(f"{json_path}: no questions with q_lang '{language}'")
    return samples


def load_vqa(path: str | os.PathLike[str], split: str = "train") -> list[VQASample]:
    """Detect the layout: a SLAKE folder (``train.json`` + ``imgs/``) or VQA-RAD (folder or JSON)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: dataset not found")
    if (path.is_dir() and (path / "imgs").is_dir()) or (path.is_file() and (path.parent / "imgs").is_dir()):
        split = "validate" if split == "val" else split
        if path.is_file() and split in SLAKE_SPLITS and path.name != SLAKE_SPLITS[split]:
            # a split word cannot choose within one file: any other would read this file's questions in silence
            raise InputError(f"{path}: not SLAKE's '{split}' split file ({SLAKE_SPLITS[split]}); give the SLAKE "
                             "folder to choose a split")
        return load_slake(path, split)  # type: ignore[arg-type]  # it checks split
    return load_vqa_rad(path, split)  # type: ignore[arg-type]  # the caller's str: load_vqa_rad checks it


# ---- vocabularies -------------------------------------------------------------------------------
@dataclass
class AnswerVocab:
    """Answers seen in training; each answer is marked closed and/or open by the questions it answers.

    QCR's two heads classify over the closed and the open answers respectively."""

    answers: list[str]
    closed: list[bool]
    opened: list[bool]

    @classmethod
    def build(cls, samples: Sequence[VQASample], min_count: int = 1) -> AnswerVocab:
        counts = Counter(s.answer for s in samples)
        answers = sorted(a for a, c in counts.items() if c >= min_count)
        closed = {s.answer for s in samples if s.answer_type == "CLOSED"}
        opened = {s.answer for s in samples if s.answer_type == "OPEN"}
        return cls(answers, [a in closed for a in answers], [a in opened for a in answers])

    def __len__(self) -> int:
        return len(self.answers)

    def index(self, answer: str) -> int:
        """Position of ``answer``, or -1 when unseen (counts as wrong, never as an error)."""
        return self._lookup.get(normalize_answer(answer), -1)

    @property
    def _lookup(self) -> dict[str, int]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {a: i for i, a in enumerate(self.answers)}
            self.__dict__["_cache"] = cache
        return cache

    def to_dict(self) -> dict[str, Any]:
        return {"answers": self.answers, "closed": self.closed, "open": self.opened}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerVocab:
        return cls(list(data["answers"]), list(data["closed"]), list(data["open"]))


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(question: str) -> list[str]:
    """MEVF-style tokenisation: lower case, punctuation dropped."""
    return _WORD.findall(question.lower())


@dataclass
class QuestionTokenizer:
    """Word vocabulary built from training questions (MEVF/QCR read 12 tokens: ``max_tokens``)."""

    vocab: list[str]
    max_tokens: int = 12
    PAD = 0
    UNK = 1

    @classmethod
    def build(cls, questions: Sequence[str], max_tokens: int = 12, min_count: int = 1) -> QuestionTokenizer:
        counts = Counter(w for q in questions for w in words(q))
        return cls(["<pad>", "<unk>", *sorted(w for w, c in counts.items() if c >= min_count)], max_tokens)

    def __len__(self) -> int:
        return len(self.vocab)

    def length(self, question: str) -> int:
        return len(words(question))

    def encode(self, question: str, strict: bool = False) -> list[int]:
        """Token ids padded to ``max_tokens``. Training truncates long questions as the papers do;
        ``strict`` (used for questions typed by a user) refuses them with a clear message."""
        tokens = words(question)
        if not tokens:
            raise InputError(f"question '{question}' has no words")
        if strict and len(tokens) > self.max_tokens:
            raise InputError(f"question '{question[:60]}...' has {len(tokens)} words but the model reads at most "
                             f"{self.max_tokens}; shorten it")
        lookup = self.__dict__.get("_lookup") or {w: i for i, w in enumerate(self.vocab)}
        self.__dict__["_lookup"] = lookup
        ids = [lookup.get(w, self.UNK) for w in tokens[:self.max_tokens]]
        return ids + [self.PAD] * (self.max_tokens - len(ids))

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuestionTokenizer:
        return cls(list(data["vocab"]), int(data["max_tokens"]))


def save_vocabularies(path: str | os.PathLike[str], answers: AnswerVocab, questions: QuestionTokenizer) -> None:
    atomic_write_json(path, {"answers": answers.to_dict(), "questions": questions.to_dict()})


def load_vocabularies(path: str | os.PathLike[str]) -> tuple[AnswerVocab, QuestionTokenizer]:
    data = read_json(path)
    try:
        return AnswerVocab.from_dict(data["answers"]), QuestionTokenizer.from_dict(data["questions"])
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a vocabulary file (missing {error})") from None


# ---- classification splits (BiomedCoOp): the core's Dassl reader ---------------------------------
def load_dassl_split(path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None) -> Any:
    """Dassl split JSON (``{"train": [[rel_path, label, classname], ...], "val": ..., "test": ...}``)."""
    from clipsuite.core.adapt.fewshot_data import load_split

    return load_split(path, image_root)
