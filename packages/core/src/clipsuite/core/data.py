"""Image-text datasets: CSV/TSV, JSONL, Karpathy JSON, webdataset shards and pairs held in memory,
as ``dict`` samples.

Every format is first read into a list of ``Pair`` (image reference + caption + where it came
from), validated up front: a missing column, an empty cell, a missing image file or a malformed
line is one ``InputError`` naming the file and line before any training starts. Tables are read by
``clipsuite.core.tabular`` (its delimiter rule); image paths are relative to the table's folder.
Shards are indexed once (member offsets) and then read by random access, so they are an ordinary
map-style dataset and a resumed run can skip exactly. In-memory ``(image, caption)`` pairs (image a
path or a PIL image) and any torch ``Dataset`` of such pairs give the same samples.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from clipsuite.core.errors import InputError, first_line
from clipsuite.core.images import decode_image_from, load_image, to_rgb
from clipsuite.core.tabular import read_table

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTENSION = "txt"
DEFAULT_IMAGE_COLUMN = "filepath"  # open_clip's --csv-img-key
DEFAULT_CAPTION_COLUMN = "title"   # open_clip's --csv-caption-key


@dataclass(frozen=True)
class TarMember:
    """One file inside a tar shard, read by offset (no need to scan the shard again)."""

    tar: Path
    name: str
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.tar, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.size)

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


ImageRef = Path | TarMember | Image.Image


@dataclass(frozen=True)
class Pair:
    image: ImageRef
    caption: str
    where: str  # e.g. "data.csv line 7", for messages


def decode_image(ref: ImageRef) -> Image.Image:
    """Decode to RGB or raise ``InputError`` naming the file (or ``shard.tar:member``)."""
    if isinstance(ref, Image.Image):
        return to_rgb(ref)
    if isinstance(ref, Path):
        return load_image(ref)
    return decode_image_from(io.BytesIO(ref.read()), ref)


# ---- tables and memory ----------------------------------------------------------------------------
def read_table_pairs(path: str | os.PathLike[str], image_column: str = DEFAULT_IMAGE_COLUMN,
                     caption_column: str = DEFAULT_CAPTION_COLUMN, delimiter: str | None = None) -> list[Pair]:
    """A CSV, TSV or JSONL table with an image path and a caption per row."""
    table = read_table(path, required=(image_column, caption_column), delimiter=delimiter)
    pairs = []
    for record in table:
        image = Path(record.text(image_column))
        caption = record.text(caption_column)
        pairs.append(Pair(image if image.is_absolute() else table.path.parent / image, caption, record.where))
    return pairs


def pairs_from(items: Iterable[Pair | tuple[str | os.PathLike[str] | Image.Image, str]]) -> list[Pair]:
    """Pairs from ``(image, caption)`` items held in memory: image a path or a PIL image."""
    pairs = []
    for number, item in enumerate(items):
        if isinstance(item, Pair):
            pairs.append(item)
            continue
        where = f"pair {number}"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(f"{where}: expected (image, caption), got {type(item).__name__}")
        image, caption = item
        if isinstance(image, (str, os.PathLike)):
            image = Path(image)
        elif not isinstance(image, Image.Image):
            raise InputError(f"{where}: the image must be a path or a PIL image, got {type(image).__name__}")
        if not isinstance(caption, str) or not caption.strip():
            raise InputError(f"{where}: empty caption")
        pairs.append(Pair(image, caption.strip(), where))
    if not pairs:
        raise InputError("no image-caption pairs given")
    return pairs


def read_karpathy_pairs(path: str | os.PathLike[str], split: str | None = None,
                        image_root: str | os.PathLike[str] | None = None) -> list[Pair]:
    """Karpathy-style JSON (``images[].filename``, ``split``, ``sentences[].raw``): one pair per
    sentence; images under ``image_root`` (default: the JSON's folder)."""
    from clipsuite.core.checkpoints import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path.name}: not a Karpathy caption JSON (no 'images' list)")
    root = Path(image_root) if image_root is not None else path.parent
    pairs = []
    for number, entry in enumerate(data["images"]):
        if split is not None and entry.get("split") != split:
            continue
        where = f"{path.name} images[{number}]"
        filename = entry.get("filename")
        if not isinstance(filename, str) or not filename:
            raise InputError(f"{where}: no 'filename'")
        for sentence in entry.get("sentences", []):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if isinstance(raw, str) and raw.strip():
                pairs.append(Pair(root / Path(entry.get("filepath", "")) / filename, raw.strip(), where))
    if not pairs:
        raise InputError(f"{path.name}: no captions" + (f" in split '{split}'" if split else ""))
    return pairs


