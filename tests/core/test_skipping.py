"""The shared skip|fail policy of every folder command, and the one progress-bar rule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.core.images import load_image
from clipsuite.core.progress import progress_bar, progress_enabled
from clipsuite.core.skipping import SkipLog, check_on_error, read_each


def _folder(tmp_path: Path) -> list[Path]:
    good = []
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(tmp_path / f"ok{i}.png")
        good.append(tmp_path / f"ok{i}.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return [good[0], tmp_path / "bad.png", good[1]]


def test_skip_keeps_the_readable_files_and_names_the_others(tmp_path: Path) -> None:
    paths = _folder(tmp_path)
    log = SkipLog("skip")
    kept, images = read_each(paths, load_image, log, "images")
    assert kept == [paths[0], paths[2]] and [im.getpixel((0, 0)) for im in images] == [(0, 0, 0), (100, 0, 0)]
    assert [s.path for s in log.skipped] == [str(paths[1])] and len(log) == 1
    assert log.skipped[0].reason.startswith(f"{paths[1]}: ")
    assert log.summary("image") == f"skipped 1 unreadable image: {log.skipped[0].reason}"
    assert log.skipped[0].as_dict() == {"path": str(paths[1]), "reason": log.skipped[0].reason}


def test_fail_raises_the_reader_error_and_all_bad_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    paths = _folder(tmp_path)
    with pytest.raises(InputError, match="bad.png"):
        read_each(paths, load_image, SkipLog("fail"))
    with pytest.raises(InputError, match="none of the 1 images could be read .first: .*bad.png"):
        read_each([paths[1]], load_image, SkipLog("skip"), "images")
    with pytest.raises(InputError, match="on_error must be 'skip' or 'fail', got 'ignore'"):
        check_on_error("ignore")
    log = SkipLog("fail")
    with pytest.raises(InputError, match="^x.png: broken$"):
        log.record("x.png", "x.png: broken")
    assert SkipLog().summary() == ""


def test_a_bug_in_a_reader_is_not_swallowed_as_a_skip(tmp_path: Path) -> None:
    def buggy(path: Path) -> None:
        raise KeyError(path)

    with pytest.raises(KeyError):
        read_each([tmp_path / "a.png"], buggy, SkipLog("skip"))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal() -> None:
    assert progress_enabled(True, _Terminal()) is True
    assert progress_enabled(False, _Terminal()) is False
    assert progress_enabled(True, io.StringIO()) is False
    log, term = io.StringIO(), _Terminal()
    for stream in (log, term):
        with progress_bar(3, "work", file=stream) as bar:
            bar.update(3)
    assert log.getvalue() == "" and "work" in term.getvalue()


def test_embed_writes_no_bar_into_a_redirected_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from clipsuite.core.embed import EmbedConfig, embed_images
    from clipsuite.core.models import load_model

    torch.manual_seed(0)
    model = load_model("tiny", device="cpu")
    folder = tmp_path / "imgs"
    folder.mkdir()
    _folder(folder)
    capfd.readouterr()
    result = embed_images(model, folder, tmp_path / "emb", EmbedConfig(num_workers=0, progress=True))
    assert result.count == 2 and [s["path"] for s in result.skipped] == [str(folder / "bad.png")]
    assert result.skipped[0]["id"] == 0  # the input position (bad.png sorts first)
    assert "embedding" not in capfd.readouterr().err
