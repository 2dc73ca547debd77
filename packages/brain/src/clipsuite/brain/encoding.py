"""Voxel-wise encoding models (CLIP -> brain): ridge from stimulus embeddings to every voxel.

Held-out accuracy is the per-voxel Pearson r on test stimuli; when the test stimuli were shown more
than once, the noise ceiling (NSD's ncsnr from the z-scored single trials) normalises it. Maps go
back into the subject's space as NIfTI with the mask's affine, plus a PNG of orthogonal slices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import torch

from clipsuite.brain.data import BrainData, to_volume
from clipsuite.brain.evaluate import ncsnr, noise_ceiling, normalised_r, pearson_columns
from clipsuite.brain.ridge import RidgeModel, fit_ridge_cv
from clipsuite.core.staging import staged_folder
from clipsuite.core.tabular import write_table


@dataclass
class EncodingResult:
    model: RidgeModel
    r: np.ndarray                      # (n_voxels,) Pearson r on the test stimuli
    ceiling: np.ndarray | None = None  # (n_voxels,) noise ceiling, percent of variance
    r_normalised: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        out = {"mean_r": float(np.mean(self.r)), "median_r": float(np.median(self.r)),
               "top_decile_r": float(np.quantile(self.r, 0.9)), "voxels": float(len(self.r))}
        if self.r_normalised is not None:
            valid = np.isfinite(self.r_normalised)
            if valid.any():
                out["median_r_normalised"] = float(np.median(self.r_normalised[valid]))
        return out


def fit_encoding(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 alphas: list[float], cv: str | int = "loo", device: str | None = None,
                 dtype: torch.dtype = torch.float32, single_trials: tuple[np.ndarray, np.ndarray] | None = None,
                 n_repeats: int = 1, on_progress: Callable[[int, int], None] | None = None) -> EncodingResult:
    """Fit features -> voxels on training samples, score on test samples.

    ``single_trials``: ``(responses, stimulus ids)`` of the z-scored test trials, for the noise ceiling
    of test responses averaged over ``n_repeats`` trials.
    """
    model = fit_ridge_cv(train_x, train_y, alphas, cv=cv, device=device, dtype=dtype, on_progress=on_progress)
    pred = model.predict(test_x).cpu()
    r = pearson_columns(pred, test_y)
    result = EncodingResult(model, r)
    if single_trials is not None and n_repeats >= 1:
        result.ceiling = noise_ceiling(ncsnr(*single_trials), n_repeats)
        result.r_normalised = normalised_r(r, result.ceiling)
    return result


def write_maps(result: EncodingResult, data: BrainData, out_dir: str | Path, title: str = "encoding r") -> list[Path]:
    """``r.nii.gz`` (and ``r_normalised``, ``noise_ceiling``), ``alpha.nii.gz``, ``r.png`` and ``metrics.csv``
    (``result.summary()``) in ``out_dir``, all in the mask's space; written in a staging folder and moved in
    only when complete (``out_dir``: new, or written by clipsuite; ``clipsuite.core.outputs``)."""
    assert data.affine is not None
    maps = {"r": result.r, "alpha": result.model.alphas.cpu().double().numpy()}
    if result.ceiling is not None and result.r_normalised is not None:
        maps["noise_ceiling"] = result.ceiling
        maps["r_normalised"] = result.r_normalised
    names = []
    with staged_folder(out_dir, merge=True, command="brain encode") as folder:
        for name, values in maps.items():
            image = nib.Nifti1Image(to_volume(np.asarray(values, dtype=np.float32), data), data.affine)
            image.header.set_xyzt_units("mm")
            nib.save(image, folder / f"{name}.nii.gz")
            names.append(f"{name}.nii.gz")
        plot_slices(folder / "r.nii.gz", folder / "r.png", title)
        names.append("r.png")
        write_table(folder / "metrics.csv", [{"metric": k, "value": f"{v:.6f}"} for k, v in result.summary().items()],
                    ["metric", "value"])
        names.append("metrics.csv")
    return [Path(out_dir) / n for n in names]


def plot_slices(nifti: Path, png: Path, title: str) -> None:
    """Orthogonal slices through the strongest voxel, with nilearn, on no background (subject space)."""
    import matplotlib

    matplotlib.use("Agg")
    from nilearn import plotting

    image = cast(nib.Nifti1Image, nib.load(str(nifti)))  # a NIfTI map written by save_maps
    values = np.nan_to_num(np.asarray(image.dataobj, dtype=np.float32))
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    cut = nib.affines.apply_affine(image.affine, peak)
    vmax = float(max(np.abs(values).max(), 1e-6))
    display = plotting.plot_stat_map(nib.Nifti1Image(values, image.affine), bg_img=None, display_mode="ortho",
                                     cut_coords=cut, title=title, colorbar=True, vmax=vmax, draw_cross=False)
    display.savefig(str(png), dpi=100)
    display.close()
