"""``clipsuite-anomaly`` (also ``clipsuite anomaly``): detect, evaluate, train.

Thin: parse options, call ``clipsuite.anomaly``, print. All logic a library user would want lives there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clipsuite.cli.common import cli_errors, console, err_console, fail, need, need_some, progress
from clipsuite.cli.train_report import report_training
from clipsuite.core.outputs import check_output_dir, check_output_file

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel
    from clipsuite.core.skipping import Skipped

app = typer.Typer(name="anomaly", help="Zero- and few-shot industrial anomaly detection (WinCLIP, AnomalyCLIP, "
                  "AdaptCLIP-style adapters, patch memory).", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)

DEFAULT_MODEL = "ViT-B-16-plus-240"
DEFAULT_PRETRAINED = "laion400m_e31"

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Backbone: open_clip name, preset, folder or 'tiny'.")]
PretrainedOpt = Annotated[str | None, typer.Option(help="open_clip pretrained tag (default laion400m_e31 for "
                                                           "the default backbone).")]
MethodOpt = Annotated[str, typer.Option(help="An installed method: winclip, patch_memory, anomalyclip, adaptclip ... "
                                             "(`methods` lists them).")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available)")]
ImageSizeOpt = Annotated[int | None, typer.Option(
    "--image-size", min=16, help="Input size in px (the position grid is resampled): the papers run AnomalyCLIP "
                                 "and AdaptCLIP at 518; default: the model's own. Trained files need the size "
                                 "they were trained at.")]
OnErrorOpt = Annotated[str, typer.Option(help="skip: leave out unreadable images (listed in the output and "
                                              "counted); fail: stop at the first.")]


def _weights(model: str, pretrained: str | None) -> None:
    """An uncached model offline: one line from the Hugging Face cache, before torch is imported."""
    from clipsuite.core.weights_precheck import check_weights

    check_weights(model, DEFAULT_PRETRAINED if pretrained is None and model == DEFAULT_MODEL else pretrained)


def _load(model: str, pretrained: str | None, device: str | None,
          image_size: int | None = None) -> ClipModel:
    from clipsuite.core.models import load_model
    if pretrained is None and model == DEFAULT_MODEL:
        pretrained = DEFAULT_PRETRAINED
    return load_model(model, pretrained=pretrained, device=device, image_size=image_size)


@app.command()
@cli_errors
def methods() -> None:
    """List the installed anomaly methods and what each needs."""
    from clipsuite.anomaly.methods.base import method_class, method_names

    needs = {"unused": "-", "optional": "optional", "required": "required"}
    table = Table("method", "reference images (--reference / --shots)", "trained (--weights from `train`)")
    for name in method_names():
        cls = method_class(name)
        table.add_row(name, needs[cls.references], "yes" if cls.trained else "-")
    console.print(table)


@app.command()
@cli_errors
def detect(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    method: MethodOpt = "winclip",
    class_name: Annotated[str, typer.Option(help="Object name used in the text prompts.")] = "object",
    reference: Annotated[Path | None, typer.Option(help="Folder of normal reference images (few-shot).")] = None,
    shots: Annotated[int, typer.Option(min=0, help="How many reference images to use (0: all in --reference).")] = 0,
    weights: Annotated[Path | None, typer.Option(help="Trained prompts/adapters (.safetensors) from `train`.")] = None,
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Output folder for scores, heatmaps, index.html.")] = Path(
        "anomaly_report"),
    threshold: Annotated[float | None, typer.Option(help="Decision threshold on the image score.")] = None,
    validation: Annotated[Path | None, typer.Option(
        help="Labelled images (good/ + defect folders, or any dataset layout) to choose the threshold "
             "at their F1-max point.")] = None,
    sigma: Annotated[float | None, typer.Option(min=0.0, help="Gaussian smoothing of maps (pixels at model size; "
                                                              "0: none).")] = None,
    model: ModelOpt = DEFAULT_MODEL, pretrained: PretrainedOpt = None, device: DeviceOpt = None,
    image_size: ImageSizeOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    on_error: OnErrorOpt = "skip",
) -> None:
    """Score images, write per-image scores (CSV/JSON) and heatmap overlays next to an HTML page."""
    check_output_dir(out, "--output")  # a user's folder is refused before any work
    need_some(images, "image")  # paths first, before torch is imported
    need(reference, "--reference folder", "dir")
    need(weights, "--weights file", "file")
    need(validation, "--validation folder", "dir")
    if shots and reference is None:
        fail(f"--shots {shots} needs --reference DIR (the normal images the shots are drawn from)")
    _weights(model, pretrained)
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.anomaly.report import write_report
    from clipsuite.core.images import expand_image_inputs, list_images
    from clipsuite.core.skipping import check_on_error

    policy = check_on_error(on_error)
    if validation is not None and threshold is not None:
        fail("give either --threshold or --validation, not both")
    paths = expand_image_inputs(images)
    clip = _load(model, pretrained, device, image_size)
    detector = Detector.create(clip, method, class_name, weights, sigma, batch_size)
    if reference is not None:
        ref_skipped = detector.fit_references(list_images(reference), policy, limit=shots or None)
        _warn_skipped(ref_skipped, "reference image")
    if validation is not None:
        from clipsuite.anomaly.data import load_dataset
        from clipsuite.anomaly.thresholds import threshold_from_validation

        samples = [s for c in load_dataset(validation) for s in c.test]
        checked = detector.score([s.image for s in samples], policy)
        _warn_skipped(checked.skipped, "validation image")
        threshold = threshold_from_validation([samples[i].label for i in checked.kept], checked.result.scores)
        console.print(f"threshold from {validation}: {threshold:.4f}")
    with progress() as bar:
        task = bar.add_task("scoring", total=len(paths))
        scored = detector.score(paths, policy, on_batch=lambda n: bar.advance(task, n))
    kept = [paths[i] for i in scored.kept]
    page = write_report(out, kept, scored.result, threshold, title=f"{method} on {len(kept)} images",
                        extra={"method": method, "model": model, "class_name": class_name}, skipped=scored.skipped)
    table = Table("image", "score", *(["anomalous"] if threshold is not None else []))
    for path, score in zip(kept, scored.result.scores.tolist()):
        table.add_row(str(path), f"{score:.4f}", *(["yes" if score >= threshold else "no"] if threshold is not None
                                                    else []))
    console.print(table)
    _warn_skipped(scored.skipped, "image", f" (listed in {out / 'scores.csv'})")
    console.print(f"report: {page}")


def _warn_skipped(skipped: Sequence[Skipped], noun: str, where: str = "") -> None:
    """One yellow line saying how many files were left out and which (each reason names its file)."""
    if skipped:
        plural = noun if len(skipped) == 1 else f"{noun}s"
        err_console.print(f"[yellow]skipped {len(skipped)} unreadable {plural}{where}:[/] "
                          + "; ".join(s.reason for s in skipped), soft_wrap=True)


@app.command()
@cli_errors
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="MVTec AD / VisA root, a meta.json folder, or a good/ folder.")],
    method: MethodOpt = "winclip",
    shots: Annotated[int, typer.Option(min=0, help="Few-shot references per category (seeded from train/good).")] = 0,
    weights: Annotated[Path | None, typer.Option(help="Trained prompts/adapters for anomalyclip/adaptclip.")] = None,
    format: Annotated[str, typer.Option(help="auto | mvtec | visa | meta | folder")] = "auto",
    category: Annotated[list[str] | None, typer.Option("--category", "-c", help="Only these categories.")] = None,
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="CSV file for the table.")] = Path("anomaly_metrics.csv"),
    sigma: Annotated[float | None, typer.Option(min=0.0, help="Gaussian smoothing of maps (0: none).")] = None,
    seed: int = 0,
    model: ModelOpt = DEFAULT_MODEL, pretrained: PretrainedOpt = None, device: DeviceOpt = None,
    image_size: ImageSizeOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    on_error: OnErrorOpt = "skip",
) -> None:
    """Per-category image AUROC/AP/F1-max and pixel AUROC/AUPRO in percent, plus the mean; the CSV holds the
    same percentages (4 decimals) and how many unreadable images each category left out."""
    check_output_file(out, "--output")
    need(dataset, "dataset")  # paths first, before torch is imported
    need(weights, "--weights file", "file")
    _weights(model, pretrained)
    from clipsuite.anomaly.data import load_dataset
    from clipsuite.anomaly.evaluate import IMAGE_METRICS, PIXEL_METRICS, evaluate_categories
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.core.skipping import check_on_error
    from clipsuite.core.tabular import write_table

    policy = check_on_error(on_error)
    categories = load_dataset(dataset, format, category)
    clip = _load(model, pretrained, device, image_size)
    detector = Detector.create(clip, method, "object", weights, sigma, batch_size)
    with progress() as bar:
        task = bar.add_task("evaluating", total=sum(len(c.test) for c in categories))
        results, mean = evaluate_categories(categories, lambda c: detector.score_category(
            c, shots, seed, on_batch=lambda n: bar.advance(task, n), on_error=policy))
    columns = [m for m in IMAGE_METRICS + PIXEL_METRICS if any(m in r.metrics for r in results)]
    table = Table("category", *columns, title=f"{method}, {shots}-shot (percent)")
    rows: list[dict[str, object]] = []
    counts = [len(r.skipped) for r in results]
    for (name, values), count in zip([(r.name, r.metrics) for r in results] + [("mean", mean)],
                                     counts + [sum(counts)]):
        table.add_row(name, *[f"{100 * values[m]:.1f}" if m in values else "-" for m in columns])
        rows.append({"category": name, **{m: f"{100 * values[m]:.4f}" for m in columns if m in values},
                     "skipped": count})
    write_table(out, rows, ["category", *columns, "skipped"])
    console.print(table)
    for result in results:
        for note in result.notes:
            err_console.print(f"[yellow]note:[/] {note}")
    console.print(f"table: {out}")


@app.command()
@cli_errors
def train(
    ctx: typer.Context,
    dataset: Annotated[Path | None, typer.Argument(help="Training dataset with masks (e.g. the other benchmark's "
                                                        "test split). With --resume it may be left out.")] = None,
    method: Annotated[str, typer.Option(help="A trained method: anomalyclip, adaptclip ... (`methods` lists "
                                             "them).")] = "anomalyclip",
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Where to save the learned parts (.safetensors).")] = Path(
        "anomaly_prompts.safetensors"),
    run_dir: Annotated[Path | None, typer.Option(
        "--run-dir", help="The run folder (checkpoints, metrics.jsonl, the flags it was started with); default: "
                          "OUT's name with .run, beside it.")] = None,
    format: Annotated[str, typer.Option(help="auto | mvtec | visa | meta | folder")] = "auto",
    epochs: int = 15, lr: float = 1e-3, batch_size: int = 8, max_steps: Annotated[int | None, typer.Option()] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        "--checkpoint-every", help="Steps between checkpoints (default: each epoch end).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run of --output (or --run-dir) from its last "
                                                          "checkpoint with the flags it was started with (flags "
                                                          "given again must agree; --epochs and --max-steps may "
                                                          "be raised).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in the run folder.")] = False,
    model: ModelOpt = DEFAULT_MODEL, pretrained: PretrainedOpt = None, device: DeviceOpt = None, seed: int = 0,
    image_size: ImageSizeOpt = None,
) -> None:
    """Train AnomalyCLIP prompts or AdaptCLIP adapters on one dataset; save them for detect/evaluate."""
    from clipsuite.cli.resume import absolute_if_exists, remembered
    from clipsuite.core.run_folder import check_output_folder

    run_dir = run_dir or out.with_name(out.stem + ".run")
    check_output_file(out, "--output")
    check_output_folder(run_dir, resume, overwrite, flag="--run-dir")
    need(dataset, "dataset")  # the paths before torch is imported
    if resume and not (run_dir / "config.json").is_file():
        fail(f"{run_dir}: no run to resume (train without --resume first, or give its --output / --run-dir)")
    # the run's identity, stored with it; --device, --run-dir and --overwrite are not part of it
    options: dict[str, Any] = {"dataset": absolute_if_exists(dataset), "method": method, "out": str(out.resolve()),
               "format": format, "epochs": epochs, "lr": lr, "batch_size": batch_size, "max_steps": max_steps,
               "checkpoint_every": checkpoint_every, "model": model, "pretrained": pretrained, "seed": seed,
               "image_size": image_size}
    if resume:  # the run's own flags for those not given again (see clipsuite.cli.resume)
        options = remembered(ctx, run_dir, options, adjustable=("epochs", "max_steps", "checkpoint_every"))
    if options["dataset"] is None:
        fail("missing DATASET (training images with masks); only --resume may leave it out")
    from clipsuite.anomaly.data import load_dataset
    from clipsuite.anomaly.train import train_learned

    categories = load_dataset(Path(options["dataset"]), options["format"])
    # a run started before --image-size existed has no such flag: the model's own size
    clip = _load(options["model"], options["pretrained"], device, options.get("image_size"))
    fitted = train_learned(clip, options["method"], categories, Path(options["out"]), epochs=options["epochs"],
                           lr=options["lr"], batch_size=options["batch_size"], max_steps=options["max_steps"],
                           seed=options["seed"], run_dir=run_dir, resume=resume, options=options,
                           checkpoint_every=options["checkpoint_every"])
    report_training(fitted.train, longer="--epochs or --max-steps")
    console.print(f"saved {options['method']} weights: {fitted.path} (run folder: {run_dir})", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
