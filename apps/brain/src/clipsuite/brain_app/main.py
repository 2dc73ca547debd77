"""``clipsuite-brain`` (also ``clipsuite brain``): fit, decode, evaluate, encode on a dataset config.

Thin: check arguments and paths (before torch is imported), call ``clipsuite.brain``, print.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clipsuite.brain.fit_run import DEFAULT_MODEL, MLPRun
from clipsuite.brain_app import nsd_cmd
from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import cli_errors, console, fail, need, progress
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.core.outputs import check_output_dir, check_output_file

if TYPE_CHECKING:
    import numpy as np

    from clipsuite.brain.features import StimulusFeatures
    from clipsuite.brain.pipeline import Subject
    from clipsuite.brain.prep import PrepConfig
    from clipsuite.brain.ridge import AlphaChoice
    from clipsuite.core.models import ClipModel

app = typer.Typer(name="brain", help="fMRI decoding into CLIP space (ridge) and CLIP-based voxel-wise encoding "
                  "models, on NIfTI beta series or GOD HDF5.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  cls=ClipsuiteGroup)

DatasetArg = Annotated[Path, typer.Argument(help="Dataset config JSON (betas, mask, trials, stimuli).")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="CLIP model: open_clip name, preset, folder or 'tiny'.")]
PretrainedOpt = Annotated[str | None, typer.Option(help="open_clip pretrained tag (default openai for the default "
                                                           "model).")]
DEFAULT_PRETRAINED = "openai"  # for DEFAULT_MODEL (clipsuite.brain.fit_run)
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available)")]
AlphasOpt = Annotated[str, typer.Option(help="Ridge alphas: comma list, or low:high:count (log-spaced).")]
CvOpt = Annotated[str, typer.Option(help="Alpha selection: loo (leave-one-out) or a number of folds.")]
CacheOpt = Annotated[Path | None, typer.Option(help="Folder caching stimulus embeddings (default: next to "
                                                     "the config, .clipsuite-cache).")]


def _check_dataset(dataset: Path) -> None:
    """The config and every file it names, before torch is imported (a typo answers at once)."""
    from clipsuite.brain.config import load_config
    from clipsuite.brain.prechecks import check_nifti_headers

    need(dataset, "dataset config", "file")
    config = load_config(dataset)
    nsd_cmd.check_captions(config)
    check_nifti_headers(config)  # mask/betas grids and volume counts, from the headers


def _check_model(model: str, pretrained: str | None) -> None:
    """An uncached model offline: one line from the Hugging Face cache, before torch (``_features`` loads it)."""
    from clipsuite.core.weights_precheck import check_weights

    check_weights(model, DEFAULT_PRETRAINED if pretrained is None and model == DEFAULT_MODEL else pretrained)


def _check_decoder(decoder: Path) -> None:
    need(decoder, "--decoder folder", "dir")
    if not (decoder / "decoder.json").is_file():
        fail(f"{decoder}: not a decoder folder (no decoder.json; make one with `clipsuite-brain fit`)")
    import json

    try:  # the CLIP model the decoder was fitted with: its weights, before torch (malformed: read_decoder says)
        clip = json.loads((decoder / "decoder.json").read_text(encoding="utf-8")).get("clip") or {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        return
    if isinstance(clip, dict) and isinstance(clip.get("model"), str):
        _check_model(clip["model"], clip.get("pretrained"))


def _alphas(text: str) -> list[float]:
    try:
        if ":" in text:
            low, high, count = text.split(":")
            import numpy as np
            return [float(v) for v in np.logspace(np.log10(float(low)), np.log10(float(high)), int(count))]
        values = [float(v) for v in text.split(",") if v.strip()]  # its own grammar (LOW:HIGH:COUNT too)
    except ValueError:
        fail(f"--alphas '{text}': expected numbers like 1,10,100 or 1e-1:1e5:10")
    if not values or any(v <= 0 for v in values):
        fail(f"--alphas '{text}': alphas must be positive")
    return values


def _cv(text: str) -> str | int:
    if text.lower() == "loo":
        return "loo"
    if text.isdigit() and int(text) >= 2:
        return int(text)
    fail(f"--cv '{text}': expected loo or a number of folds (2 or more)")
    return "loo"


def _prep(test_fraction: float, seed: int, per_session: bool, repetitions: str) -> PrepConfig:
    if repetitions not in ("average", "single"):
        fail(f"--train-repetitions '{repetitions}': expected average or single")
    if not 0 < test_fraction < 1:
        fail(f"--test-fraction {test_fraction}: expected a number between 0 and 1")
    from clipsuite.brain.prep import PrepConfig
    return PrepConfig(test_fraction=test_fraction, seed=seed, per_session=per_session, train_repetitions=repetitions)


def _subject(dataset: Path, prep: PrepConfig) -> Subject:
    from clipsuite.brain.pipeline import load_prepared

    with progress() as bar:
        task = bar.add_task("reading sessions", total=None)
        subject = load_prepared(dataset, prep, on_session=lambda i, n: bar.update(task, completed=i, total=n))
    dropped = ", ".join(f"{v} {k}" for k, v in subject.data.dropped.items() if v)
    console.print(f"{dataset}: {len(subject.data.responses)} trials x {subject.data.n_voxels} voxels"
                  f"{f' (dropped {dropped})' if dropped else ''}; {len(subject.train.stimulus)} train / "
                  f"{len(subject.test.stimulus)} test samples")
    return subject


def _features(subject: Subject, model: str, pretrained: str | None, device: str | None,
              cache: Path | None) -> tuple[ClipModel, StimulusFeatures]:
    from clipsuite.brain.pipeline import subject_features
    from clipsuite.core.models import load_model

    if pretrained is None and model == DEFAULT_MODEL:
        pretrained = DEFAULT_PRETRAINED
    clip = load_model(model, pretrained=pretrained, device=device)
    folder = cache if cache is not None else subject.config.path.parent / ".clipsuite-cache"
    return clip, subject_features(clip, subject, folder)


def _print_metrics(metrics: dict[str, float], out: Path | None, title: str) -> None:
    """Show the metrics; ``out``: also write them there as a CSV table (None: the caller wrote them)."""
    from clipsuite.core.tabular import write_table

    table = Table("metric", "value", title=title)
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if not float(value).is_integer() else f"{int(value)}")
    console.print(table)
    if out is not None:
        write_table(out, [{"metric": k, "value": f"{v:.6f}"} for k, v in metrics.items()], ["metric", "value"])
        console.print(f"metrics: {out}")


DECODERS = ("ridge", "mlp")


@app.command()
@cli_errors
@with_config_options(MLPRun)  # the run's options: the fields of clipsuite.brain.fit_run (ridge uses the shared ones)
def fit(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Folder for the fitted decoder.")] = Path("brain_decoder"),
    decoder: Annotated[str, typer.Option(help="ridge (per-dimension alphas) or mlp (MindEye-style network, "
                                              "BiMixCo then SoftCLIP, on the core Trainer).")] = "ridge",
    alphas: AlphasOpt = "1e-1:1e5:10", cv: CvOpt = "loo",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ...: where the CLIP model embeds the "
                                                    "stimuli and the MLP trains (default: cuda if available).")] = None,
    cache: CacheOpt = None,
    run_dir: Annotated[Path | None, typer.Option(help="mlp: training state and metrics.jsonl (default: "
                                                      "<out>.run).")] = None,
    resume: Annotated[bool, typer.Option(help="mlp: continue the run in --run-dir with the flags it was started "
                                              "with (flags given again must agree; --epochs may be raised).")] = False,
) -> None:
    """Fit a decoder (voxels -> CLIP image and text embeddings): ridge, or the MLP (trains on a GPU when one is
    visible; several with `accelerate launch`)."""
    from clipsuite.cli.resume import given_options
    from clipsuite.core.run_folder import check_output_folder

    folder = run_dir if run_dir is not None else out.with_name(out.name + ".run")
    check_output_dir(out, "--output")  # a user's folder is refused before any work
    if resume or decoder == "mlp" or run_dir is not None:
        check_output_folder(folder, resume, True, "--run-dir")  # a run of ours restarts; a user's is refused
    if decoder not in DECODERS:
        fail(f"--decoder '{decoder}': expected {' or '.join(DECODERS)}")
    if resume and decoder == "ridge" and "decoder" in given_options(ctx, ["decoder"]):
        fail("--resume continues an MLP run (--decoder mlp); a ridge fit has no run to resume")
    if values["dataset"] is not None:
        _check_dataset(Path(values["dataset"]))  # paths first, before torch is imported
    if resume or decoder == "mlp":
        run = build_config(ctx, MLPRun, values, resume_from=folder if resume else None)
        _fit_mlp(run, out, folder, resume, device, cache)
        return
    if values["dataset"] is None:
        fail("missing DATASET (the dataset config)")
    _fit_ridge(Path(values["dataset"]), values, out, _alphas(alphas), _cv(cv), device, cache)


def _fit_mlp(run: MLPRun, out: Path, folder: Path, resume: bool, device: str | None,
             cache: Path | None) -> None:
    """Train the MLP decoder of a checked run (its dataset checked again: a resumed run names its own)."""
    assert run.dataset is not None  # MLPRun refuses a run without one
    dataset = Path(run.dataset)
    _check_dataset(dataset)
    _check_model(run.model, run.pretrained)
    subject = _subject(dataset, _prep(run.test_fraction, run.seed, run.per_session, run.train_repetitions))
    _, features = _features(subject, run.model, run.pretrained, device, cache)
    from clipsuite.brain.pipeline import MLPFit, fit_mlp_decoder
    from clipsuite.brain.train import LossSettings

    loss = LossSettings(mixup_fraction=run.mixup_fraction, text_weight=run.text_weight, kl_weight=run.kl_weight,
                        recon_weight=run.recon_weight)
    settings = MLPFit(hidden=run.hidden, blocks=run.blocks, projector=run.projector, vae_latent=run.vae_latent,
                      loss=loss)
    fitted = fit_mlp_decoder(subject, features, out, {"model": run.model, "pretrained": run.pretrained},
                             run.train_config(folder, resume=resume, device=device), settings,
                             options=run.to_options())
    if not fitted.main_process:  # under a multi-process launch, one process reports
        return
    if fitted.train is not None:
        report_training(fitted.train, longer="--epochs")
    console.print(f"training run: {folder} (metrics.jsonl)")
    console.print(f"decoder: {fitted.path}")


def _fit_ridge(dataset: Path, values: dict[str, Any], out: Path, grid: list[float], folds: str | int,
               device: str | None, cache: Path | None) -> None:
    """Ridge per CLIP dimension, alphas chosen by cross-validation; says what it chose."""
    prep = _prep(values["test_fraction"], values["seed"], values["per_session"], values["train_repetitions"])
    model, pretrained = values["model"], values["pretrained"]
    _check_model(model, pretrained)
    from clipsuite.brain.pipeline import fit_decoder

    subject = _subject(dataset, prep)
    _, features = _features(subject, model, pretrained, device, cache)
    with progress() as bar:
        task = bar.add_task("ridge (per target)", total=None)
        fitted = fit_decoder(subject, features, grid, folds, out, {"model": model, "pretrained": pretrained}, device,
                             on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    for space, choice in fitted.alphas.items():
        for line in alpha_lines(space, choice, len(grid), folds):
            console.print(line, soft_wrap=True)
    console.print(f"decoder: {fitted.path}")


def alpha_lines(space: str, choice: AlphaChoice, grid_size: int, cv: str | int) -> list[str]:
    """What the ridge fit chose for one CLIP space: the alphas' range, the share at each edge of the grid (a
    crowded edge: the best alpha may lie beyond it, so the grid should be widened there) and the CV score."""
    low, high = choice.grid_low, choice.grid_high
    lines = [f"{space}: alphas chosen {choice.lowest:.3g} to {choice.highest:.3g} (median {choice.median:.3g}) "
             f"from a grid of {grid_size} over {low:.3g} to {high:.3g}; {choice.at_low_edge:.0%} of the dimensions "
             f"at its low edge, {choice.at_high_edge:.0%} at its high edge"]
    crowded = choice.crowded_edges()
    if crowded:
        # two more decades on each crowded side, at the grid's own spacing
        per_decade = (grid_size - 1) / math.log10(high / low) if grid_size > 1 else 1.0
        wider_low = low / 100 if "low" in crowded else low
        wider_high = high * 100 if "high" in crowded else high
        count = grid_size + round(2 * per_decade) * len(crowded)
        sides = " and ".join(f"{edge} ({choice.at_low_edge if edge == 'low' else choice.at_high_edge:.0%})"
                             for edge in crowded)
        lines.append(f"  widen the alpha grid: many dimensions chose its {sides} edge, so their best alpha may lie "
                     f"beyond it (try --alphas {wider_low:.3g}:{wider_high:.3g}:{count})")
    folds = "leave-one-out" if cv == "loo" else f"{cv}-fold"
    r2 = f"R^2 {choice.cv_r2:.3f}, " if choice.cv_r2 is not None else ""
    lines.append(f"{space}: {folds} cross-validated {r2}mean squared error {choice.cv_mse:.4g} (mean over dimensions)")
    return lines


def _decoded(dataset: Path, decoder: Path, device: str | None,
             cache: Path | None) -> tuple[Subject, dict[str, np.ndarray], ClipModel, StimulusFeatures]:
    from clipsuite.brain.decoders import read_decoder
    from clipsuite.brain.pipeline import decode, prep_from

    fitted, meta = read_decoder(decoder, device)
    subject = _subject(dataset, prep_from(meta))
    decoded = decode(fitted, meta, subject.test, str(dataset), subject)
    clip, features = _features(subject, meta["clip"]["model"], meta["clip"]["pretrained"], device, cache)
    return subject, decoded, clip, features


@app.command()
@cli_errors
def decode(
    dataset: DatasetArg,
    decoder: Annotated[Path, typer.Option("--decoder", "-d", help="Folder written by `fit` (ridge or mlp).")] = Path(
        "brain_decoder"),
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="safetensors file of the decoded test embeddings.")] = Path(
        "decoded.safetensors"),
    device: DeviceOpt = None, cache: CacheOpt = None,
) -> None:
    """Decode the held-out samples into CLIP space; write the embeddings and the nearest stimuli (CSV)."""
    check_output_file(out, "--output")
    check_output_file(out.with_suffix(".csv"), "--output")
    _check_dataset(dataset)  # paths first, before torch is imported
    _check_decoder(decoder)
    import torch

    from clipsuite.core.checkpoints import save_tensors
    from clipsuite.core.tabular import write_table

    subject, decoded, _, features = _decoded(dataset, decoder, device, cache)
    save_tensors(out, {k: torch.as_tensor(v) for k, v in decoded.items()},
                 {"stimulus": subject.test.stimulus.tolist()})
    image = torch.nn.functional.normalize(torch.as_tensor(decoded["image"]), dim=1)
    best = (image @ torch.as_tensor(features.image).T).argmax(1).tolist()
    rows = [{"stimulus": s, "nearest_stimulus": features.ids[b], "correct": int(features.ids[b] == s)}
            for s, b in zip(subject.test.stimulus.tolist(), best)]
    table = out.with_suffix(".csv")
    write_table(table, rows, ["stimulus", "nearest_stimulus", "correct"])
    console.print(f"decoded {len(rows)} samples: {out}; nearest stimuli: {table}")


@app.command()
@cli_errors
def evaluate(
    dataset: DatasetArg,
    decoder: Annotated[Path, typer.Option("--decoder", "-d", help="Folder written by `fit` (ridge or mlp).")] = Path(
        "brain_decoder"),
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="CSV metrics table.")] = Path("brain_metrics.csv"),
    n_way: Annotated[int, typer.Option(help="Retrieval candidates per draw (MindEye: 300).", min=2)] = 300,
    draws: Annotated[int, typer.Option(help="Random draws averaged (MindEye: 30).", min=1)] = 30,
    device: DeviceOpt = None, cache: CacheOpt = None,
) -> None:
    """Retrieval (both directions), pairwise identification, category decoding of the held-out samples."""
    check_output_file(out, "--output")
    _check_dataset(dataset)  # paths first, before torch is imported
    _check_decoder(decoder)
    from clipsuite.brain.pipeline import decoding_metrics

    subject, decoded, clip, features = _decoded(dataset, decoder, device, cache)
    metrics = decoding_metrics(decoded, subject, features, clip, n_way, draws)
    _print_metrics(metrics, out, f"decoding {dataset.name}")


@app.command()
@cli_errors
def encode(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Folder for maps (NIfTI, PNG) and metrics.csv.")] = Path(
        "brain_encoding"),
    space: Annotated[str, typer.Option(help="Features: image or text embeddings of the stimuli.")] = "image",
    alphas: AlphasOpt = "1e-1:1e5:10", cv: CvOpt = "loo",
    test_fraction: float = 0.2, seed: int = 0, per_session: bool = False,
    train_repetitions: Annotated[str, typer.Option(help="average | single")] = "single",
    model: ModelOpt = DEFAULT_MODEL, pretrained: PretrainedOpt = None, device: DeviceOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Voxel-wise encoding model from CLIP features; r (and noise-ceiling-normalised r) maps in subject space."""
    check_output_dir(out, "--output")
    _check_dataset(dataset)
    if space not in ("image", "text"):
        fail(f"--space '{space}': expected image or text")
    grid, folds, prep = _alphas(alphas), _cv(cv), _prep(test_fraction, seed, per_session, train_repetitions)
    _check_model(model, pretrained)
    import numpy as np

    from clipsuite.brain.encoding import fit_encoding, write_maps

    subject = _subject(dataset, prep)
    if subject.data.affine is None:
        fail(f"{dataset}: encoding maps need NIfTI input (this dataset has no voxel grid)")
    _, features = _features(subject, model, pretrained, device, cache)
    table = getattr(features, space)
    repeats = int(np.round(subject.test.repeats.mean()))
    single = subject.test_trials
    with progress() as bar:
        task = bar.add_task("ridge (per voxel)", total=None)
        result = fit_encoding(table[features.rows(subject.train.stimulus)], subject.train.responses,
                              table[features.rows(subject.test.stimulus)], subject.test.responses, grid, folds,
                              device, single_trials=(single.responses, single.stimulus) if repeats >= 2 else None,
                              n_repeats=repeats, on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    written = write_maps(result, subject.data, out, f"encoding r ({space} features)")
    _print_metrics(result.summary(), None, f"encoding {dataset.name}")  # metrics.csv: written with the maps
    console.print("maps: " + ", ".join(str(p) for p in written))


nsd_cmd.register(app)  # `clipsuite-brain nsd`: writes an NSD dataset config (nsd_cmd.py)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
