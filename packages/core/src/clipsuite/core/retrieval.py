"""Image-text retrieval evaluation on data with several captions per image.

RSICD, RSITMD and COCO give each image five captions. The protocol those papers report (and that
``clipsuite.core.metrics.retrieval_recall`` computes): image->text is a hit when ANY of the image's
captions is among its top K; text->image, each caption has exactly one correct image. Recall@1/5/10
in both directions and their mean, the "mean recall" (mR). Pairs naming the same image (the same
path, the same shard member, the same PIL object) are one image: encoded once, ranked once. Every
caption counts, duplicates included (the "all captions" convention); de-duplicating captions is a
different protocol and gives different numbers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from clipsuite.core.data import ImageRef, Pair, decode_image
from clipsuite.core.errors import InputError
from clipsuite.core.metrics import retrieval_recall


@dataclass
class CaptionIndex:
    """Distinct images, every caption, and which image each caption describes."""

    images: list[ImageRef]  # distinct, in first-seen order
    first_pair: list[int]   # position in the input of each image's first pair
    captions: list[str]     # every caption, in input order
    owners: torch.Tensor    # [n_captions] long: captions[j] describes images[owners[j]]


def _key(ref: ImageRef) -> Hashable:
    return id(ref) if isinstance(ref, Image.Image) else ref  # PIL images compare by pixels: use identity


def caption_index(pairs: Sequence[Pair]) -> CaptionIndex:
    """Group pairs by image (e.g. the five pairs per image that ``read_karpathy_pairs`` gives)."""
    if not pairs:
        raise InputError("retrieval evaluation needs at least one image-caption pair")
    position: dict[Hashable, int] = {}
    images: list[ImageRef] = []
    first_pair: list[int] = []
    owners = []
    for number, pair in enumerate(pairs):
        key = _key(pair.image)
        if key not in position:
            position[key] = len(images)
            images.append(pair.image)
            first_pair.append(number)
        owners.append(position[key])
    return CaptionIndex(images, first_pair, [p.caption for p in pairs], torch.tensor(owners, dtype=torch.long))


def evaluate_retrieval(clip: Any, pairs: Sequence[Pair], ks: Sequence[int] = (1, 5, 10),
                       batch_size: int = 64) -> dict[str, float]:
    """Recall@K both ways and mean recall of ``clip`` (a ``ClipModel``) on ``pairs``.

    Keys as ``retrieval_recall``: ``image_to_text_R@k``, ``text_to_image_R@k``, ``mean_recall``; plus
    ``images`` and ``captions`` (the counts the numbers are over).
    """
    index = caption_index(pairs)
    image_features = torch.cat([clip.encode_images([decode_image(ref) for ref in index.images[i:i + batch_size]],
                                                   batch_size=batch_size)
                                for i in range(0, len(index.images), batch_size)])
    text_features = clip.encode_texts(index.captions, batch_size=batch_size)
    metrics = retrieval_recall(image_features @ text_features.T, index.owners, ks)
    return {**metrics, "images": float(len(index.images)), "captions": float(len(index.captions))}
