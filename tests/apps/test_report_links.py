"""Every HTML page the suite writes (the demo report, and the pages its domain steps write: the anomaly
heatmap report, the remote-sensing search page ...) links only to files that exist after the demo folder
is moved into place: no absolute path, nothing inside the staging folder."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import torch

from clipsuite.cli import demo
from clipsuite.cli.demo import DemoSettings, run_demo

torch.set_num_threads(1)  # shared CPUs: one thread each is faster


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"img": "src", "a": "href", "link": "href", "script": "src", "source": "src"}.get(tag)
        self.targets += [value for name, value in attrs if name == wanted and value]


def broken_links(root: Path) -> dict[str, list[str]]:
    """Page (relative to ``root``) -> its links that do not resolve to a file inside ``root``."""
    broken: dict[str, list[str]] = {}
    for page in sorted(root.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            parts = urlsplit(target)
            if parts.scheme or target.startswith("#"):  # an outside address or an anchor: not a file here
                continue
            path = Path(unquote(parts.path))
            resolved = (page.parent / path).resolve()
            if path.is_absolute() or not resolved.is_file() or not resolved.is_relative_to(root.resolve()):
                broken.setdefault(str(page.relative_to(root)), []).append(target)
    return broken


def test_every_link_of_every_report_resolves_after_the_move(tmp_path: Path) -> None:
    out = tmp_path / "clipsuite-demo"
    settings = DemoSettings(output=out, train_images=48, test_images=24, steps=2, batch_size=16)
    summary = run_demo(settings)
    assert [p.name for p in tmp_path.iterdir()] == ["clipsuite-demo"]  # the staging folder is gone
    pages = {str(p.relative_to(out)) for p in out.rglob("*.html")}
    assert "index.html" in pages
    if "anomaly" in summary["domains"]:
        assert "anomaly/report/index.html" in pages
    assert broken_links(out) == {}
    # each domain's section is its table of figures and its pictures, not a dump of its summary
    page = (out / "index.html").read_text(encoding="utf-8")
    for name, result in summary["domains"].items():
        section = demo._domain_section(out, name, result)
        assert section in page
        for key in result["metrics"]:
            assert f"<td>{key}</td>" in section
        for picture in result["pictures"].values():
            assert f"<img src='{name}/{picture}'" in section
        assert "{" not in section  # no JSON


def test_a_link_into_the_staging_folder_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"png")
    staging = tmp_path.parent / ".clipsuite-demo.partial"
    (tmp_path / "index.html").write_text(
        f'<img src="pics/a.png"><img src="{staging}/loss.png"><a href="pics/missing.png">x</a>'
        '<a href="https://example.org/">ok</a><img src="../outside.png">', encoding="utf-8")
    (tmp_path.parent / "outside.png").write_bytes(b"png")
    assert broken_links(tmp_path) == {"index.html": [f"{staging}/loss.png", "pics/missing.png", "../outside.png"]}
