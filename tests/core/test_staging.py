"""Staged writes: a failure at any point leaves neither a partial output nor a stray temporary."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clipsuite.core import staging
from clipsuite.core.errors import InputError
from clipsuite.core.outputs import (
    MANIFEST_NAME,
    check_output_dir,
    check_output_file,
    foreign_entries,
    listed_entries,
    remove_listed,
    write_manifest,
)
from clipsuite.core.staging import StagedFile, atomic_write_json, atomic_write_text, staged_folder, staged_path


class Boom(RuntimeError):
    pass


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_appears_whole_with_ordinary_permissions(tmp_path: Path) -> None:
    with StagedFile(tmp_path / "out.txt") as handle:
        handle.write("first half, ")
        assert _names(tmp_path) != ["out.txt"] and not (tmp_path / "out.txt").exists()  # only a temporary yet
        handle.write("second half\n")
    assert (tmp_path / "out.txt").read_text() == "first half, second half\n"
    assert _names(tmp_path) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_failure_mid_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    atomic_write_json(target, {"version": 1})
    with pytest.raises(Boom), StagedFile(target, "w") as handle:
        handle.write('{"version": 2, "rows": [')
        raise Boom
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert _names(tmp_path) == ["data.json"]


def test_fsync_failure_removes_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(staging.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write_text(tmp_path / "new.txt", "text")
    assert _names(tmp_path) == []


def test_streaming_writer_can_seek_then_commit_or_abort(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "shard.bin", "wb")
    staged.handle.write(b"\0\0rows")
    staged.handle.seek(0)
    staged.handle.write(b"OK")
    assert staged.commit() == tmp_path / "shard.bin"
    assert (tmp_path / "shard.bin").read_bytes() == b"OKrows"
    dropped = StagedFile(tmp_path / "other.bin", "wb")
    dropped.handle.write(b"partial")
    dropped.abort()
    assert _names(tmp_path) == ["shard.bin"]
    with pytest.raises(ValueError, match="mode must start with 'w'"):
        StagedFile(tmp_path / "x", "a")


def test_path_writers(tmp_path: Path) -> None:
    with staged_path(tmp_path / "model.bin") as temp:
        temp.write_bytes(b"weights")  # a writer that takes a file name and may recreate the file
    assert (tmp_path / "model.bin").read_bytes() == b"weights"
    with pytest.raises(Boom), staged_path(tmp_path / "model.bin") as temp:
        temp.write_bytes(b"half")
        raise Boom
    assert (tmp_path / "model.bin").read_bytes() == b"weights" and _names(tmp_path) == ["model.bin"]


def test_folder_is_swapped_in_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "index"
    with staged_folder(target) as folder:
        (folder / "a.txt").write_text("one")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("two")
        assert not target.exists()
    assert _names(target) == [MANIFEST_NAME, "a.txt", "sub"] and (target / "sub" / "b.txt").read_text() == "two"
    with pytest.raises(Boom), staged_folder(target) as folder:
        (folder / "a.txt").write_text("half of a new one")
        raise Boom
    assert _names(tmp_path) == ["index"] and (target / "a.txt").read_text() == "one"
    with staged_folder(target) as folder:
        (folder / "c.txt").write_text("three")
    assert _names(target) == [MANIFEST_NAME, "c.txt"] and _names(tmp_path) == ["index"]  # replaced, old copy gone


def test_merge_keeps_our_other_entries_and_lists_them_all(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_folder(out) as folder:  # an earlier output of ours
        (folder / "data").mkdir()
        (folder / "data" / "keep.png").write_bytes(b"x")
        (folder / "heatmaps").mkdir()
        (folder / "heatmaps" / "old.png").write_bytes(b"old")
    with staged_folder(out, merge=True) as folder:
        (folder / "heatmaps").mkdir()
        (folder / "heatmaps" / "new.png").write_bytes(b"new")
        (folder / "index.html").write_text("<html>")
    assert _names(out) == [MANIFEST_NAME, "data", "heatmaps", "index.html"]
    assert _names(out / "heatmaps") == ["new.png"] and _names(out / "data") == ["keep.png"]
    assert _names(tmp_path) == ["out"]
    assert foreign_entries(out) == []  # still ours: the next command may replace it
    with pytest.raises(Boom), staged_folder(out, merge=True) as folder:
        (folder / "index.html").write_text("<half")
        raise Boom
    assert (out / "index.html").read_text() == "<html>" and _names(tmp_path) == ["out"]


def _users_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.csv").write_text("a,b\n")
    return out


@pytest.mark.parametrize("merge", [False, True])
def test_a_users_folder_is_refused_before_the_block_and_left_alone(tmp_path: Path, merge: bool) -> None:
    out = _users_folder(tmp_path)
    ran = []
    refusal = r"out holds files this command did not write \(notes.txt, sub/\); choose another output folder or remove"
    with pytest.raises(InputError, match=refusal), staged_folder(out, merge=merge, flag="-o"):
        ran.append(True)
    assert not ran and _names(tmp_path) == ["out"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub" / "data.csv").read_text() == "a,b\n"


def test_the_cli_refusal_names_the_flag(tmp_path: Path) -> None:
    out = _users_folder(tmp_path)
    with pytest.raises(InputError) as caught:
        check_output_dir(out, flag="--output")
    assert caught.value.cli_message.endswith("choose another --output or remove them")


def test_a_file_added_to_our_folder_makes_it_the_users(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_folder(out) as folder:
        (folder / "hits.geojson").write_text("{}")
    (out / "notes.txt").write_text("mine")  # the user wrote beside our output
    with pytest.raises(InputError, match="notes.txt"), staged_folder(out):
        pass
    assert (out / "notes.txt").read_text() == "mine" and (out / "hits.geojson").exists()


def test_a_file_appearing_during_the_work_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_folder(out) as folder:
        (folder / "old.txt").write_text("old")
    with pytest.raises(InputError, match="late.txt"), staged_folder(out) as folder:
        (folder / "new.txt").write_text("new")
        (out / "late.txt").write_text("written by the user while we worked")
    assert _names(out) == [MANIFEST_NAME, "late.txt", "old.txt"] and _names(tmp_path) == ["out"]


def test_replacing_removes_only_what_the_manifest_listed(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "ours").mkdir(parents=True)
    (old / "ours" / "a.png").write_text("ours")
    (old / "theirs.txt").write_text("theirs")
    write_manifest(old, "test", {"ours", "ours/a.png"})
    assert remove_listed(old, listed_entries(old) or set()) == ["theirs.txt"]
    assert _names(old) == ["theirs.txt"]  # kept, with the folder around it
    gone = tmp_path / "gone"
    (gone / "x").mkdir(parents=True)
    write_manifest(gone, "test")
    assert remove_listed(gone, listed_entries(gone) or set()) == [] and not gone.exists()


def test_an_empty_folder_is_new_and_a_foreign_manifest_is_not_ours(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / MANIFEST_NAME).write_text('{"entries": ["x"]}')  # not our kind of record
    (fake / "x").write_text("x")
    assert foreign_entries(fake) == ["x"]


def test_an_output_file_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(InputError, match="must end in .png"):
        check_output_file(tmp_path / "a.jpg", suffixes=(".png",))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_file(tmp_path / "file" / "out.csv")
    assert check_output_file(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"


def test_folder_over_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(InputError, match="taken: exists and is not a folder"), staged_folder(tmp_path / "taken"):
        pass
    assert _names(tmp_path) == ["taken"]
