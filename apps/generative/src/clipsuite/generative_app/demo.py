"""The generative step of ``clipsuite demo``: a synthetic VITON-HD folder, a few warping steps, and a
try-on on micro diffusion parts with the tiny transformers CLIP; result pictures and a grid page.

Only the warper is trained here (about a minute on two CPU cores is the budget); the diffusion parts
have random weights and the try-on UNet, EMASC and inversion adapter are untrained, so the painted
region is noise. The step says so in its log, its summary and its page, so no one reads the pictures
as try-on quality (``stages.train_chain`` trains all four stages; see docs/generative.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clipsuite.core.plugins import DemoStepResult

SIZE = (64, 48)
UNTRAINED = "UNTRAINED: random micro diffusion parts, no try-on UNet, EMASC or inversion adapter training"


def run_demo_step(out_dir: Path, log: Callable[[str], None], warp_steps: int = 20,
                  ddim_steps: int = 10) -> DemoStepResult:
    """The demo's step; the tests pass fewer steps (same code path, a few seconds instead of ~40 on a busy CPU)."""
    from clipsuite.core.models import load_model
    from clipsuite.core.staging import atomic_write_text
    from clipsuite.core.train import TrainConfig
    from clipsuite.generative import synthetic
    from clipsuite.generative.data import VitonHD, to_image
    from clipsuite.generative.evaluate import ssim, unit
    from clipsuite.generative.pipeline import SamplingOptions
    from clipsuite.generative.report import grid_html, save_png
    from clipsuite.generative.stages import make_stage_task
    from clipsuite.generative.train import train_stage
    from clipsuite.generative.tryon import StageFiles, TryOnModel

    folder = Path(out_dir)
    log("writing a synthetic VITON-HD folder (6 train, 2 test people)")
    root = synthetic.make_vitonhd(folder / "data", n_train=6, n_test=2, size=SIZE, seed=0)
    clip = load_model("tiny-transformers", device="cpu")
    log(f"training the garment warper {warp_steps} steps (core Trainer)")
    warper_file = folder / "warping.safetensors"
    task = make_stage_task("warping", clip, "micro", SIZE)
    result = train_stage(task, VitonHD(root, "train", size=SIZE),
                         TrainConfig(output_dir=folder / "warping_run", max_steps=warp_steps, batch_size=6, lr=1e-3,
                                     progress=False, precision="fp32", schedule="constant"), warper_file)
    model = TryOnModel.build(clip, "micro", StageFiles(warping=warper_file), SIZE)
    test = VitonHD(root, "test", size=SIZE)
    rows, scores = [], []
    for index in range(len(test)):
        sample = test[index]
        sample.pop("index")
        log(f"try-on {index + 1}/{len(test)}: {ddim_steps} DDIM steps, guidance 2 ({UNTRAINED})")
        out = model.run(sample, "upper_body", SamplingOptions(steps=ddim_steps, guidance=2.0, seed=index))
        name = test.files[index].name
        pics = {"person": sample["image"], "garment": sample["cloth"], "warped garment": out["warped_cloth"][0],
                "result": out["image"][0]}
        rows.append((name, {k: str(save_png(to_image(v), folder / "pictures" / f"{name}_{k.replace(' ', '_')}.png")
                                   .relative_to(folder)) for k, v in pics.items()}))
        scores.append(ssim(unit(out["image"]), unit(sample["image"][None])).value or 0.0)
    page = folder / "tryon.html"
    atomic_write_text(page, grid_html("clipsuite demo: virtual try-on plumbing (UNTRAINED parts)", rows,
                                      [f"Only the warper is trained ({result.step} steps); {UNTRAINED}. "
                                       "The painted region shows the plumbing, not try-on quality."]))
    mean_ssim = round(sum(scores) / len(scores), 4)
    finding = (f"try-on plumbing on {len(test)} synthetic people: warper trained {result.step} steps; "
               f"{UNTRAINED}, so the painted region is noise (pixels outside the mask kept): SSIM to the photo "
               f"{mean_ssim}")
    log(finding)
    return DemoStepResult("Virtual try-on (clipsuite.generative)", [finding], {"ssim": mean_ssim},
                          files={"try-on grid": page.relative_to(folder)},
                          pictures={"try-on result": folder / rows[0][1]["result"]})
