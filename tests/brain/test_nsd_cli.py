"""`clipsuite-brain nsd` and the NSD config in fit/evaluate: the same decoder as hand-written tables on the
same data; bad trees answered in one line, exit 2, before torch, nothing written."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from typer.testing import CliRunner

from clipsuite.brain import nsd, nsd_layout
from clipsuite.brain.config import load_config
from clipsuite.brain_app.main import app

runner = CliRunner()
CAPTIONS = ["coco/annotations/captions_train2017.json", "coco/annotations/captions_val2017.json"]


def _tables(config, folder):
    """The hand-written route: trials.tsv, stimuli.csv and one PNG per picture, for the same betas and ROI."""
    loaded = load_config(config)
    source = loaded.nsd
    data, stimuli = nsd.load_nsd(loaded)
    (folder / "img").mkdir(parents=True)
    with h5py.File(source.brick, "r") as handle:
        for sid, stimulus in stimuli.items():
            Image.fromarray(handle["imgBrick"][stimulus.brick_row]).save(folder / "img" / f"{sid}.png")
    with open(folder / "trials.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["session", "trial", "stimulus"])
        writer.writerows((s, t % 60, sid) for t, (s, sid) in enumerate(zip(data.session, data.stimulus)))
    with open(folder / "stimuli.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "image", "caption", "split"])
        writer.writerows((sid, f"img/{sid}.png", s.caption, s.split) for sid, s in stimuli.items())
    table = folder / "tables.json"
    table.write_text(json.dumps({"format": "nifti", "mask": str(source.roi_path), "betas": [str(p) for p in
                                 source.betas], "trials": "trials.tsv", "beta_scale": 300, "stimuli": "stimuli.csv"}))
    return table


def _ok(argv):
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    return result


def _metrics(path):
    return {row["metric"]: float(row["value"]) for row in csv.DictReader(open(path))}


def test_nsd_config_decodes_as_the_hand_written_tables(nsd_root, tmp_path):
    config = tmp_path / "subj01.json"
    result = _ok(["nsd", "--root", str(nsd_root), "--subject", "1", "--captions", str(nsd_root / CAPTIONS[0]),
                  "--captions", str(nsd_root / CAPTIONS[1]), "-o", str(config)])
    assert "sessions 1-4 of 1-4 on disk, 240 trials" in " ".join(result.output.split())
    written = json.loads(config.read_text())
    assert written["format"] == "nsd" and written["sessions"] == "1-4" and written["subject"] == 1
    tables = _tables(config, tmp_path / "tables")
    common = ["--alphas", "1:1e5:8", "--model", "tiny", "--device", "cpu", "--cache", str(tmp_path / "cache")]
    for name, dataset in (("nsd", config), ("tables", tables)):
        _ok(["fit", str(dataset), "-o", str(tmp_path / f"dec_{name}"), *common])
    for space in ("image", "text"):
        ours, theirs = (load_file(tmp_path / f"dec_{n}" / f"{space}.safetensors") for n in ("nsd", "tables"))
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    meta = [json.loads((tmp_path / f"dec_{n}" / "decoder.json").read_text()) for n in ("nsd", "tables")]
    assert meta[0]["voxels"] == meta[1]["voxels"] and meta[0]["train_stimuli"] == meta[1]["train_stimuli"]
    scores = {}
    for name, dataset, decoder in (("nsd", config, "nsd"), ("tables", tables, "tables"), ("cross", config, "tables")):
        _ok(["evaluate", str(dataset), "-d", str(tmp_path / f"dec_{decoder}"), "-o", str(tmp_path / f"{name}.csv"),
             "--device", "cpu", "--cache", str(tmp_path / "cache")])
        scores[name] = _metrics(tmp_path / f"{name}.csv")
    assert scores["nsd"].keys() == scores["tables"].keys()
    for key, value in scores["nsd"].items():
        assert abs(value - scores["tables"][key]) < 1e-4 and abs(value - scores["cross"][key]) < 1e-4, key
    assert scores["nsd"]["image_n_way"] == 20 and scores["nsd"]["image_pairwise"] > 0.8


def _bad_tree(nsd_root, folder):
    """Subject 5's part of the mini tree, with a brick of 2D pictures (no colour axis)."""
    shutil.copytree(nsd_root, folder, ignore=lambda d, names: [n for n in names if n in ("subj01", "subj02")
                                                               or n.endswith(".json") and "captions" not in n])
    with h5py.File(folder / nsd_layout.BRICK, "w") as handle:
        handle.create_dataset("imgBrick", data=np.zeros((700, 8, 8), dtype=np.uint8))
    return folder


def test_bad_input_one_line_before_torch_nothing_written(nsd_root, tmp_path, before_torch):
    bad = _bad_tree(nsd_root, tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other_captions.json"
    other.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1, "id": 1, "caption": "a cat"}]}))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": "nsd", "root": str(bad), "subject": 5, "captions": [str(other)]}))
    out = tmp_path / "out.json"
    base = ["nsd", "--root", str(nsd_root), "-o", str(out)]
    cases = [
        (["nsd", "--root", str(tmp_path / "empty"), "--subject", "1", "-o", str(out)],
         "nsd_expdesign.mat: not found"),
        ([*base, "--subject", "3"], "subj03: not found (subject 3's betas; found: subj01, subj02, subj05)"),
        ([*base, "--subject", "1", "--space", "func1mm"], "func1mm: not found (space 'func1mm'"),
        ([*base, "--subject", "5", "--sessions", "1-3"], "subject 5 has sessions 1-2 here, 'sessions' asks for 3"),
        ([*base, "--subject", "5", "--sessions", "3-1"], "--sessions must be like"),
        ([*base, "--subject", "5", "--captions", str(other)], "other_captions.json: no caption for COCO image"),
        (["nsd", "--root", str(bad), "--subject", "5", "-o", str(out)],
         "nsd_stimuli.hdf5: 'imgBrick' is (700, 8, 8) uint8, expected images x height x width x 3"),
        (["fit", str(broken), "-o", str(tmp_path / "dec")], "nsd_stimuli.hdf5: 'imgBrick' is (700, 8, 8)"),
        (["nsd", "--root", str(nsd_root), "--subject", "1", "-o", str(tmp_path)], "is a folder"),
    ]
    for argv, message in cases:
        report, lines = before_torch("clipsuite.brain_app.main", argv)
        assert report == {"code": 2, "torch": False, "open_clip": False}, (argv, lines)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, lines)
    assert not out.exists() and not (tmp_path / "dec").exists()
