"""The medical step of ``clipsuite demo``: offline, on the pretrained backbone when it is cached (else the
random tiny model), in well under a minute.

Writes a synthetic CT volume (NIfTI, stored LPS so it must be reoriented) and a VQA-RAD-style
question set, draws the volume's slices in three CT windows into a PNG, then trains a small QCR head
briefly and reports its held-out accuracy against always giving the most common answer.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from clipsuite.core.plugins import DemoStepResult


def montage(volume: Any, path: pathlib.Path, n: int = 6) -> pathlib.Path:
    """Rows: soft-tissue, lung and bone windows; columns: ``n`` evenly spaced axial slices."""
    import numpy as np
    from PIL import Image

    from clipsuite.medical.volumes import volume_to_rgb

    rgb, _ = volume_to_rgb(volume, n=n, mode="windows")  # [S, 3, H, W]: the channels are the three windows
    rows = [np.concatenate(list(rgb[:, c].numpy()), axis=1) for c in range(3)]
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    image = Image.fromarray(grid)
    image = image.resize((image.width * 3, image.height * 3), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def run_demo_step(out_dir: pathlib.Path, log: Callable[[str], None]) -> DemoStepResult:
    import torch

    from clipsuite.core.pretrain import demo_backbone
    from clipsuite.core.train import TrainConfig
    from clipsuite.medical import synthetic
    from clipsuite.medical.data import load_vqa_rad
    from clipsuite.medical.evaluate import vqa_accuracy
    from clipsuite.medical.train_vqa import VQASettings, train_vqa
    from clipsuite.medical.volumes import load_volume

    out_dir = pathlib.Path(out_dir)
    torch.manual_seed(0)
    hu = synthetic.phantom_volume("chest", "tumor", "left", (48, 48, 24), seed=3)
    nifti = synthetic.write_nifti(out_dir / "chest_phantom.nii.gz", hu, orientation="LPS")
    volume = load_volume(nifti)
    picture = montage(volume, out_dir / "chest_windows.png")
    volume_line = f"CT phantom {volume.shape} spacing {volume.spacing}, drawn in soft tissue / lung / bone windows"
    log(f"{volume_line} -> {picture.name}")

    synthetic.write_vqa_rad(out_dir / "vqa_rad", n_images=24, seed=1)
    train, test = load_vqa_rad(out_dir / "vqa_rad", "train"), load_vqa_rad(out_dir / "vqa_rad", "test")
    settings = VQASettings(head="qcr", patch_tokens=False, word_dim=32, hidden=48, ae_size=32, ae_channels=8)
    config = TrainConfig(epochs=12, batch_size=32, lr=3e-3, optimizer="adam", progress=False, log_every=100,
                         checkpoint_every=10**9)
    spec, backbone = demo_backbone()
    log(f"VQA image features from {backbone}")
    run = train_vqa(train, out_dir / "vqa_run", spec, None, settings, config, test, device="cpu")
    majority = max(sum(s.answer == a for s in test) for a in {s.answer for s in test}) / len(test) * 100
    # per-type floor: the most common answer within each question type
    floor = vqa_accuracy([run.answers.index(_most_common(test, s.answer_type)) for s in test],
                         [run.answers.index(s.answer) for s in test], [s.answer_type == "CLOSED" for s in test])
    metrics = run.metrics
    vqa_line = (f"QCR VQA on {len(test)} held-out questions: open {metrics['open']:.1f}%, closed "
                f"{metrics['closed']:.1f}%, overall {metrics['overall']:.1f}% (most common answer per type: "
                f"{floor['overall']:.1f}%), on {backbone}: {_against_floor(metrics['overall'], floor['overall'])}")
    log(vqa_line)
    return DemoStepResult("Medical imaging (clipsuite.medical)", [volume_line, vqa_line],
                          {"vqa_open": metrics["open"], "vqa_closed": metrics["closed"],
                           "vqa_overall": metrics["overall"], "vqa_majority_overall": majority,
                           "vqa_per_type_floor": floor["overall"]},
                          files={"CT volume (NIfTI)": nifti.relative_to(out_dir)},
                          pictures={"CT windows": picture.relative_to(out_dir)})


def _against_floor(overall: float, floor: float) -> str:
    """Say plainly whether the model beat answering the most common answer of each question type."""
    if overall > floor + 0.05:
        return f"{overall - floor:.1f} points above that floor"
    if overall >= floor - 0.05:
        return "at that floor: on this little data the head learnt no more than the most common answers"
    return f"{floor - overall:.1f} points below that floor"


def _most_common(samples: list[Any], answer_type: str) -> str:
    answers = [s.answer for s in samples if s.answer_type == answer_type]
    return max(set(answers), key=answers.count)
