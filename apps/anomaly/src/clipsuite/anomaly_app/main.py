"""``clipsuite-anomaly`` (also ``clipsuite anomaly``): detect, evaluate, train.

Thin: parse options, call ``clipsuite.anomaly``, print. All logic a library user would want lives there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clipsuite.anomaly.presets import DEFAULT_MODEL, pretrained_tag
from clipsuite.anomaly.train_run import TrainRun
from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import cli_errors, console, err_console, fail, need, need_some, progress
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.core.outputs import check_output_dir, check_output_file

if TYPE_CHECKING:
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.core.models import ClipModel
    from clipsuite.core.skipping import OnError, Skipped

app = typer.Typer(name="anomaly", help="Zero- and few-shot industrial anomaly detection (WinCLIP, AnomalyCLIP, "
                  "AdaptCLIP-style adapters, patch memory).", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  cls=ClipsuiteGroup)

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

    check_weights(model, pretrained_tag(model, pretrained))


def _load(model: str, pretrained: str | None, device: str | None,
          image_size: int | None = None) -> ClipModel:
    from clipsuite.core.models import load_model

    return load_model(model, pretrained=pretrained_tag(model, pretrained), device=device, image_size=image_size)


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
    from clipsuite.anomaly.detect_checks import check_detect_request
    from clipsuite.core.skipping import check_on_error

    check_output_dir(out, "--output")  # a user's folder is refused before any work
    need_some(images, "image")  # paths first, before torch is imported
    need(reference, "--reference folder", "dir")
    need(weights, "--weights file", "file")
    need(validation, "--validation folder", "dir")
    check_detect_request(shots, reference, threshold, validation)
    policy = check_on_error(on_error)
    _weights(model, pretrained)
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.anomaly.report import write_report
    from clipsuite.core.images import expand_image_inputs, list_images

    paths = expand_image_inputs(images)
    detector = Detector.create(_load(model, pretrained, device, image_size), method, class_name, weights, sigma,
                               batch_size)
    if reference is not None:
        _warn_skipped(detector.fit_references(list_images(reference), policy, limit=shots or None), "reference image")
    if validation is not None:
        threshold = _validation_threshold(detector, validation, policy)
    with progress() as bar:
        task = bar.add_task("scoring", total=len(paths))
        scored = detector.score(paths, policy, on_batch=lambda n: bar.advance(task, n))
    kept = [paths[i] for i in scored.kept]
    page = write_report(out, kept, scored.result, threshold, title=f"{method} on {len(kept)} images",
                        extra={"method": method, "model": model, "class_name": class_name}, skipped=scored.skipped)
    _print_scores(kept, scored.result.scores.tolist(), threshold)
    _warn_skipped(scored.skipped, "image", f" (listed in {out / 'scores.csv'})")
    console.print(f"report: {page}")


def _validation_threshold(detector: Detector, validation: Path, policy: OnError) -> float:
    """The F1-max threshold on the labelled --validation images; says what it chose and what it left out."""
    from clipsuite.anomaly.thresholds import validation_threshold

    threshold, skipped = validation_threshold(detector, validation, policy)
    _warn_skipped(skipped, "validation image")
    console.print(f"threshold from {validation}: {threshold:.4f}")
    return threshold


def _print_scores(paths: Sequence[Path], scores: Sequence[float], threshold: float | None) -> None:
    """One row per scored image; the verdict column only when there is a threshold."""
    table = Table("image", "score", *(["anomalous"] if threshold is not None else []))
    for path, score in zip(paths, scores):
        verdict = [] if threshold is None else ["yes" if score >= threshold else "no"]
        table.add_row(str(path), f"{score:.4f}", *verdict)
    console.print(table)


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
@with_config_options(TrainRun)  # the run's options: the fields of clipsuite.anomaly.train_run
def train(
    ctx: typer.Context,
    values: dict[str, Any],
    run_dir: Annotated[Path | None, typer.Option(
        "--run-dir", help="The run folder (checkpoints, metrics.jsonl, the flags it was started with); default: "
                          "OUT's name with .run, beside it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run of --output (or --run-dir) from its last "
                                                          "checkpoint with the flags it was started with (flags "
                                                          "given again must agree; --epochs and --max-steps may "
                                                          "be raised).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in the run folder.")] = False,
    device: DeviceOpt = None,
) -> None:
    """Train AnomalyCLIP prompts or AdaptCLIP adapters on one dataset; save them for detect/evaluate."""
    from clipsuite.core.run_folder import check_output_folder

    out = Path(values["out"])
    values["out"] = str(out.resolve())  # stored absolute even before it exists, so a resume from elsewhere agrees
    run_dir = run_dir or out.with_name(out.stem + ".run")
    check_output_file(out, "--output")
    check_output_folder(run_dir, resume, overwrite, flag="--run-dir")
    dataset = values["dataset"]
    need(None if dataset is None else Path(dataset), "dataset")  # the paths before torch is imported
    if resume and not (run_dir / "config.json").is_file():
        fail(f"{run_dir}: no run to resume (train without --resume first, or give its --output / --run-dir)")
    run = build_config(ctx, TrainRun, values, resume_from=run_dir if resume else None)
    _weights(run.model, run.pretrained)
    from clipsuite.anomaly.train import run_training

    fitted = run_training(run, run_dir, resume=resume, device=device)
    report_training(fitted.train, longer="--epochs or --max-steps")
    console.print(f"saved {run.method} weights: {fitted.path} (run folder: {run_dir})", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
