"""``clipsuite-medical`` (also ``clipsuite medical``): classify, biomedcoop train|compare, vqa train|evaluate|ask.

Thin: parse options, call ``clipsuite.medical``, print. Library errors become one red line and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import cli_errors, console, err_console, fail, need, parse_list
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.core.class_names import check_class_count
from clipsuite.medical.biomedcoop_runs import BiomedCoOpCompareRun, BiomedCoOpRun
from clipsuite.medical.vqa_run import VQATrainRun

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

app = typer.Typer(name="medical", help="Medical CLIP: zero-shot on images and volumes (NIfTI/DICOM), BiomedCoOp, "
                  "medical VQA.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=ClipsuiteGroup)
biomedcoop_app = typer.Typer(help="BiomedCoOp prompt learning on Dassl split JSON datasets.", no_args_is_help=True)
vqa_app = typer.Typer(help="Medical VQA (VQA-RAD, SLAKE) with MEVF- and QCR-style heads.", no_args_is_help=True)
app.add_typer(biomedcoop_app, name="biomedcoop")
app.add_typer(vqa_app, name="vqa")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Preset (biomedclip, pubmedclip), open_clip name, "
                                                             "folder, or tiny / tiny-hf offline.")]
PretrainedOpt = Annotated[str | None, typer.Option(help="Weights file or open_clip tag.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available)")]


def _csv(text: str, what: str) -> list[str]:
    return parse_list(text, what)


def _ints(text: str, what: str) -> list[int]:
    return parse_list(text, what, int, "integers", "1,4,16")


def _weights(model: str, pretrained: str | None) -> None:
    """An uncached model offline (biomedclip, pubmedclip ...): one line from the Hugging Face cache, before torch."""
    from clipsuite.core.weights_precheck import check_weights

    check_weights(model, pretrained)


def _load(model: str, pretrained: str | None, device: str | None) -> ClipModel:
    from clipsuite.core.models import load_model

    return load_model(model, pretrained=pretrained, device=device)


def _file_out(path: Path | None, flag: str, suffixes: tuple[str, ...] = ()) -> None:
    """An output file's path checked with the arguments, before torch (clipsuite.core.outputs)."""
    if path is not None:
        from clipsuite.core.outputs import check_output_file

        check_output_file(path, flag, suffixes)


def _write_json(path: Path, data: object) -> None:
    from clipsuite.core.checkpoints import atomic_write_json

    atomic_write_json(path, data)
    console.print(f"wrote {path}")


# ---- classify ---------------------------------------------------------------------------------
@app.command()
@cli_errors
def classify(
    path: Annotated[Path, typer.Argument(help="Image, image folder, NIfTI file, DICOM series folder (or one file: "
                                              "its series) or folder of NIfTI.")],
    classes: Annotated[str, typer.Option(help="Comma-separated class names.")],
    window: Annotated[str, typer.Option(help="soft-tissue | lung | bone | brain | mediastinum | mr | "
                                             "A_MIN,A_MAX | percentile:LOW,HIGH")] = "soft-tissue",
    mode: Annotated[str, typer.Option(help="slice | 2.5d | windows (three windows as RGB)")] = "slice",
    axis: Annotated[str, typer.Option(help="axial | coronal | sagittal")] = "axial",
    slices: Annotated[str | None, typer.Option(help="Explicit slice indices, e.g. 10,20,30.")] = None,
    n_slices: Annotated[int, typer.Option("--n-slices", min=1, help="Evenly spaced slices (when no --slices).")] = 16,
    aggregate: Annotated[str, typer.Option(help="Volume score from slice scores: mean | max")] = "mean",
    templates: Annotated[str | None, typer.Option(help="Template set, file, or one template with {}.")] = None,
    descriptions: Annotated[Path | None, typer.Option(help="Class -> sentences JSON (replaces templates).")] = None,
    json_out: Annotated[Path | None, typer.Option("--output", "-o", "--json",
                                                  help="Write all predictions (with slices) here.")] = None,
    volume_index: Annotated[int | None, typer.Option(
        help="One volume of a 4D NIfTI file (default: classify each volume).")] = None,
    on_error: Annotated[str, typer.Option(
        help="In a folder, skip: leave out unreadable files (listed in --output, counted); fail: stop.")] = "skip",
    model: ModelOpt = "biomedclip", pretrained: PretrainedOpt = None, device: DeviceOpt = None,
) -> None:
    """Zero-shot classification of medical images or volumes (slice predictions aggregated per volume)."""
    _file_out(json_out, "--output")
    need(path, "input")  # paths first, before torch is imported
    need(descriptions, "--descriptions file", "file")
    names = _csv(classes, "--classes")
    check_class_count(names)  # at least two classes, before torch
    _weights(model, pretrained)
    from dataclasses import asdict

    from clipsuite.core.prompts import load_descriptions
    from clipsuite.core.skipping import check_on_error
    from clipsuite.medical.classify import VolumeOptions, classify_source
    from clipsuite.medical.volumes import parse_window

    if aggregate not in ("mean", "max"):
        fail(f"--aggregate '{aggregate}': use mean or max")
    parse_window(window)  # fail on a bad window before loading a model
    policy = check_on_error(on_error)
    sentences = load_descriptions(descriptions, names) if descriptions else None
    options = VolumeOptions(axis=axis, slices=_ints(slices, "--slices") if slices else None, n=n_slices, mode=mode,
                            window=window, aggregate=aggregate)
    found = classify_source(_load(model, pretrained, device), path, names, options, templates, sentences, policy,
                            volume_index)
    table = Table("source", "prediction", *names)
    for p in found.predictions:
        table.add_row(Path(p.source).name, p.label, *(f"{p.scores[c]:.3f}" for c in names))
    console.print(table)
    if found.skipped:
        # unreadable files of a folder, and a named DICOM file's neighbours left out: each reason says which
        err_console.print(f"[yellow]skipped {len(found.skipped)} file(s)"
                          f"{' (listed in ' + str(json_out) + ')' if json_out else ''}:[/] "
                          + "; ".join(s.reason for s in found.skipped), soft_wrap=True)
    if json_out is not None:  # every input accounted for: skipped files as entries with an error
        _write_json(json_out, [{**asdict(p), "error": None} for p in found.predictions]
                    + [{"source": s.path, "label": None, "scores": {}, "slices": [], "error": s.reason}
                       for s in found.skipped])


