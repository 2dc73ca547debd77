"""Reading the Natural Scenes Dataset as it is downloaded (a mini tree in the release's layout): trial ->
73k id -> brick row, the shared-1000 split, sessions found on disk, lazy reads."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from scipy.io import loadmat

from clipsuite.brain import nsd, nsd_layout, prep
from clipsuite.brain.config import load_config
from clipsuite.core.errors import InputError

CAPTIONS = ["coco/annotations/captions_train2017.json", "coco/annotations/captions_val2017.json"]


def _config(root: Path, name: str = "cfg.json", **fields) -> Path:
    path = root / name
    path.write_text(json.dumps({"format": "nsd", "root": ".", "subject": 1, "captions": CAPTIONS, **fields}))
    return path


def _truth(path: Path) -> np.ndarray:
    """The 73k id each trial of a session showed: the generator wrote it into voxel (0, 0, 0)."""
    if path.name.endswith(".hdf5"):
        with h5py.File(path, "r") as handle:
            return np.asarray(handle["betas"][:, 0, 0, 0])
    return np.asarray(nib.load(path).dataobj[0, 0, 0, :])


def _raw(path: Path, ijk: np.ndarray) -> np.ndarray:
    """One voxel's betas over a session's trials, read in full with the file's own tools."""
    if path.name.endswith(".hdf5"):
        with h5py.File(path, "r") as handle:
            return np.asarray(handle["betas"][:, ijk[2], ijk[1], ijk[0]], dtype=np.float64)
    return np.asarray(nib.load(path).dataobj[ijk[0], ijk[1], ijk[2], :], dtype=np.float64)


@pytest.mark.parametrize("subject", [1, 2, 5])
def test_trial_to_73k_id_to_brick_row(nsd_root, subject):
    config = load_config(_config(nsd_root, f"s{subject}.json", subject=subject))
    data, stimuli = nsd.load_nsd(config)
    source = config.nsd
    assert source is not None and data.responses.shape[0] == len(source.betas) * 60
    with h5py.File(nsd_root / nsd_layout.BRICK, "r") as handle:
        brick = handle["imgBrick"]
        for index, path in enumerate(source.betas):
            shown = data.stimulus[index * 60:(index + 1) * 60]
            np.testing.assert_array_equal(shown.astype(int), _truth(path))  # trial -> 73k id
            assert (data.session[index * 60:(index + 1) * 60] == index + 1).all()
            for k in (0, 17, 59):
                stimulus = stimuli[shown[k]]
                assert stimulus.image == nsd_root / nsd_layout.BRICK and stimulus.brick_row == int(shown[k]) - 1
                red, green, _ = brick[stimulus.brick_row, 0, 0]  # 73k id -> the picture of that id
                assert 256 * int(red) + int(green) == int(shown[k])
            for k in (0, 100, data.n_voxels - 1):  # masked voxels in the mask's order, / 300
                np.testing.assert_allclose(data.responses[index * 60:(index + 1) * 60, k],
                                           _raw(path, data.voxels[k]) / 300, atol=1e-6)
    roi = np.asarray(nib.load(source.roi_path).dataobj)
    np.testing.assert_array_equal(data.voxels, np.argwhere(roi > 0))
    assert source.betas[0].name.endswith(".hdf5" if subject == 2 else ".nii.gz")


def test_shared_1000_are_the_test_set_with_repeats_averaged(nsd_root):
    design = loadmat(nsd_root / nsd_layout.DESIGN)
    shared = {str(int(v)) for v in design["sharedix"].ravel()}
    config = load_config(_config(nsd_root))
    data, stimuli = nsd.load_nsd(config)
    train, test = prep.prepare(data, stimuli, prep.PrepConfig())
    assert set(test.stimulus) == shared & set(data.stimulus) and len(test.stimulus) == 20
    assert not set(train.stimulus) & shared and (train.repeats == 1).all()
    assert (test.repeats == 3).all()  # the mini design shows each shared image 3 times in sessions 1-4
    assert {s.split for s in stimuli.values() if s.id in shared} == {"test"}
    # captions: the lowest annotation id of the image's COCO id (nsd_stim_info_merged.csv: nsdId is 0-based)
    sid = test.stimulus[0]
    rows = (nsd_root / nsd_layout.STIM_INFO).read_text().splitlines()
    coco = int(rows[int(sid)].split(",")[1])
    notes = [n for f in CAPTIONS for n in json.loads((nsd_root / f).read_text())["annotations"]
             if n["image_id"] == coco]
    assert stimuli[sid].caption == min(notes, key=lambda n: n["id"])["caption"]


