"""VQA samples -> tensors: CLIP pixels (or cached CLIP tokens), the autoencoder's grey image, question
ids and answer targets. Frozen image towers run once per image, not once per question per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel
from clipsuite.medical.data import AnswerVocab, QuestionTokenizer, VQASample
from clipsuite.medical.methods.vqa import ClipVisualTokens


def grey_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """The autoencoder's input: ``[1, size, size]`` grayscale in [0, 1]."""
    grey = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).float().div(255).view(1, size, size)


@dataclass
class ImageInputs:
    pixels: torch.Tensor        # [3, H, W] CLIP-preprocessed
    grey: torch.Tensor          # [1, s, s]
    tokens: torch.Tensor | None = None  # [1 + N, D] cached CLIP tokens (frozen tower)


def prepare_images(paths: Sequence[Path], clip: ClipModel, ae_size: int,
                   visual: ClipVisualTokens | None = None, batch_size: int = 64) -> dict[Path, ImageInputs]:
    """Decode each image once; with ``visual`` (a frozen tower) also encode it once."""
    unique = list(dict.fromkeys(paths))
    prepared: dict[Path, ImageInputs] = {}
    for path in unique:
        image = load_image(path)
        prepared[path] = ImageInputs(clip.preprocess(image), grey_tensor(image, ae_size))
    if visual is not None:
        device = next(visual.parameters()).device
        with torch.no_grad():
            for start in range(0, len(unique), batch_size):
                chunk = unique[start:start + batch_size]
                pixels = torch.stack([prepared[p].pixels for p in chunk]).to(device)
                with clip.autocast():
                    tokens = visual(pixels).float().cpu()
                for path, row in zip(chunk, tokens):
                    prepared[path].tokens = row
    return prepared


class VQADataset(Dataset):
    """Items: ``visual`` (cached tokens) or ``pixels``, ``grey``, ``tokens``, ``answer`` (-1 if unseen),
    ``is_closed``."""

    def __init__(self, samples: Sequence[VQASample], images: dict[Path, ImageInputs], answers: AnswerVocab,
                 questions: QuestionTokenizer, strict: bool = False) -> None:
        self.samples = list(samples)
        self.images = images
        self.answers = answers
        self.token_ids = torch.tensor([questions.encode(s.question, strict=strict) for s in self.samples])
        self.answer_ids = torch.tensor([answers.index(s.answer) for s in self.samples])
        self.is_closed = torch.tensor([s.answer_type == "CLOSED" for s in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[self.samples[index].image]
        item = {"grey": image.grey, "tokens": self.token_ids[index], "answer": self.answer_ids[index],
                "is_closed": self.is_closed[index]}
        if image.tokens is not None:
            item["visual"] = image.tokens
        else:
            item["pixels"] = image.pixels
        return item
