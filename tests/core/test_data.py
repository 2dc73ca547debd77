"""Image-text data: CSV/TSV, JSONL, Karpathy JSON, webdataset shards; validation up front."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
import webdataset as wds
from PIL import Image

from clipsuite.core.data import ImageTextDataset, decode_image, read_pairs, verify_images
from clipsuite.core.errors import InputError
from clipsuite.core.synthetic import write_shapes_dataset

torch.set_num_threads(1)  # shared CPUs: one thread each is faster


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=6, seed=0, image_size=32)


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_table(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_samples_are_tensors_with_paths_relative_to_the_csv(shapes, tiny, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the working folder must not matter
    data = ImageTextDataset.from_source(shapes, tiny.preprocess, tiny.tokenizer)
    rows = _rows(shapes)
    assert len(data) == 6 and data.captions == [r["title"] for r in rows]
    sample = data[2]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["text"].shape == (tiny.context_length,) and sample["text"].dtype == torch.long
    assert int(sample["index"]) == 2
    torch.testing.assert_close(sample["text"], tiny.tokenizer([rows[2]["title"]])[0])
    expected = tiny.preprocess(Image.open(shapes.parent / rows[2]["filepath"]).convert("RGB"))
    torch.testing.assert_close(sample["image"], expected)
    batch = torch.utils.data.default_collate([data[0], data[1]])
    assert batch["image"].shape == (2, 3, 64, 64)


def test_tsv_with_other_column_names(shapes, tmp_path):
    rows = _rows(shapes)
    tsv = _write_table(tmp_path / "pairs.txt", ["image", "caption"],
                       [[str(shapes.parent / r["filepath"]), r["title"]] for r in rows], delimiter="\t")
    pairs = read_pairs(tsv, image_column="image", caption_column="caption")
    assert [p.caption for p in pairs] == [r["title"] for r in rows]
    sample = ImageTextDataset(pairs)[0]
    assert "caption" in sample and sample["image"].shape == (3, 32, 32)  # no transform: as it is


def test_missing_column_names_the_file_and_the_columns(shapes, tmp_path):
    bad = _write_table(tmp_path / "data.csv", ["filepath", "caption"], [["a.png", "x"]])
    with pytest.raises(InputError) as info:
        read_pairs(bad)
    assert str(info.value) == f"{bad} line 1: no column 'title' (columns: filepath, caption)"


def test_missing_image_and_empty_cell_are_caught_up_front(shapes, tmp_path):
    rows = _rows(shapes)
    table = [[str(shapes.parent / r["filepath"]), r["title"]] for r in rows]
    missing = _write_table(tmp_path / "missing.csv", ["filepath", "title"], table + [["nowhere.png", "a cat"]])
    with pytest.raises(InputError, match=r"missing.csv line 8: image not found: .*nowhere.png"):
        read_pairs(missing)
    assert len(read_pairs(missing, check_files=False)) == 7
    empty = _write_table(tmp_path / "empty.csv", ["filepath", "title"], table[:2] + [[table[0][0], " "]])
    with pytest.raises(InputError, match="empty.csv line 4: empty 'title'"):
        read_pairs(empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(InputError, match="blank.csv: empty file"):
        read_pairs(blank)
    with pytest.raises(InputError, match="unknown image-text format"):
        read_pairs(tmp_path / "data.parquet")


def test_corrupt_image_is_named(shapes, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    table = _write_table(tmp_path / "c.csv", ["filepath", "title"], [["broken.png", "a broken square"]])
    pairs = read_pairs(table)  # it exists, so the cheap check passes
    with pytest.raises(InputError, match="broken.png: not a readable image"):
        verify_images(pairs)
    with pytest.raises(InputError, match="broken.png"):
        ImageTextDataset(pairs)[0]


def test_jsonl(shapes, tmp_path):
    rows = _rows(shapes)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"filepath": str(shapes.parent / r["filepath"]), "title": r["title"]}) + "\n"
                            for r in rows))
    assert [p.caption for p in read_pairs(path)] == [r["title"] for r in rows]
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(InputError, match=r"pairs.jsonl line 7: malformed JSON \("):
        read_pairs(path)
    path.write_text(json.dumps({"image": "a.png", "title": "x"}) + "\n")
    with pytest.raises(InputError, match="line 1: no key 'filepath'"):
        read_pairs(path)


def test_karpathy_json(shapes, tmp_path):
    rows = _rows(shapes)
    images = [{"filename": Path(r["filepath"]).name, "filepath": "images", "split": "train" if i < 4 else "test",
               "sentences": [{"raw": r["title"]}, {"raw": r["title"] + " again"}]} for i, r in enumerate(rows)]
    path = shapes.parent / "dataset_shapes.json"
    path.write_text(json.dumps({"images": images}))
    pairs = read_pairs(path, split="train")
    assert len(pairs) == 8 and pairs[1].caption == rows[0]["title"] + " again"
    assert decode_image(pairs[0].image).size == (32, 32)


def _write_shards(csv_path: Path, folder: Path, per_shard: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = _rows(csv_path)
    paths = []
    for shard in range(0, len(rows), per_shard):
        path = folder / f"shard-{shard // per_shard:03d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i, row in enumerate(rows[shard:shard + per_shard], start=shard):
                data = (csv_path.parent / row["filepath"]).read_bytes()
                sink.write({"__key__": f"sample{i:05d}", "png": data, "txt": row["title"]})
        paths.append(path)
    return paths


def test_webdataset_shards_read_like_the_csv(shapes, tiny, tmp_path):
    shards = _write_shards(shapes, tmp_path / "shards")
    from_csv = ImageTextDataset.from_source(shapes, tiny.preprocess, tiny.tokenizer)
    for source in (tmp_path / "shards", str(tmp_path / "shards" / "shard-{000..001}.tar")):
        from_tar = ImageTextDataset.from_source(source, tiny.preprocess, tiny.tokenizer)
        assert from_tar.captions == from_csv.captions
        for i in (0, 5):
            torch.testing.assert_close(from_tar[i]["image"], from_csv[i]["image"])
            torch.testing.assert_close(from_tar[i]["text"], from_csv[i]["text"])
    assert len(read_pairs(shards[1])) == 2


def test_bad_shards(tmp_path):
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(image, format="PNG")
    lonely = tmp_path / "lonely.tar"
    with wds.TarWriter(str(lonely)) as sink:
        sink.write({"__key__": "a", "png": image.getvalue()})
    with pytest.raises(InputError, match="lonely.tar: sample 'a' has no txt caption"):
        read_pairs(lonely)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(InputError, match="garbage.tar: not a readable tar shard"):
        read_pairs(garbage)
    with pytest.raises(InputError, match="shard not found"):
        read_pairs(tmp_path / "absent.tar")
    bad_image = tmp_path / "bad.tar"
    with wds.TarWriter(str(bad_image)) as sink:
        sink.write({"__key__": "b", "jpg": b"not a jpeg", "txt": "a thing"})
    with pytest.raises(InputError, match=r"bad.tar:b.jpg: not a readable image"):
        verify_images(read_pairs(bad_image))
