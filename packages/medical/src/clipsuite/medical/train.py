"""Training entry points of the medical package, all on the core Trainer.

- ``train_pubmedclip``: PubMedCLIP-style contrastive fine-tuning of a CLIP model on radiology
  image-caption pairs in the ROCO layout (``id,name,caption`` CSV, images in ``images/``), through
  the core's contrastive task. PubMedCLIP: 50 epochs, batch 64, Adam lr 1e-5, weight decay 5e-4.
- VQA (``train_vqa``) and BiomedCoOp (``fit_biomedcoop``) live in ``train_vqa`` and ``fewshot`` and
  are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError
from clipsuite.core.tabular import read_table
from clipsuite.medical.fewshot import fit_biomedcoop
from clipsuite.medical.train_vqa import VQASettings, load_vqa_run, train_vqa

__all__ = ["VQASettings", "fit_biomedcoop", "load_vqa_run", "read_roco", "train_pubmedclip", "train_vqa"]

PUBMEDCLIP_DEFAULTS: dict[str, Any] = {"epochs": 50, "batch_size": 64, "lr": 1e-5, "weight_decay": 5e-4,
                                       "optimizer": "adam"}


def read_roco(csv_path: str | os.PathLike[str], image_dir: str | os.PathLike[str] | None = None,
              ) -> list[tuple[Path, str]]:
    """(image, caption) pairs of a ROCO CSV; a row naming a missing image is an error naming it."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: ROCO caption file not found")
    folder = Path(image_dir) if image_dir else csv_path.parent / "images"
    pairs = []
    for record in read_table(csv_path, required=("name", "caption")):
        name = record.text("name")
        image = folder / name
        if not image.is_file():
            raise record.error(f"image '{name}' not found in {folder}")
        pairs.append((image, record.text("caption")))
    return pairs


def train_pubmedclip(roco_csv: str | os.PathLike[str], output_dir: str | os.PathLike[str],
                     model: str = "ViT-B-32-quickgelu", pretrained: str | None = "openai",
                     image_dir: str | os.PathLike[str] | None = None, **train_options: Any) -> Any:
    """Fine-tune ``model`` contrastively on ROCO pairs; the result folder loads with ``load_model``.
    ``train_options`` are ``TrainConfig`` fields (PubMedCLIP's values are the defaults)."""
    from clipsuite.core.contrastive import train_contrastive

    pairs = read_roco(roco_csv, image_dir)
    options = {**PUBMEDCLIP_DEFAULTS, **train_options}
    return train_contrastive(pairs, output_dir, model=model, pretrained=pretrained, **options)
