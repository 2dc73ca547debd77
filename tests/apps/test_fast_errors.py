"""Every command of every app checks its arguments and input paths before importing torch / open_clip:
a missing file answers with one line and exit 2, and torch is never imported (checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MISSING = "/nonexistent/clipsuite-test/x.png"
PROBE = """
import importlib, json, sys
module, argv = sys.argv[1], sys.argv[2:]
app = importlib.import_module(module).app
try:
    app(argv, standalone_mode=True)
    code = 0
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "open_clip": "open_clip" in sys.modules}))
"""
CORE = "clipsuite.cli.main"
ANOMALY = "clipsuite.anomaly_app.main"
MEDICAL = "clipsuite.medical_app.main"
COMMANDS = [
    (CORE, ["zeroshot", MISSING, "--classes", "a,b"]),
    (CORE, ["zeroshot", "/tmp", "--classes", "a,b", "--adapter", MISSING]),
    (CORE, ["embed", MISSING, "-o", "/tmp/clipsuite-never-written"]),
    (CORE, ["train", "/nonexistent/pairs.csv", "-o", "/tmp/clipsuite-never-written"]),
    (CORE, ["index", "build", "/nonexistent/embeddings", "-o", "/tmp/clipsuite-never-written"]),
    (CORE, ["index", "search", "/nonexistent/index", "--text", "a"]),
    (CORE, ["adapt", "train", "--split", "/nonexistent/split.json"]),
    (CORE, ["adapt", "evaluate", "/nonexistent/a.safetensors", "--split", "/nonexistent/split.json"]),
    (ANOMALY, ["detect", MISSING]),
    (ANOMALY, ["evaluate", "/nonexistent/mvtec"]),
    (ANOMALY, ["train", "/nonexistent/mvtec"]),
    (MEDICAL, ["classify", MISSING, "--classes", "a,b"]),
    (MEDICAL, ["biomedcoop", "train", "/nonexistent/s.json", "--descriptions", "/nonexistent/d.json", "-o",
               "/tmp/x.safetensors"]),
    (MEDICAL, ["biomedcoop", "compare", "/nonexistent/s.json", "--descriptions", "/nonexistent/d.json"]),
    (MEDICAL, ["vqa", "train", "/nonexistent/vqa", "-o", "/tmp/clipsuite-never-written"]),
    (MEDICAL, ["vqa", "evaluate", "/nonexistent/run", "/nonexistent/vqa"]),
    (MEDICAL, ["vqa", "ask", "/nonexistent/run", MISSING, "what?"]),
]


@pytest.mark.parametrize(("module", "argv"), COMMANDS, ids=[" ".join(a[:2]) for _, a in COMMANDS])
def test_missing_input_fails_before_torch_is_imported(module: str, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, module, *argv], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 2, "torch": False, "open_clip": False}, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: /nonexistent/"), done.stderr
    assert "not found" in lines[0]
