"""Reading NIfTI beta series and GOD HDF5; splits, z-scoring and repetitions; bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from clipsuite.brain import data, prep
from clipsuite.brain.god import load_god, write_god
from clipsuite.core.errors import InputError


def _copy(subject: Path, tmp_path: Path) -> Path:
    shutil.copytree(subject.parent, tmp_path / "s", ignore=shutil.ignore_patterns("stimuli"))
    return tmp_path / "s" / "dataset.json"


def test_reads_masked_trials_with_scale(subject):
    loaded = data.load_subject(subject)
    raw = json.loads(subject.read_text())
    trials = [line.split("\t") for line in (subject.parent / "trials.tsv").read_text().splitlines()[1:]]
    assert loaded.responses.shape[0] == len(trials) == 240 + 40 * 3
    assert loaded.dropped == {"nan": 0, "constant": 3}
    # row 5 of the data is session 1 volume trials[5][1]; compare three voxels with nibabel directly
    session, volume = int(trials[5][0]), int(trials[5][1])
    full = nib.load(subject.parent / raw["betas"][session - 1]).get_fdata()[..., volume] / 300
    for k in (0, 7, 100):
        assert loaded.responses[5, k] == pytest.approx(full[tuple(loaded.voxels[k])], abs=1e-6)
    assert loaded.stimulus[5] == trials[5][2]
    np.testing.assert_array_equal(loaded.affine, nib.load(subject.parent / "mask.nii.gz").affine)


def test_header_scale_factor_is_applied(tmp_path):
    mask = np.ones((2, 2, 2), dtype=np.uint8)
    raw = np.arange(2 * 2 * 2 * 3, dtype=np.int16).reshape(2, 2, 2, 3) * 10 - 40
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.25, 1.0)
    nib.save(img, tmp_path / "b.nii.gz")
    values = data.read_session(tmp_path / "b.nii.gz", mask.astype(bool), np.eye(4), [2, 0])
    expected = raw.reshape(-1, 3)[:, [2, 0]].T * 0.25 + 1.0
    np.testing.assert_allclose(values, expected)


def _rewrite(path: Path, **changes) -> None:
    img = nib.load(path)
    volume = np.asarray(img.dataobj)
    affine = changes.get("affine", img.affine)
    if "volume" in changes:
        volume = changes["volume"](volume)
    nib.save(nib.Nifti1Image(volume, affine), path)


def test_mask_grid_mismatch_names_the_file(subject, tmp_path):
    config = _copy(subject, tmp_path)
    _rewrite(config.parent / "betas_session02.nii.gz", volume=lambda v: v[:-1])
    with pytest.raises(InputError, match=r"betas_session02\.nii\.gz: volume grid .* differs from the mask"):
        data.load_subject(config)


def test_affine_mismatch_names_the_file(subject, tmp_path):
    config = _copy(subject, tmp_path)
    _rewrite(config.parent / "betas_session01.nii.gz", affine=np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(InputError, match=r"betas_session01\.nii\.gz: affine differs"):
        data.load_subject(config)


def test_nan_voxels_are_dropped_and_counted(subject, tmp_path):
    config = _copy(subject, tmp_path)
    truth = data.load_subject(subject)
    path = config.parent / "betas_session03.nii.gz"
    img = nib.load(path)
    volume = img.get_fdata(dtype=np.float32)
    for ijk in truth.voxels[:2]:
        volume[tuple(ijk)][4] = np.nan
    nib.save(nib.Nifti1Image(volume, img.affine), path)
    loaded = data.load_subject(config)
    assert loaded.dropped == {"nan": 2, "constant": 3}
    assert loaded.n_voxels == truth.n_voxels - 2


def test_table_referencing_missing_trials(subject, tmp_path):
    config = _copy(subject, tmp_path)
    table = config.parent / "trials.tsv"
    table.write_text(table.read_text() + "2\t999\ts0001\n")
    with pytest.raises(InputError, match=r"betas_session02\.nii\.gz: has \d+ volumes but the trial table "
                                         r"references volume 999"):
        data.load_subject(config)
    table.write_text("session\ttrial\tstimulus\n4\t0\ts0001\n")
    with pytest.raises(InputError, match=r"trials\.tsv line 2: session 4 is outside 1\.\.3"):
        data.load_subject(config)


def test_malformed_config(tmp_path):
    (tmp_path / "bad.json").write_text("{\"format\": \"nifti\", ")
    with pytest.raises(InputError, match=r"bad\.json: malformed JSON"):
        data.load_config(tmp_path / "bad.json")
    (tmp_path / "missing.json").write_text(json.dumps({"mask": "m.nii.gz", "betas": ["b.nii.gz"], "trials": "t.tsv"}))
    with pytest.raises(InputError, match=r"missing\.json: betas\[0\] names .*b\.nii\.gz, which does not exist"):
        data.load_config(tmp_path / "missing.json")


def test_split_zscore_repetitions(subject):
    loaded = data.load_subject(subject)
    stimuli = prep.read_stimuli(data.load_config(subject).stimuli)
    train, test = prep.split_trials(loaded.stimulus, 0.25, seed=3)
    assert not set(loaded.stimulus[train]) & set(loaded.stimulus[test])
    # the stimulus table's split wins when asked
    tr, te = prep.prepare(loaded, stimuli, prep.PrepConfig())
    assert set(te.stimulus) == {s.id for s in stimuli.values() if s.split == "test"}
    assert (te.repeats == 3).all() and (tr.repeats == 1).all()
    # training statistics only: changing test trials leaves every z-scored value unchanged
    train_mask = ~np.isin(loaded.stimulus, te.stimulus)
    z = prep.ZScore.fit(loaded, train_mask).apply(loaded)
    np.testing.assert_allclose(z[train_mask].mean(0), 0, atol=1e-4)
    loaded.responses[~train_mask] += 100.0
    z2 = prep.ZScore.fit(loaded, train_mask).apply(loaded)
    np.testing.assert_array_equal(z2[train_mask], z[train_mask])
    loaded.responses[~train_mask] -= 100.0
    # per session: each session's training trials are centred on their own
    zs = prep.ZScore.fit(loaded, train_mask, per_session=True).apply(loaded)
    for sid in np.unique(loaded.session):
        rows = train_mask & (loaded.session == sid)
        np.testing.assert_allclose(zs[rows].mean(0), 0, atol=1e-4)
    # average = the mean of a stimulus's z-scored trials
    sid = te.stimulus[0]
    np.testing.assert_allclose(te.responses[0], z[loaded.stimulus == sid].mean(0), atol=1e-5)


def test_god_hdf5_matches_nifti(subject, tmp_path):
    loaded = data.load_subject(subject)
    labels = np.array([1000000 + int(s[1:]) / 1000 for s in loaded.stimulus])
    dtype = np.where(np.char.startswith(loaded.stimulus.astype(str), "s02"), 2, 1)
    path = write_god(tmp_path / "sub.h5", loaded.responses, labels, dtype, loaded.session, coords=loaded.voxels)
    config = data.DatasetConfig(path=tmp_path / "god.json", format="god", h5=path)
    god = load_god(config, block=50)
    np.testing.assert_array_equal(god.responses, loaded.responses)
    np.testing.assert_array_equal(god.voxels, loaded.voxels)
    assert god.stimulus[0] == np.format_float_positional(labels[0], trim="-")
    only_test = load_god(data.DatasetConfig(path=config.path, format="god", h5=path, data_types=(2,)))
    assert len(only_test.responses) == int((dtype == 2).sum())
    with pytest.raises(InputError, match=r"sub\.h5: no ROI 'ROI_V1'"):
        load_god(data.DatasetConfig(path=config.path, format="god", h5=path, roi="ROI_V1"))
