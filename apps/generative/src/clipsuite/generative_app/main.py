"""``clipsuite-generative`` (also ``clipsuite generative``): tryon, edit, train, evaluate.

Thin: check arguments and paths (before torch is imported), call ``clipsuite.generative``, write PNGs
and an HTML grid, print. One-line errors, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console, err_console, fail, progress
from clipsuite.cli.train_report import report_training
from clipsuite.generative.names import CATEGORIES, PART_PRESETS, PART_SIZES, STAGE_PRESETS, STAGES, strength_problem

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

app = typer.Typer(name="generative", help="Virtual try-on (LaDI-VTON) and CLIP delta-space editing on diffusers; "
                  "try-on and editing metrics.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
train_app = typer.Typer(help="Train a try-on stage or a DeltaSpace mapper.", no_args_is_help=True)
app.add_typer(train_app, name="train")

ClipOpt = Annotated[str, typer.Option("--clip", help="CLIP model on the transformers backend: a transformers CLIP "
                                                     "folder, or tiny-transformers (offline).")]
PartsOpt = Annotated[str, typer.Option("--parts", help=f"Diffusion parts: {', '.join(PART_PRESETS)} (published "
                                                       "weights, from the Hugging Face cache), "
                                                       f"{', '.join(PART_SIZES)} (seeded random weights) or a local "
                                                       "diffusers pipeline folder.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")]
SizeOpt = Annotated[str, typer.Option(help="Working size HxW (multiples of 8), e.g. 512x384.")]


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        fail(f"--size '{text}': expected HxW, e.g. 512x384")
    if h < 8 or w < 8 or h % 8 or w % 8:
        fail(f"--size '{text}': both sides must be multiples of 8, at least 8")
    return h, w


def _file(path: Path | None, what: str) -> None:
    if path is not None and not path.is_file():
        fail(f"{path}: {what} not found")


def _stage_file(path: Path | None, what: str) -> None:
    """A stage file, or a released-weights name (LaDI-VTON's; the library says which stages it fits)."""
    if path is not None and str(path) not in STAGE_PRESETS:
        _file(path, what)


def _parts(spec: str, generates: bool = True) -> None:
    """``generates``: the command paints pictures with these parts (not: trains them)."""
    if spec not in PART_SIZES and spec not in PART_PRESETS and not Path(spec).is_dir():
        fail(f"--parts '{spec}': not a preset ({', '.join(PART_PRESETS)}), a size ({', '.join(PART_SIZES)}) "
             "nor a folder")
    if spec in PART_SIZES and generates:  # seeded random UNet and VAE: the pictures are noise, and the page says so too
        from clipsuite.core.notices import note_random_weights

        note_random_weights(f"the '{spec}' diffusion parts (--parts)")


def _out_png(out: Path) -> None:
    """The PNG, the HTML page beside it and the folder of inputs beside that (clipsuite.core.outputs)."""
    from clipsuite.core.outputs import check_output_dir, check_output_file

    check_output_file(out, "--output", (".png",))
    check_output_file(out.with_suffix(".html"), "--output")
    check_output_dir(_files(out), "--output")


def _files(out: Path) -> Path:
    """Where the pictures shown beside ``out`` go: a folder of our own, replaced whole on the next run."""
    return out.parent / f"{out.stem}_files"


def _clip_weights(spec: str) -> None:
    """An uncached --clip offline (ladi-vton-clip, an hf-hub: repo): one line from the Hugging Face cache, in
    this command's words, before torch is imported."""
    from clipsuite.core.weights_precheck import check_weights

    check_weights(spec, None, "--clip tiny-transformers", cli_fix="--clip DIR (a transformers CLIP folder)")


def _clip(spec: str, device: str) -> ClipModel:
    from clipsuite.core.models import load_model
    return load_model(spec, device=device)


@app.command()
@cli_errors
def tryon(
    person: Annotated[Path, typer.Option(help="Person photo.")],
    garment: Annotated[Path, typer.Option(help="Garment photo (flat, on white).")],
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Output PNG; an HTML grid and the inputs go beside it.")],
    category: Annotated[str, typer.Option(help=f"{', '.join(CATEGORIES)}")] = "upper_body",
    mask: Annotated[Path | None, typer.Option(help="Binary repaint mask (0/255), or give --parse.")] = None,
    parse: Annotated[Path | None, typer.Option(help="Human parsing PNG (LIP labels): the mask is made from it.")
                     ] = None,
    keypoints: Annotated[Path | None, typer.Option(help="OpenPose keypoint JSON (18 or 25 points).")] = None,
    garment_mask: Annotated[Path | None, typer.Option(help="Binary garment mask.")] = None,
    unet: Annotated[Path | None, typer.Option(help="Try-on UNet stage file (train tryon-stage tryon), or "
                                                   f"{' / '.join(STAGE_PRESETS)} (LaDI-VTON's released UNet, "
                                                   "from the torch hub cache; with --parts sd2-inpainting).")] = None,
    emasc: Annotated[Path | None, typer.Option(help="EMASC stage file.")] = None,
    warping: Annotated[Path | None, typer.Option(help="Warping stage file.")] = None,
    inversion: Annotated[Path | None, typer.Option(help="Inversion adapter stage file.")] = None,
    parts: PartsOpt = "micro", clip: ClipOpt = "tiny-transformers", size: SizeOpt = "64x48",
    steps: Annotated[int, typer.Option(min=1)] = 50, guidance: Annotated[float, typer.Option(min=0)] = 7.5,
    seed: int = 0, precision: Annotated[str, typer.Option(help="fp32, fp16, bf16 (weights).")] = "fp32",
    attention_slicing: bool = False, cpu_offload: bool = False, device: DeviceOpt = "cpu",
) -> None:
    """Dress PERSON in GARMENT: PNG result plus an HTML grid (person, garment, result)."""
    _out_png(out)  # before any work: a user's file or folder is never written over
    if category not in CATEGORIES:
        fail(f"unknown category '{category}' (choose from {', '.join(CATEGORIES)})")
    for path, what in ((person, "person image"), (garment, "garment image"), (mask, "mask"), (parse, "parsing"),
                       (keypoints, "keypoint file"), (garment_mask, "garment mask")):
        _file(path, what)
    for path, what in ((unet, "UNet stage file"), (emasc, "EMASC stage file"), (warping, "warping stage file"),
                       (inversion, "inversion stage file")):
        _stage_file(path, what)
    if mask is None and parse is None:
        fail("give --mask or --parse: the region to repaint")
    if precision not in ("fp32", "fp16", "bf16"):
        fail(f"--precision '{precision}': choose fp32, fp16 or bf16")
    hw = _size(size)
    from clipsuite.generative.sample_files import check_sample_files

    check_sample_files(person, garment, mask, parse, keypoints, garment_mask)  # each file read once, before torch
    _clip_weights(clip)
    _parts(parts)

    from clipsuite.generative.data import TryOnFiles, load_sample, to_image
    from clipsuite.generative.pipeline import MemoryOptions, SamplingOptions
    from clipsuite.generative.report import grid_html, save_png
    from clipsuite.generative.tryon import StageFiles, TryOnModel

    loaded = load_sample(TryOnFiles(person, garment, category, garment_mask, parse, keypoints, mask), hw)
    for note in loaded.notes:
        err_console.print(f"note: {note}", soft_wrap=True)
    model = TryOnModel.build(_clip(clip, device), parts, StageFiles(unet, emasc, warping, inversion), hw, device,
                             MemoryOptions(precision, attention_slicing, cpu_offload))
    with progress() as bar:
        task = bar.add_task("try-on", total=steps)
        result = model.run(loaded.sample, category, SamplingOptions(steps, guidance, seed),
                           on_step=lambda i, n: bar.update(task, completed=i, total=n))
    pictures = {"person": loaded.sample["image"], "garment": loaded.sample["cloth"],
                "warped garment": result["warped_cloth"][0]}
    rel = {}
    from clipsuite.core.staging import atomic_write_text, staged_folder

    with staged_folder(_files(out), command="generative tryon", flag="--output") as files:
        for name, tensor in pictures.items():
            png = f"{name.replace(' ', '_')}.png"
            save_png(to_image(tensor), files / png)
            rel[name] = f"{_files(out).name}/{png}"
    save_png(to_image(result["image"][0]), out)
    rel["result"] = out.name
    atomic_write_text(out.with_suffix(".html"), grid_html("clipsuite try-on", [(person.name, rel)], loaded.notes))
    console.print(f"wrote {out} and {out.with_suffix('.html')}")


@app.command()
@cli_errors
def edit(
    image: Annotated[Path, typer.Argument(help="Image to edit.")],
    target: Annotated[str, typer.Argument(help="Target prompt, e.g. 'a red car'.")],
    neutral: Annotated[str, typer.Option(help="Neutral prompt, e.g. 'a car'.")],
    mapper: Annotated[Path, typer.Option(help="DeltaSpace mapper (train delta).")],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Output PNG; an HTML grid goes beside it.")],
    strength: Annotated[float, typer.Option(help="Edit strength in [0, 2]: 0 no edit, 1 a change as large as a typical "
                                                 "one between two training images (the opposite edit: swap the "
                                                 "prompts).")] = 0.8,
    noise_strength: Annotated[float, typer.Option(help="img2img noise level in (0, 1].")] = 0.6,
    steps: Annotated[int, typer.Option(min=1)] = 20, guidance: Annotated[float, typer.Option(min=0)] = 3.0,
    seed: int = 0, parts: PartsOpt = "micro", clip: ClipOpt = "tiny-transformers", size: SizeOpt = "64x64",
    device: DeviceOpt = "cpu",
) -> None:
    """Edit IMAGE toward TARGET (relative to --neutral) through the DeltaSpace mapper."""
    _out_png(out)  # before any work: a user's file or folder is never written over
    _file(image, "image")
    _file(mapper, "mapper file")
    if not target.strip() or not neutral.strip():
        fail("the target and --neutral prompts must not be empty")
    if not 0 < noise_strength <= 1:
        fail(f"--noise-strength {noise_strength}: must be in (0, 1]")
    problem = strength_problem(strength, "--strength")
    if problem:
        fail(problem.replace("neutral prompts", "--neutral prompts"))
    _clip_weights(clip)
    _parts(parts)
    hw = _size(size)

    from PIL import Image

    from clipsuite.core.checkpoints import read_config
    from clipsuite.core.images import load_image
    from clipsuite.core.staging import atomic_write_text, staged_folder
    from clipsuite.generative.components import build_parts, load_parts
    from clipsuite.generative.data import to_image, to_tensor
    from clipsuite.generative.editing import EditOptions, VariationGenerator
    from clipsuite.generative.methods.deltaspace import DeltaMapper, edit_codes, embed_images, text_delta
    from clipsuite.generative.part_files import check_clip, load_part
    from clipsuite.generative.report import grid_html, save_png

    model = _clip(clip, device)
    check_clip(mapper, model)  # a mapper trained on another CLIP's embeddings would map them wrongly
    picture = load_image(image)
    c, e = embed_images(model, [picture])
    cfg = read_config(mapper) or {}
    delta_mapper = load_part(DeltaMapper(int(cfg.get("clip_dim", c.shape[1])), int(cfg.get("code_dim", e.shape[1])),
                                         int(cfg.get("hidden", 256))), mapper, "delta")
    delta = text_delta(model, target, neutral, float(delta_mapper.delta_scale))
    codes = edit_codes(delta_mapper, c, e, delta, strength)
    diffusion = build_parts(parts, 0, e.shape[1], in_channels=4) if parts in ("micro", "tiny") else load_parts(parts)
    pixels = to_tensor(picture.resize((hw[1], hw[0]), Image.Resampling.BICUBIC))[None]
    with progress() as bar:
        task = bar.add_task("edit", total=steps)
        options = EditOptions(steps, noise_strength, guidance, seed)
        edited = VariationGenerator(diffusion, device)(pixels, codes, options,
                                                       on_step=lambda i, n: bar.update(task, completed=i, total=n))
    with staged_folder(_files(out), command="generative edit", flag="--output") as files:
        save_png(to_image(pixels[0]), files / "input.png")
    save_png(to_image(edited[0]), out)
    atomic_write_text(out.with_suffix(".html"), grid_html(
        f"clipsuite edit: '{neutral}' -> '{target}' (strength {strength})",
        [(image.name, {"input": f"{_files(out).name}/input.png", "edited": out.name})]))
    console.print(f"wrote {out} and {out.with_suffix('.html')}")


ResumeOpt = Annotated[bool, typer.Option(help="Continue the run with the flags it was started with (flags given again "
                                                "must agree; --steps may be raised).")]


def _remember(ctx: typer.Context, run_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """``--resume``: the run's own flags for those not typed again (see clipsuite.cli.resume)."""
    from clipsuite.cli.resume import remembered

    return remembered(ctx, run_dir, options, adjustable=("steps",))


def _run_outputs(out: Path, run_dir: Path | None, resume: bool) -> Path:
    """The trained file and its run folder, checked before any work (clipsuite.core.outputs, run_folder)."""
    from clipsuite.core.outputs import check_output_file
    from clipsuite.core.run_folder import check_output_folder

    run = run_dir or out.with_suffix(".run")
    check_output_folder(run, resume, True, "--run-dir")  # a run of ours restarts, as before; a user's is refused
    check_output_file(out, "--output", (".safetensors",))
    return run


def _path(value: object) -> Path | None:
    return Path(str(value)) if value is not None else None


@train_app.command("delta")
@cli_errors
def train_delta(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Mapper file (.safetensors).")],
    images: Annotated[Path | None, typer.Argument(help="Folder of images (pairs are formed from them; no "
                                                       "captions). With --resume: the run's own.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoints and metrics (default: beside --output).")] = None,
    steps: Annotated[int, typer.Option(min=1)] = 500, batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: float = 1e-3, hidden: Annotated[int, typer.Option(min=8)] = 256, resume: ResumeOpt = False,
    clip: ClipOpt = "tiny-transformers", device: DeviceOpt = "cpu",
) -> None:
    """Train a DeltaSpace mapper on the images of a folder (text-free)."""
    run = _run_outputs(out, run_dir, resume)
    from clipsuite.cli.resume import absolute_if_exists

    options: dict[str, Any] = {"images": absolute_if_exists(images), "steps": steps, "batch_size": batch_size,
                               "lr": lr, "hidden": hidden, "clip": clip}
    if resume:
        options = _remember(ctx, run, options)
        images, steps, batch_size = _path(options["images"]), int(options["steps"]), int(options["batch_size"])
        lr, hidden, clip = float(options["lr"]), int(options["hidden"]), str(options["clip"])
    if images is None:
        fail("give the IMAGES folder (or --resume a run that has one)")
    if not images.is_dir():
        fail(f"{images}: folder not found")
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if len(paths) < 2:
        fail(f"{images}: needs at least 2 images (found {len(paths)})")

    from clipsuite.core.images import load_image
    from clipsuite.core.train import TrainConfig
    from clipsuite.generative.train import fit_delta_mapper

    config = TrainConfig(output_dir=run, max_steps=steps, batch_size=batch_size, lr=lr, resume=resume,
                         precision="fp32" if device == "cpu" else "auto")
    result = fit_delta_mapper(_clip(clip, device), [load_image(p) for p in paths], config, out, hidden=hidden,
                              options=options)
    report_training(result, longer="--steps")
    console.print(f"mapper: {out} (pairs of {len(paths)} images)", soft_wrap=True)


def _layout(data: Path, category: str) -> str:
    """``vitonhd`` (``DATA/train``) or ``dresscode`` (``DATA/{category}``), checked before torch."""
    if (data / "train").is_dir():
        return "vitonhd"
    if (data / category).is_dir():
        return "dresscode"
    fail(f"{data}: neither a VITON-HD root (train/) nor a Dress Code root with a {category}/ folder")
    raise AssertionError  # fail() exits


@train_app.command("tryon-stage")
@cli_errors
def train_tryon_stage(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help=f"{', '.join(STAGES)}")],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Stage file (.safetensors).")],
    data: Annotated[Path | None, typer.Option(help="VITON-HD root (train/, train_pairs.txt) or Dress Code root "
                                                   "({category}/, train_pairs.txt). With --resume: the run's own."
                                              )] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoints and metrics (default: beside --output).")] = None,
    warping: Annotated[Path | None, typer.Option(help="Trained warping stage (input of the tryon stage).")] = None,
    inversion: Annotated[Path | None, typer.Option(help="Trained inversion adapter (input of the tryon stage).")
                         ] = None,
    category: Annotated[str, typer.Option(help=f"{', '.join(CATEGORIES)}")] = "upper_body",
    steps: Annotated[int, typer.Option(min=1)] = 1000, batch_size: Annotated[int, typer.Option(min=1)] = 4,
    lr: float = 1e-5, resume: ResumeOpt = False, parts: PartsOpt = "micro", clip: ClipOpt = "tiny-transformers",
    size: SizeOpt = "64x48", device: DeviceOpt = "cpu",
) -> None:
    """Train one LaDI-VTON stage on a VITON-HD or Dress Code folder; the stage file is what the next stage (and
    tryon) loads: tryon takes --warping and --inversion."""
    run = _run_outputs(out, run_dir, resume)
    if stage not in STAGES:
        fail(f"unknown stage '{stage}' (choose from {', '.join(STAGES)})")
    from clipsuite.cli.resume import absolute_if_exists

    options: dict[str, Any] = {  # JSON values: a resumed run's come back from its file
        "stage": stage, "data": absolute_if_exists(data), "warping": absolute_if_exists(warping),
        "inversion": absolute_if_exists(inversion), "category": category, "steps": steps, "batch_size": batch_size,
        "lr": lr, "parts": absolute_if_exists(parts) if Path(parts).is_dir() else parts, "clip": clip, "size": size}
    if resume:
        options = _remember(ctx, run, options)
        data, warping, inversion = _path(options["data"]), _path(options["warping"]), _path(options["inversion"])
        category, steps, batch_size = str(options["category"]), int(options["steps"]), int(options["batch_size"])
        lr, parts, clip, size = float(options["lr"]), str(options["parts"]), str(options["clip"]), str(options["size"])
    if data is None:
        fail("give --data (or --resume a run that has it)")
    if category not in CATEGORIES:
        fail(f"unknown category '{category}' (choose from {', '.join(CATEGORIES)})")
    layout = _layout(data, category)
    _file(warping, "warping stage file")
    _file(inversion, "inversion stage file")
    if stage != "tryon" and (warping or inversion):
        fail(f"--warping/--inversion are inputs of the tryon stage, not of {stage}")
    _parts(parts, generates=False)
    hw = _size(size)

    from clipsuite.core.train import TrainConfig
    from clipsuite.generative.data import VitonHD
    from clipsuite.generative.dresscode import DressCode
    from clipsuite.generative.stages import make_stage_task
    from clipsuite.generative.train import train_stage
    from clipsuite.generative.tryon import StageFiles

    dataset = (VitonHD(data, "train", size=hw, category=category) if layout == "vitonhd"
               else DressCode(data, "train", size=hw, categories=[category]))
    model = _clip(clip, device)
    task = make_stage_task(stage, model, parts, hw, StageFiles(warping=warping, inversion=inversion), category)
    config = TrainConfig(output_dir=run, max_steps=steps, batch_size=batch_size, lr=lr, resume=resume,
                         precision="fp32" if device == "cpu" else "auto")
    result = train_stage(task, dataset, config, out, options)
    report_training(result, longer="--steps")
    console.print(f"stage {stage}: {out} ({len(dataset)} {layout} samples)", soft_wrap=True)


