"""Every domain has the same shape, so a sixth one is added by following docs/architecture.md#adding-a-domain.

For each packages/<domain> (all but core): its app exists and declares the command, the ``clipsuite.apps``
and ``clipsuite.demo_steps`` entry points under the domain's name; the workspace root lists both
distributions in ``[tool.uv.sources]`` and both src folders in mypy's path; it has tests, a docs page and a
README tour section; and the installed entry points are found (the umbrella mounts the app).
"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file() and p.name != "core")


def _toml(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_the_domains_are_found() -> None:
    assert DOMAINS == ["anomaly", "brain", "generative", "medical", "remote"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_domain_is_wired_everywhere(domain: str) -> None:
    library = _toml(ROOT / "packages" / domain / "pyproject.toml")["project"]
    app = _toml(ROOT / "apps" / domain / "pyproject.toml")["project"]
    assert library["name"] == f"clipsuite-{domain}" and "clipsuite-core" in library["dependencies"]
    assert app["name"] == f"clipsuite-{domain}-app"
    assert {"clipsuite", f"clipsuite-{domain}"} <= {d.split(">")[0].split("=")[0] for d in app["dependencies"]}
    assert app["scripts"] == {f"clipsuite-{domain}": f"clipsuite.{domain}_app.main:main"}
    assert app["entry-points"]["clipsuite.apps"] == {domain: f"clipsuite.{domain}_app.main:app"}
    assert list(app["entry-points"]["clipsuite.demo_steps"]) == [domain]
    root = _toml(ROOT / "pyproject.toml")["tool"]
    assert {f"clipsuite-{domain}", f"clipsuite-{domain}-app"} <= set(root["uv"]["sources"])
    assert {f"packages/{domain}/src", f"apps/{domain}/src"} <= set(root["mypy"]["mypy_path"])
    assert (ROOT / "tests" / domain).is_dir() and (ROOT / "docs" / f"{domain}.md").is_file()
    assert f"clipsuite-{domain}" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("domain", DOMAINS)
def test_its_entry_points_are_installed(domain: str) -> None:
    assert domain in {e.name for e in entry_points(group="clipsuite.apps")}
    assert domain in {e.name for e in entry_points(group="clipsuite.demo_steps")}


@pytest.mark.parametrize("domain", DOMAINS)
def test_its_app_is_built_by_the_clipsuite_group(domain: str) -> None:
    import typer

    from clipsuite.cli.aliases import ClipsuiteGroup

    (entry,) = [e for e in entry_points(group="clipsuite.apps") if e.name == domain]
    assert isinstance(typer.main.get_command(entry.load()), ClipsuiteGroup)  # retiring names hidden when run alone