# ---- BiomedCoOp -------------------------------------------------------------------------------
@biomedcoop_app.command("train")
@cli_errors
@with_config_options(BiomedCoOpRun)  # the run's options: the fields of clipsuite.medical.biomedcoop_runs
def biomedcoop_train(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Adapter file to write (.safetensors).")],
    device: DeviceOpt = None,
) -> None:
    """Train BiomedCoOp's context vectors on a K-shot draw and save them (core adapter format)."""
    _file_out(out, "--output", (".safetensors",))
    run = build_config(ctx, BiomedCoOpRun, values)  # paths and flags checked here, before torch is imported
    _weights(run.model, run.pretrained)
    from clipsuite.core.adapt.fewshot_data import base_novel
    from clipsuite.core.adapt.io import save_adapter
    from clipsuite.core.adapt.registry import MethodOptions
    from clipsuite.core.adapt.runner import accuracy, bind, prepare
    from clipsuite.core.prompts import load_descriptions
    from clipsuite.medical.data import load_dassl_split
    from clipsuite.medical.fewshot import fit_biomedcoop

    image_root = Path(run.image_root) if run.image_root else None
    data_split = base_novel(load_dassl_split(Path(run.split), image_root), run.subset)
    sentences = load_descriptions(Path(run.descriptions), data_split.class_names)
    data = prepare(_load(run.model, run.pretrained, device), data_split, run.shots, run.seed, views=0)
    module = fit_biomedcoop(data, sentences, MethodOptions(epochs=run.epochs, lr=run.lr, batch_size=run.batch_size,
                                                           progress=True))
    acc = accuracy(bind(module, data, "biomedcoop"), data) if data.split.test else float("nan")
    save_adapter(out, module, "biomedcoop", data.class_names, data.clip,
                 {"shots": run.shots, "seed": run.seed, "split": run.split, "subset": run.subset})
    console.print(f"BiomedCoOp {run.shots}-shot seed {run.seed}: test accuracy {acc:.2f}%  -> {out}")


