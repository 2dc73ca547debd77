"""Installing one domain alone: the anomaly app's wheels and what they need (clipsuite-core,
clipsuite-anomaly, the umbrella clipsuite) built with ``uv build``, installed into a fresh virtual env,
its CLI's help and one command on ``tiny``, and no other domain importable there.

Offline: the third-party packages (torch, open_clip ...) are the locked ones already installed in this
environment, put on the new env's path through a folder of links that leaves every clipsuite package out
(the uv cache may have been pruned, and copying torch and CUDA wheels would take minutes); the clipsuite
packages come only from the wheels built here, installed with ``uv pip install --offline --no-deps``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ("clipsuite-core", "clipsuite-anomaly", "clipsuite", "clipsuite-anomaly-app")
OTHER_DOMAINS = ("medical", "remote", "brain", "generative")


def _run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env,
                          cwd=cwd, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]}{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _third_party_links(folder: Path) -> Path:
    """Links to this environment's installed packages, every clipsuite one and every .pth file left out."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if "clipsuite" in name or name.endswith(".pth") or name == "__pycache__":
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
def test_the_anomaly_domain_installs_and_runs_alone(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    wheels = tmp_path / "wheels"
    for package in WHEELS:
        _run(uv, "build", "--offline", "--quiet", "--wheel", "--package", package, "-o", wheels, cwd=ROOT)
    assert len(list(wheels.glob("*.whl"))) == len(WHEELS)
    venv = tmp_path / "venv"
    _run(uv, "venv", "--offline", "--quiet", "-p", sys.executable, venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "_locked_third_party.pth").write_text(f"{_third_party_links(tmp_path / 'deps')}\n")
    _run(uv, "pip", "install", "--offline", "--quiet", "--no-deps", "-p", python, *sorted(wheels.glob("*.whl")))

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1"}
    # every clipsuite requirement of the installed wheels is met, and only the anomaly domain is there
    check = _run(python, "-c", """
import importlib.metadata as md, importlib.util, re
from clipsuite.core.plugins import Registry
names = ("clipsuite-core", "clipsuite-anomaly", "clipsuite", "clipsuite-anomaly-app")
for name in names:
    for req in md.requires(name) or []:
        md.version(re.split(r"[<>=!~ ;\\[]", req, maxsplit=1)[0])  # raises if a dependency is missing
import clipsuite.anomaly, clipsuite.anomaly_app.main
assert "site-packages" in clipsuite.anomaly.__file__, clipsuite.anomaly.__file__  # the wheel, not the checkout
for other in ("medical", "remote", "brain", "generative"):
    assert importlib.util.find_spec(f"clipsuite.{other}") is None, other
print("apps:", sorted(Registry("clipsuite.apps", "app").names()))
from clipsuite.anomaly import synthetic  # data for the command below, written here to spare a torch import
synthetic.make_category("data", "bottle", n_train=2, n_test_good=2, n_test_defect=1, size=32, seed=0)
""", env=env, cwd=tmp_path)
    assert "apps: ['anomaly']" in check
    assert "detect" in _run(venv / "bin" / "clipsuite-anomaly", "--help", env=env, cwd=tmp_path)
    umbrella = _run(venv / "bin" / "clipsuite", "--help", env=env, cwd=tmp_path)
    assert "anomaly" in umbrella and not any(f" {d} " in umbrella for d in OTHER_DOMAINS)

    # one real command on tiny: the synthetic MVTec-like category, few-shot patch memory, a report
    _run(venv / "bin" / "clipsuite-anomaly", "detect", "data/bottle/test", "--method", "patch_memory",
         "--reference", "data/bottle/train/good", "--model", "tiny", "--out", "report", env=env, cwd=tmp_path)
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "scores.csv").is_file()
