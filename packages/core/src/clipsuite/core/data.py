"""Image-text datasets: CSV/TSV, JSONL, Karpathy JSON and webdataset shards, as ``dict`` samples.

Every format is first read into a list of ``Pair`` (image reference + caption + where it came
from), validated up front: a missing column, an empty cell, a missing image file or a malformed
line is one ``InputError`` naming the file and line before any training starts. Image paths are
relative to the table's folder. Shards are indexed once (member offsets) and then read by random
access, so they are an ordinary map-style dataset and a resumed run can skip exactly.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from clipsuite.core.checkpoints import iter_jsonl
from clipsuite.core.errors import InputError
from clipsuite.core.images import decode_image_from, load_image

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


@dataclass(frozen=True)
class Pair:
    image: Path | TarMember
    caption: str
    where: str  # e.g. "data.csv line 7", for messages


def decode_image(ref: Path | TarMember) -> Image.Image:
    """Decode to RGB or raise ``InputError`` naming the file (or ``shard.tar:member``)."""
    if isinstance(ref, Path):
        return load_image(ref)
    return decode_image_from(io.BytesIO(ref.read()), ref)


# ---- tables ----------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None


def _check_columns(path: Path, columns: Sequence[str], wanted: Sequence[str]) -> None:
    for column in wanted:
        if column not in columns:
            shown = ", ".join(c for c in columns if c) or "none"
            raise InputError(f"{path.name}: no column '{column}' (columns: {shown})")


def _pair(path: Path, line: int, row: dict[str, Any], image_column: str, caption_column: str) -> Pair:
    where = f"{path.name} line {line}"
    values = {}
    for column in (image_column, caption_column):
        value = row.get(column)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: empty '{column}'")
        values[column] = value.strip()
    image = Path(values[image_column])
    return Pair(image if image.is_absolute() else path.parent / image, values[caption_column], where)


def read_csv_pairs(path: str | os.PathLike[str], image_column: str = DEFAULT_IMAGE_COLUMN,
                   caption_column: str = DEFAULT_CAPTION_COLUMN, delimiter: str | None = None) -> list[Pair]:
    """A CSV or TSV table (delimiter: tab for ``.tsv`` or a header holding a tab, else comma)."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{path.name}: empty table")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in lines[0] else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    _check_columns(path, columns, (image_column, caption_column))
    try:
        pairs = [_pair(path, reader.line_num, row, image_column, caption_column) for row in reader]
    except csv.Error as error:
        raise InputError(f"{path.name} line {reader.line_num}: malformed CSV ({error})") from None
    if not pairs:
        raise InputError(f"{path.name}: no rows under the header")
    return pairs


def read_jsonl_pairs(path: str | os.PathLike[str], image_column: str = DEFAULT_IMAGE_COLUMN,
                     caption_column: str = DEFAULT_CAPTION_COLUMN) -> list[Pair]:
    """One JSON object per line holding the image path and the caption."""
    path = Path(path)
    pairs = []
    for number, row in iter_jsonl(path):
        missing = [c for c in (image_column, caption_column) if c not in row]
        if missing:
            raise InputError(f"{path.name} line {number}: no key '{missing[0]}' (keys: {', '.join(row) or 'none'})")
        pairs.append(_pair(path, number, row, image_column, caption_column))
    if not pairs:
        raise InputError(f"{path.name}: no records")
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
                captions = {key: archive.extractfile(parts[TEXT_EXTENSION]).read()  # type: ignore[union-attr]
                            for key, parts in samples.items() if TEXT_EXTENSION in parts}
        except (tarfile.TarError, OSError, EOFError) as error:
            raise InputError(f"{shard}: not a readable tar shard ({str(error).splitlines()[0]})") from None
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
    if suffix in (".csv", ".tsv", ".txt"):
        pairs = read_csv_pairs(source, image_column, caption_column, delimiter)
    elif suffix == ".jsonl":
        pairs = read_jsonl_pairs(source, image_column, caption_column)
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
        if key not in seen:
            seen.add(key)
            decode_image(pair.image)


class ImageTextDataset(Dataset):
    """Samples ``{"image": [3, H, W] float, "text": [context] long, "index": long}``.

    Without a ``tokenizer`` the sample holds ``"caption"`` (the string) instead of ``"text"``;
    without a ``transform`` the image is converted to a [0, 1] tensor as it is.
    """

    def __init__(self, pairs: Sequence[Pair], transform: Callable[[Image.Image], torch.Tensor] | None = None,
                 tokenizer: Callable[[list[str]], torch.Tensor] | None = None) -> None:
        if not pairs:
            raise InputError("an image-text dataset needs at least one pair")
        self.pairs = list(pairs)
        self.transform = transform
        self.tokenizer = tokenizer

    @classmethod
    def from_source(cls, source: str | os.PathLike[str], transform: Callable[[Image.Image], torch.Tensor] | None = None,
                    tokenizer: Callable[[list[str]], torch.Tensor] | None = None, **read_options: Any,
                    ) -> ImageTextDataset:
        return cls(read_pairs(source, **read_options), transform, tokenizer)

    @property
    def captions(self) -> list[str]:
        return [p.caption for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        image = decode_image(pair.image)
        pixels = self.transform(image) if self.transform is not None else to_tensor(image)
        sample: dict[str, Any] = {"image": pixels, "index": torch.tensor(index)}
        if self.tokenizer is not None:
            sample["text"] = self.tokenizer([pair.caption])[0]
        else:
            sample["caption"] = pair.caption
        return sample