# ---- webdataset shards -----------------------------------------------------------------------------
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset: key = path up to the first dot of the name


def expand_shards(source: str | os.PathLike[str]) -> list[Path]:
    """A ``.tar`` file, a folder of them, or a brace pattern like ``shards/{000..009}.tar``."""
    text = str(source)
    if "{" in text:
        from braceexpand import braceexpand  # a webdataset dependency

        paths = [Path(p) for p in braceexpand(text)]
    elif Path(text).is_dir():
        paths = sorted(Path(text).glob("*.tar"))
        if not paths:
            raise InputError(f"{text}: no .tar shards in this folder")
    else:
        paths = [Path(text)]
    for shard in paths:
        if not shard.is_file():
            raise InputError(f"{shard}: shard not found")
    return paths


def read_shard_pairs(source: str | os.PathLike[str]) -> list[Pair]:
    """Index webdataset shards: each sample needs an image (jpg/jpeg/png/webp) and a ``txt``."""
    pairs = []
    for shard in expand_shards(source):
        samples: dict[str, dict[str, tarfile.TarInfo]] = {}
        try:
            with tarfile.open(shard, "r:") as archive:
                for member in archive:
                    match = _KEY.match(member.name)
                    if member.isfile() and match:
                        samples.setdefault(match.group(1), {})[match.group(2).lower()] = member
                captions = {key: archive.extractfile(parts[TEXT_EXTENSION]).read()  # type: ignore[union-attr]  # a file member
                            for key, parts in samples.items() if TEXT_EXTENSION in parts}
        except (tarfile.TarError, OSError, EOFError) as error:
            raise InputError(f"{shard}: not a readable tar shard ({first_line(error)})") from None
        for key, parts in samples.items():
            image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in parts), None)
            if image_ext is None or key not in captions:
                lack = "image (jpg/jpeg/png/webp)" if image_ext is None else "txt caption"
                raise InputError(f"{shard}: sample '{key}' has no {lack}")
            try:
                caption = captions[key].decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{shard}: caption of '{key}' is not UTF-8") from None
            if not caption:
                raise InputError(f"{shard}: sample '{key}' has an empty caption")
            member = parts[image_ext]
            pairs.append(Pair(TarMember(shard, member.name, member.offset_data, member.size), caption,
                              f"{shard.name}:{key}"))
    if not pairs:
        raise InputError(f"{source}: no samples in the shards")
    return pairs


# ---- dispatch, checks, dataset ---------------------------------------------------------------------
def read_pairs(source: str | os.PathLike[str], image_column: str = DEFAULT_IMAGE_COLUMN,
               caption_column: str = DEFAULT_CAPTION_COLUMN, delimiter: str | None = None,
               split: str | None = None, check_files: bool = True) -> list[Pair]:
    """Read any supported image-text source, chosen by its name: ``.csv``/``.tsv``/``.txt`` tables,
    ``.jsonl``, Karpathy ``.json``, ``.tar`` shards (file, folder or brace pattern)."""
    text = str(source)
    suffix = Path(text).suffix.lower()
    if suffix == ".tar" or "{" in text or (Path(text).is_dir() and any(Path(text).glob("*.tar"))):
        return read_shard_pairs(source)
    if Path(text).is_dir():
        raise InputError(f"{text}: a folder, but it holds no .tar shards (give a CSV, JSONL or JSON file)")
    if suffix in (".csv", ".tsv", ".txt", ".jsonl"):
        pairs = read_table_pairs(source, image_column, caption_column, delimiter)
    elif suffix == ".json":
        pairs = read_karpathy_pairs(source, split)
    else:
        raise InputError(f"{text}: unknown image-text format (use .csv, .tsv, .jsonl, Karpathy .json or .tar shards)")
    if check_files:
        check_image_files(pairs)
    return pairs


