"""The anomaly step of ``clipsuite demo``: a synthetic MVTec-like category, few-shot patch memory on the
offline pretrained backbone when it is cached (else the random ``tiny``), heatmaps and a page in the step's folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clipsuite.core.plugins import DemoStepResult


def run_demo_step(out_dir: Path, log: Callable[[str], None]) -> DemoStepResult:
    from clipsuite.anomaly import synthetic
    from clipsuite.anomaly.data import load_mvtec_category
    from clipsuite.anomaly.evaluate import score_category
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.anomaly.report import write_report
    from clipsuite.core.models import load_model
    from clipsuite.core.pretrain import demo_backbone

    folder = Path(out_dir)
    log("writing a synthetic MVTec-like 'bottle' category")
    category = load_mvtec_category(synthetic.make_category(folder / "data", "bottle", n_train=4, n_test_good=6,
                                                           n_test_defect=3, size=64, seed=0))
    spec, backbone = demo_backbone()
    detector = Detector.create(load_model(spec, device="cpu"), "patch_memory", "bottle")
    log(f"few-shot patch memory (4 normal references) on {backbone}")
    result, sizes = detector.run_category(category, shots=4)
    scored = score_category(category, result, sizes)
    page = write_report(folder / "report", [s.image for s in category.test], result,
                        title="clipsuite demo: anomaly heatmaps")
    metrics = {k: round(v, 4) for k, v in scored.metrics.items()}
    finding = (f"patch memory, 4 normal references, {backbone}, {len(category.test)} test images: "
               f"image AUROC {metrics.get('image_auroc')}, pixel AUROC {metrics.get('pixel_auroc')}")
    log(f"{finding} -> {page.relative_to(folder)}")  # relative: the demo folder is renamed at the end
    # the report's overlays of the first test image (normal) and the last two (defects: they come last)
    heatmaps = sorted((page.parent / "heatmaps").glob("*.png"))
    shown = {f"heatmap {path.stem}": path.relative_to(folder) for path in heatmaps[:1] + heatmaps[-2:]}
    return DemoStepResult("Anomaly detection (clipsuite.anomaly)", [finding], metrics,
                          files={"heatmap report": page.relative_to(folder)}, pictures=shown)
