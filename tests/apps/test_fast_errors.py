"""Every command of every app checks its arguments and input paths before importing torch / open_clip:
a missing file answers with one line and exit 2, and torch is never imported (checked in a fresh process)."""

from __future__ import annotations

from typing import Any

import pytest

MISSING = "/nonexistent/clipsuite-test/x.png"


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
def test_missing_input_fails_before_torch_is_imported(module: str, argv: list[str], before_torch: Any) -> None:
    report, lines = before_torch(module, argv)
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: /nonexistent/"), lines
    assert "not found" in lines[0]


def test_one_class_is_refused_before_torch(before_torch: Any) -> None:
    report, lines = before_torch(CORE, ["zeroshot", "/tmp", "--classes", "cat"])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "give at least two classes, got 1 ('cat')" in lines[0], lines


def test_medical_one_class_is_refused_before_torch(before_torch: Any) -> None:
    report, lines = before_torch(MEDICAL, ["classify", "/tmp", "--classes", "lesion"])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "give at least two classes, got 1 ('lesion')" in lines[0], lines
