"""The streaming, sharded embedder: same vectors as encode_images, shards that the index reads back,
undecodable files skipped or fatal, no partial files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from clipsuite.core.embed import EmbedConfig, ShardWriter, embed_images, read_inputs, read_shards
from clipsuite.core.errors import InputError
from clipsuite.core.index import EmbeddingIndex
from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.synthetic import write_shapes_dataset


@pytest.fixture(scope="module")
def model() -> ClipModel:
    torch.manual_seed(0)
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=20, seed=1)


def _quiet(**kwargs: object) -> EmbedConfig:
    return EmbedConfig(**{"batch_size": 8, "num_workers": 0, "progress": False, **kwargs})  # type: ignore[arg-type]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_csv_embeddings_match_encode_images(model: ClipModel, dataset: Path, tmp_path: Path) -> None:
    result = embed_images(model, dataset, tmp_path / "emb", _quiet(), model_spec="tiny")
    assert result.count == 20 and result.skipped == []
    assert _files(tmp_path / "emb") == [".clipsuite-output.json", "embeddings.json", "shard-00000-of-00001.jsonl",
                                        "shard-00000-of-00001.safetensors", "shard-00000-of-00001.skipped.json",
                                        "skipped.json"]
    shards = read_shards(tmp_path / "emb")
    rows = shards.metadata()
    expected = model.encode_images([r["path"] for r in rows])
    np.testing.assert_allclose(shards.embeddings(), expected.numpy(), atol=1e-5)
    assert rows[3]["id"] == 3 and rows[3]["title"] and "label" in rows[3]  # CSV fields ride along
    assert json.loads((tmp_path / "emb" / "embeddings.json").read_text())["count"] == 20


def test_worker_processes_give_the_same_vectors(model: ClipModel, dataset: Path, tmp_path: Path) -> None:
    embed_images(model, dataset, tmp_path / "a", _quiet())
    embed_images(model, dataset, tmp_path / "b", _quiet(num_workers=2, batch_size=5))
    np.testing.assert_allclose(read_shards(tmp_path / "a").embeddings(), read_shards(tmp_path / "b").embeddings(),
                               atol=1e-5)


def test_shards_are_merged_by_the_index(model: ClipModel, dataset: Path, tmp_path: Path) -> None:
    whole = embed_images(model, dataset, tmp_path / "one", _quiet())
    parts = [embed_images(model, dataset, tmp_path / "two", _quiet(), process_index=i, num_processes=3)
             for i in range(3)]
    assert [p.count for p in parts] == [6, 7, 7] and whole.count == 20
    two = read_shards(tmp_path / "two")
    np.testing.assert_allclose(two.embeddings(), read_shards(tmp_path / "one").embeddings(), atol=1e-5)
    index = EmbeddingIndex.from_shards(tmp_path / "two", kind="exact")
    assert len(index) == 20
    result = index.search(two.embeddings()[[4, 15]], k=1)
    assert result.ids == [[4], [15]]
    # a later run with a different process count replaces the old shards instead of mixing with them
    embed_images(model, dataset, tmp_path / "two", _quiet())
    assert len(read_shards(tmp_path / "two").paths) == 1


def test_undecodable_files_are_skipped_or_fatal(model: ClipModel, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_shapes_dataset(folder, n=6, seed=2)
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    result = embed_images(model, folder / "images", tmp_path / "skip", _quiet())
    assert result.count == 6 and len(result.skipped) == 1
    skipped = json.loads((tmp_path / "skip" / "skipped.json").read_text())
    assert skipped[0]["path"].endswith("broken.png") and "not a readable image" in skipped[0]["reason"]
    assert all("broken" not in r["path"] for r in read_shards(tmp_path / "skip").metadata())

    with pytest.raises(InputError, match="broken.png: not a readable image"):
        embed_images(model, folder / "images", tmp_path / "fail", _quiet(on_error="fail"))
    assert not (tmp_path / "fail").exists()  # no partial shard, no temporary files, no empty folder


def test_bad_inputs(model: ClipModel, dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        embed_images(model, tmp_path / "empty", tmp_path / "out", _quiet())
    with pytest.raises(InputError, match=r"line 1: no column 'picture' \(columns: filepath, title"):
        read_inputs(dataset, path_column="picture")
    tsv = tmp_path / "list.tsv"
    tsv.write_text("caption\tother\nhello\tx\n")
    with pytest.raises(InputError, match=r"list.tsv: no path column among the columns \['caption', 'other'\]"):
        read_inputs(tsv)
    (tmp_path / "all_bad").mkdir()
    (tmp_path / "all_bad" / "a.jpg").write_bytes(b"nope")
    with pytest.raises(InputError, match="none of the 1 images could be decoded"):
        embed_images(model, tmp_path / "all_bad", tmp_path / "out2", _quiet())
    with pytest.raises(InputError, match="no embedding shards"):
        read_shards(tmp_path / "empty")
    embed_images(model, dataset, tmp_path / "partial", _quiet(), process_index=1, num_processes=2)
    with pytest.raises(InputError, match="missing shard shard-00000-of-00002"):
        read_shards(tmp_path / "partial")


def test_text_list_input(dataset: Path, tmp_path: Path) -> None:
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(str(dataset.parent / "images" / f"captions-{i:05d}.png") for i in range(3)))
    rows = read_inputs(listing)
    assert [r["id"] for r in rows] == [0, 1, 2] and rows[2]["path"].endswith("captions-00002.png")


def test_shard_writer_streams_valid_safetensors(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path / "s.safetensors", dim=4)
    chunks = [np.random.default_rng(i).normal(size=(n, 4)).astype(np.float32) for i, n in enumerate((3, 0, 5))]
    for chunk in chunks:
        writer.write(chunk)
    writer.close({"model": "x"})
    with safe_open(str(tmp_path / "s.safetensors"), framework="numpy") as handle:
        np.testing.assert_array_equal(handle.get_tensor("embeddings"), np.concatenate(chunks))
    empty = ShardWriter(tmp_path / "e.safetensors", dim=4)
    empty.close({})
    with safe_open(str(tmp_path / "e.safetensors"), framework="numpy") as handle:
        assert handle.get_tensor("embeddings").shape == (0, 4)
    assert _files(tmp_path) == ["e.safetensors", "s.safetensors"]


def test_jsonl_input_rides_its_fields_along(dataset: Path, tmp_path: Path) -> None:
    table = tmp_path / "inputs.jsonl"
    table.write_text("".join(json.dumps({"id": f"img-{i}", "image": str(dataset.parent / "images" /
                                                                          f"captions-{i:05d}.png"), "split": i % 2})
                             + "\n" for i in range(3)))
    rows = read_inputs(table)
    assert [(r["id"], r["split"]) for r in rows] == [("img-0", 0), ("img-1", 1), ("img-2", 0)]
    assert rows[1]["path"].endswith("captions-00001.png") and "image" not in rows[1]
    table.write_text(json.dumps({"image": ""}) + "\n")
    with pytest.raises(InputError, match=r"inputs.jsonl line 1: empty 'image'"):
        read_inputs(table)