@app.command()
@cli_errors
def evaluate(
    real: Annotated[Path, typer.Option(help="Folder of real photos (the paired ground truth, same file names).")],
    generated: Annotated[Path, typer.Option(help="Folder of paired results.")],
    unpaired: Annotated[Path | None, typer.Option(help="Folder of unpaired results (swapped garments).")] = None,
    inception: Annotated[Path | None, typer.Option(help="torch-fidelity Inception weights file (default: the "
                                                        "torch hub cache).")] = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", "--out", help="Write the metrics as JSON.")] = None,
) -> None:
    """SSIM, LPIPS, FID, KID (paired; FID/KID unpaired too). Metrics whose network is absent say so."""
    if out is not None:
        from clipsuite.core.outputs import check_output_file

        check_output_file(out, "--output")
    for folder in (real, generated, unpaired):
        if folder is not None and not folder.is_dir():
            fail(f"{folder}: folder not found")
    _file(inception, "Inception weights file")

    from clipsuite.core.staging import atomic_write_json
    from clipsuite.generative.evaluate import read_image_folder, tryon_metrics

    reals, names = read_image_folder(real)
    paired, _ = read_image_folder(generated, names=names, like=reals)
    others = read_image_folder(unpaired, like=reals)[0] if unpaired is not None else None
    metrics = tryon_metrics(reals, paired, others, inception_weights=inception)
    for metric in metrics:
        value = f"{metric.value:.4f}" if metric.value is not None else f"unavailable: {metric.unavailable}"
        console.print(f"{metric.name:>14}  {value}", soft_wrap=True)
    if out is not None:
        atomic_write_json(out, {"images": len(names), "metrics": [m.as_dict() for m in metrics]})


def main() -> None:
    app()


if __name__ == "__main__":
    main()



