"""Atomic safetensors + JSON writes: a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import pytest
import torch

from clipsuite.core import InputError
from clipsuite.core.checkpoints import atomic_write_json, load_tensors, read_config, read_json, save_tensors


def test_round_trip_with_config(tmp_path):
    path = tmp_path / "adapter.safetensors"
    tensors = {"ctx": torch.randn(4, 8), "shared": torch.arange(3.0)}
    save_tensors(path, tensors, {"method": "coop", "n_ctx": 4})
    loaded = load_tensors(path)
    torch.testing.assert_close(loaded["ctx"], tensors["ctx"])
    assert read_config(path) == {"method": "coop", "n_ctx": 4}


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_tensors(path, {"a": torch.ones(2)})

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("clipsuite.core.checkpoints.save_file", boom)
    with pytest.raises(RuntimeError):
        save_tensors(path, {"a": torch.zeros(2)})
    torch.testing.assert_close(load_tensors(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_damaged_files_are_named(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match="bad.safetensors"):
        load_tensors(bad)
    atomic_write_json(tmp_path / "ok.json", {"a": 1})
    assert read_json(tmp_path / "ok.json") == {"a": 1}
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(InputError, match="broken.json: malformed JSON"):
        read_json(tmp_path / "broken.json")