def check_image_files(pairs: Sequence[Pair]) -> None:
    """Every image file exists (a cheap stat each), else one error naming the first missing one."""
    missing = [p for p in pairs if isinstance(p.image, Path) and not p.image.is_file()]
    if missing:
        more = f" ({len(missing)} of {len(pairs)} rows name missing images)" if len(missing) > 1 else ""
        raise InputError(f"{missing[0].where}: image not found: {missing[0].image}{more}")


def verify_images(pairs: Sequence[Pair]) -> None:
    """Decode every distinct image once; the first unreadable one raises ``InputError`` naming it.
    Costs one pass over the data: worth it before a long run, skippable for huge sets."""
    seen: set[str] = set()
    for pair in pairs:
        key = str(pair.image)
        if isinstance(pair.image, Image.Image):
            continue  # decoded already
        if key not in seen:
            seen.add(key)
            decode_image(pair.image)


Transform = Callable[[Image.Image], torch.Tensor]
Tokenizer = Callable[[list[str]], torch.Tensor]


def _sample(image: Image.Image | torch.Tensor, caption: str, index: int, transform: Transform | None,
            tokenizer: Tokenizer | None) -> dict[str, Any]:
    """The sample every image-text dataset gives; a tensor image counts as preprocessed already."""
    if isinstance(image, torch.Tensor):
        pixels = image
    else:
        pixels = transform(image) if transform is not None else to_tensor(image)
    sample: dict[str, Any] = {"image": pixels, "index": torch.tensor(index)}
    if tokenizer is not None:
        sample["text"] = tokenizer([caption])[0]
    else:
        sample["caption"] = caption
    return sample


class ImageTextDataset(Dataset):
    """Samples ``{"image": [3, H, W] float, "text": [context] long, "index": long}``.

    Without a ``tokenizer`` the sample holds ``"caption"`` (the string) instead of ``"text"``;
    without a ``transform`` the image is converted to a [0, 1] tensor as it is.
    """

    def __init__(self, pairs: Sequence[Pair], transform: Transform | None = None,
                 tokenizer: Tokenizer | None = None) -> None:
        if not pairs:
            raise InputError("an image-text dataset needs at least one pair")
        self.pairs = list(pairs)
        self.transform = transform
        self.tokenizer = tokenizer

    @classmethod
    def from_source(cls, source: str | os.PathLike[str], transform: Transform | None = None,
                    tokenizer: Tokenizer | None = None, **read_options: Any) -> ImageTextDataset:
        return cls(read_pairs(source, **read_options), transform, tokenizer)

    @property
    def captions(self) -> list[str]:
        return [p.caption for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        return _sample(decode_image(pair.image), pair.caption, index, self.transform, self.tokenizer)


class CaptionedDataset(Dataset):
    """Any torch ``Dataset`` of ``(image, caption)`` items, giving ``ImageTextDataset``'s samples.

    The image may be a path, a PIL image, or a ``[3, H, W]`` tensor that is preprocessed already
    (used as it is). A malformed item is an ``InputError`` naming its position.
    """

    def __init__(self, source: Dataset, transform: Transform | None = None,
                 tokenizer: Tokenizer | None = None) -> None:
        if len(source) == 0:  # type: ignore[arg-type]  # map-style datasets define __len__
            raise InputError("an image-text dataset needs at least one pair")
        self.source = source
        self.transform = transform
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]  # map-style datasets define __len__

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.source[index]
        where = f"dataset item {index}"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(f"{where}: expected (image, caption), got {type(item).__name__}")
        image, caption = item
        if not isinstance(caption, str) or not caption.strip():
            raise InputError(f"{where}: empty caption")
        if isinstance(image, (str, os.PathLike)):
            image = load_image(Path(image))
        elif isinstance(image, Image.Image):
            image = to_rgb(image)
        elif not isinstance(image, torch.Tensor):
            raise InputError(f"{where}: the image must be a path, a PIL image or a tensor, "
                             f"got {type(image).__name__}")
        return _sample(image, caption.strip(), index, self.transform, self.tokenizer)