@biomedcoop_app.command("compare")
@cli_errors
@with_config_options(BiomedCoOpCompareRun)  # the fields of clipsuite.medical.biomedcoop_runs
def biomedcoop_compare(
    ctx: typer.Context,
    values: dict[str, Any],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write every run (method, shots, seed, ...).")] = None,
    device: DeviceOpt = None,
) -> None:
    """Zero-shot, CoOp, CoCoOp, KgCoOp and BiomedCoOp on the same K-shot draws: the paper-style table."""
    _file_out(csv_out, "--csv")
    run = build_config(ctx, BiomedCoOpCompareRun, values)  # before torch is imported
    _weights(run.model, run.pretrained)
    from clipsuite.core.adapt.registry import MethodOptions
    from clipsuite.core.adapt.results import B2N_COLUMNS, summary_text, write_csv
    from clipsuite.core.adapt.runner import run as compare
    from clipsuite.core.prompts import load_descriptions
    from clipsuite.medical.data import load_dassl_split

    data_split = load_dassl_split(Path(run.split), Path(run.image_root) if run.image_root else None)
    options = MethodOptions(epochs=run.epochs, descriptions=load_descriptions(Path(run.descriptions),
                                                                              data_split.class_names))
    clip = _load(run.model, run.pretrained, device)
    rows = []
    for k in run.shots:  # the core's one comparison runner; medical adds its data and sentences
        found = compare(clip, data_split, list(run.methods), k, list(run.seeds), options, views=0,
                        protocol=run.protocol, on_row=lambda r: console.print(
                            f"  {r.method} {r.shots}-shot seed {r.seed}: {r.accuracy:.2f}"
                            + (f" / novel {r.novel:.2f}" if r.novel is not None else "")))
        seeds = ",".join(map(str, run.seeds))
        console.print(f"\n{run.protocol}, {k} shots, mean over seeds {seeds}:\n{summary_text(found)}\n")
        rows += found
    if csv_out is not None:
        write_csv(csv_out, rows, B2N_COLUMNS)
        console.print(f"wrote {csv_out}")


# ---- VQA --------------------------------------------------------------------------------------
@vqa_app.command("train")
@cli_errors
@with_config_options(VQATrainRun)  # the run's options: the fields of clipsuite.medical.vqa_run
def vqa_train(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Run folder (checkpoint + config).")],
    resume: Annotated[bool, typer.Option(help="Continue the run in --output with the flags it was started with (flags "
                                              "given again must agree; --epochs may be raised).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")] = False,
    device: DeviceOpt = None,
) -> None:
    """Train a VQA head on a CLIP image encoder; evaluates on the dataset's test split at each epoch end."""
    from clipsuite.core.run_folder import check_output_folder

    check_output_folder(out, resume, overwrite, flag="--output")  # an earlier run: continued or replaced, not silently
    run = build_config(ctx, VQATrainRun, values, resume_from=out if resume else None)  # checked before torch
    from clipsuite.medical.train_vqa import train_vqa_run

    trained = train_vqa_run(run, out, resume=resume, overwrite=overwrite, device=device)
    if trained.train is not None:  # the held-out accuracies follow as a table
        report_training(trained.train, held_out={}, longer="--epochs")
    _print_accuracy(f"{run.head} on {run.data} (test)", trained.metrics)


def _print_accuracy(title: str, metrics: dict[str, float]) -> None:
    table = Table("open", "closed", "overall", title=title)
    table.add_row(*(f"{metrics.get(k, float('nan')):.1f}" for k in ("open", "closed", "overall")))
    console.print(table)


@vqa_app.command("evaluate")
@cli_errors
def vqa_evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `vqa train`.")],
    data: Annotated[Path, typer.Argument(help="VQA-RAD folder/JSON or SLAKE folder.")],
    split: Annotated[str, typer.Option(help="train | test (SLAKE: also validate)")] = "test",
    json_out: Annotated[Path | None, typer.Option("--output", "-o", "--json",
                                                  help="Write the accuracies here.")] = None,
    device: DeviceOpt = None,
) -> None:
    """Open, closed and overall accuracy, as the papers report them."""
    _file_out(json_out, "--output")
    need(run, "run folder")  # paths first, before torch is imported
    need(data, "VQA data")
    from clipsuite.medical.data import load_vqa
    from clipsuite.medical.train_vqa import load_vqa_run

    metrics = load_vqa_run(run, device).evaluate(load_vqa(data, split))
    _print_accuracy(f"{run} on {data} ({split})", metrics)
    if json_out is not None:
        _write_json(json_out, metrics)


@vqa_app.command("ask")
@cli_errors
def vqa_ask(
    run: Annotated[Path, typer.Argument(help="Run folder written by `vqa train`.")],
    image: Annotated[Path, typer.Argument(help="Image file.")],
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    device: DeviceOpt = None,
) -> None:
    """Answer one question about one image."""
    need(run, "run folder")  # paths first, before torch is imported
    need(image, "image", "file")
    from clipsuite.medical.train_vqa import load_vqa_run

    answer = load_vqa_run(run, device).ask(image, question)
    console.print(f"{answer['answer']}  (p={answer['probability']:.2f}, {answer['question_type']} question)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