def test_sessions_are_found_on_disk_and_selected(nsd_root):
    for subject, found in ((1, (1, 2, 3, 4)), (5, (1, 2))):
        source = load_config(_config(nsd_root, "all.json", subject=subject)).nsd
        assert source is not None and source.sessions == source.available == found
    source = load_config(_config(nsd_root, "some.json", sessions="2,4")).nsd
    assert source is not None and source.sessions == (2, 4)
    order = loadmat(nsd_root / nsd_layout.DESIGN)["masterordering"].ravel().astype(int)
    subjectim = loadmat(nsd_root / nsd_layout.DESIGN)["subjectim"].astype(int)
    expected = subjectim[0, np.concatenate([order[60:120], order[180:240]]) - 1]
    np.testing.assert_array_equal(source.images, expected)
    data, _ = nsd.load_nsd(load_config(nsd_root / "some.json"))
    assert sorted(set(data.session.tolist())) == [2, 4]
    np.testing.assert_array_equal(data.stimulus[60:].astype(int), _truth(source.betas[1]))
    assert [nsd_layout.parse_sessions(v, "s") for v in ("1-3,5", [2, 1], 4, "all")] == [(1, 2, 3, 5), (1, 2), (4,),
                                                                                          None]
    for bad in ("3-1", "x", [1.5], True, "0-2"):
        with pytest.raises(InputError, match="s"):
            nsd_layout.parse_sessions(bad, "s")


def _working_peak(config: Path) -> tuple[float, int]:
    """Peak traced memory while loading beyond the responses kept, and the responses' bytes."""
    tracemalloc.start()
    data, _ = nsd.load_nsd(load_config(config))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - data.responses.nbytes, data.responses.nbytes


def test_reads_are_lazy(nsd_root, monkeypatch):
    # betas: a session is read in chunks of volumes into one preallocated array, so the memory beyond the
    # result stays that of one session's chunks whatever the number of sessions
    _working_peak(_config(nsd_root, "one.json", sessions="1"))  # first imports (scipy.io ...) are not the reader's
    one, _ = _working_peak(nsd_root / "one.json")
    four, kept = _working_peak(_config(nsd_root, "four.json", sessions="1-4"))
    full_sessions = 4 * 60 * int(np.prod(nib.load(load_config(nsd_root / "four.json").betas[0]).shape[:3])) * 4
    assert four < 1.5 * one and four < full_sessions, (one, four, kept, full_sessions)
    # the brick: embedded a batch of rows at a time, straight from the HDF5 array
    seen: list[int] = []
    real = nsd.read_brick

    def spy(brick, rows):
        seen.append(len(rows))
        return real(brick, rows)

    monkeypatch.setattr(nsd, "read_brick", spy)
    rows = list(range(150, 0, -1))
    batches = list(nsd.brick_batches(nsd_root / nsd_layout.BRICK, rows, batch=32))
    assert seen == [32, 32, 32, 32, 22] and [len(b) for b in batches] == seen
    with h5py.File(nsd_root / nsd_layout.BRICK, "r") as handle:
        np.testing.assert_array_equal(np.concatenate(batches), handle["imgBrick"][sorted(rows)][::-1])


def test_bad_trees_name_the_file(nsd_root, tmp_path):
    cfg = tmp_path / "c.json"

    def refused(match: str, **fields) -> None:
        cfg.write_text(json.dumps({"format": "nsd", "root": str(nsd_root), "subject": 1, **fields}))
        with pytest.raises(InputError, match=match):
            load_config(cfg)

    refused(r"subj03: not found \(subject 3's betas; found: subj01, subj02, subj05\)", subject=3)
    refused(r"subj01/func1mm: not found \(space 'func1mm' of subject 1; found: func1pt8mm\)", space="func1mm")
    refused(r"subject 1 has sessions 1-4 here, 'sessions' asks for 5 \(and 2 more\)", sessions="1-7")
    refused(r"roi/V1\.nii\.gz: not found", roi="V1")
    refused(r"'subject' must be a number 1-8", subject=9)
    refused(r"captions_val2017\.json: no caption for COCO image \d+ \(NSD image \d+\)", captions=[str(nsd_root /
                                                                                               CAPTIONS[1])])


def test_bad_files_in_a_tree_name_the_file(nsd_root, tmp_path):
    import shutil

    from scipy.io import savemat

    root = tmp_path / "nsd"
    shutil.copytree(nsd_root, root, ignore=lambda d, names: [n for n in names if n in ("subj01", "subj02")])
    cfg = _config(root, subject=5)
    notes = tmp_path / "no_annotations.json"
    notes.write_text(json.dumps({"images": []}))
    cfg.write_text(json.dumps({"format": "nsd", "root": ".", "subject": 5, "captions": [str(notes)]}))
    with pytest.raises(InputError, match=r"no_annotations\.json: no 'annotations' list"):
        load_config(cfg)
    cfg = _config(root, subject=5)
    betas = load_config(cfg).betas[1]
    img = nib.load(betas)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :59], img.affine), betas)
    with pytest.raises(InputError, match=r"betas_session02\.nii\.gz: has 59 volumes, the design has 60 trials"):
        load_config(cfg)
    shutil.copy(nsd_root / nsd_layout.SUBJECT_BETAS.format(subject=5) / "func1pt8mm" / nsd_layout.DEFAULT_GLM
                / betas.name, betas)
    with h5py.File(root / nsd_layout.BRICK, "w") as handle:
        handle.create_dataset("imgBrick", data=np.zeros((5, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"nsd_stimuli\.hdf5: 'imgBrick' holds 5 images, the design shows image"):
        load_config(cfg)
    design = loadmat(nsd_root / nsd_layout.DESIGN)
    savemat(root / nsd_layout.DESIGN, {k: design[k] for k in ("masterordering", "subjectim")})
    with pytest.raises(InputError, match=r"nsd_expdesign\.mat: no 'sharedix'"):
        load_config(cfg)
