"""``clipsuite-remote train``: RS-M-CLIP-style fine-tuning (multilingual contrastive + self-distillation),
RGB captions or multispectral class folders. Arguments and paths are checked before torch is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console, fail, parse_list
from clipsuite.cli.train_report import report_training
from clipsuite.remote_app.options import parse_bands, parse_stretch

BAND_RULES = ("repeat", "average")


def _languages(text: str) -> list[str]:
    return parse_list(text, "--languages", kind="languages", example="en,zh,ru")


def _as_list(stretch: tuple[float, float] | None) -> list[float] | None:
    return list(stretch) if stretch is not None else None  # stored with the run as JSON, compared on --resume


def register(app: typer.Typer) -> None:
    @app.command()
    @cli_errors
    def train(
        ctx: typer.Context,
        data: Annotated[Path | None, typer.Argument(
            help="Captions (Karpathy JSON as RSICD/RSITMD/UCM ship it, CSV, JSONL, .tar shards) or a folder of "
                 "class folders (EuroSAT, RESISC45; captions from the class names). With --resume it may be left "
                 "out.")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder: checkpoints, metrics.jsonl, "
                                                    "the trained model.")] = None,
        model: Annotated[str, typer.Option("--model", "-m", help="Model to fine-tune: rs-m-clip, an open_clip "
                                           "xlm-roberta model, a folder, or the offline tiny-multilingual.")
                         ] = "tiny-multilingual",
        pretrained: Annotated[str | None, typer.Option(help="Pretrained tag or weight file for --model.")] = None,
        languages: Annotated[str, typer.Option(help="Caption languages trained, comma-separated (en is the "
                                               "source; others come from --translations).")] = "en",
        translations: Annotated[Path | None, typer.Option(help="Translations JSONL: {\"caption\": ..., "
                                                          "\"translations\": {lang: text}} per line.")] = None,
        split: Annotated[str | None, typer.Option(help="Karpathy JSON: the training split.")] = "train",
        eval_split: Annotated[str | None, typer.Option("--eval-split", help="Karpathy JSON: held-out split "
                                                       "evaluated each epoch, per language (e.g. test).")] = None,
        distill_weight: Annotated[float, typer.Option("--distill-weight", min=0.0, help="Weight of RS-M-CLIP's "
                                                      "self-distillation term (0: contrastive only).")] = 0.0,
        teacher_decay: Annotated[float, typer.Option("--teacher-decay", help="EMA decay of the teacher at the "
                                                     "first step.")] = 0.996,
        teacher_decay_end: Annotated[float, typer.Option("--teacher-decay-end", help="... rising on a cosine to "
                                                         "this at the last step (DINO: 1).")] = 1.0,
        teacher_temp: Annotated[float, typer.Option("--teacher-temp", help="Teacher temperature (DINO: "
                                                    "0.04-0.07).")] = 0.04,
        teacher_temp_start: Annotated[float | None, typer.Option("--teacher-temp-start", help="Warm the teacher "
                                                                 "temperature up linearly from this ...")] = None,
        teacher_temp_warmup: Annotated[int, typer.Option("--teacher-temp-warmup", min=0, help="... over this "
                                                         "many steps.")] = 0,
        local_crops: Annotated[int, typer.Option("--local-crops", min=0, help="Local crops per image.")] = 4,
        bands: Annotated[str | None, typer.Option(help="Multispectral rasters: bands by name or 1-based index "
                                                  "(B02,B03,B04,B08), or 'all'. The model's patch embedding is "
                                                  "adapted to that many bands.")] = None,
        band_rule: Annotated[str, typer.Option("--band-rule", help="repeat | average: how N-band filters are "
                                               "built from the RGB ones.")] = "repeat",
        scale: Annotated[float | None, typer.Option(help="Rasters: DN multiplier (default by dtype: uint16 "
                                                    "1e-4).")] = None,
        s2_offset: Annotated[bool, typer.Option("--s2-offset", help="Sentinel-2 L2A baseline >= 04.00: "
                                                "subtract 1000 DN.")] = False,
        stretch: Annotated[str, typer.Option(help="Rasters: per-chip percentile stretch 'LOW,HIGH' or 'none'.")
                           ] = "2,98",
        nodata: Annotated[str | None, typer.Option(help="Rasters: fill value overriding the chips' own (default: "
                                                   "the file's; 0 in every band for untagged integer chips).")
                          ] = None,
        epochs: Annotated[int, typer.Option(min=1, help="Passes over every caption in every language.")] = 1,
        max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many "
                                                      "optimizer steps.")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 64,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-5,
        weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.2,
        warmup: Annotated[int, typer.Option(min=0, help="Linear warm-up steps.")] = 0,
        schedule: Annotated[str, typer.Option(help="cosine | constant (after warm-up).")] = "cosine",
        precision: Annotated[str, typer.Option(help="auto, fp32, amp_bf16 or amp_fp16.")] = "auto",
        grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
        checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", min=0, help="Steps between "
                                                             "checkpoints (default: each epoch end).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output with the flags it was "
                                             "started with (--epochs and --max-steps may be raised).")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")] = False,
        seed: Annotated[int, typer.Option()] = 0,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a (multilingual) CLIP on remote-sensing captions or class folders, optionally with RS-M-CLIP's
        self-distillation; writes a model folder that --model accepts (index, search, classify, evaluate)."""
        if output is None:
            fail("--output is required (the run folder)")
        from clipsuite.core.run_folder import check_output_folder

        check_output_folder(output, resume, overwrite, "--output")  # before any work: a user's folder is refused
        if data is not None and not data.exists():
            fail(f"{data}: not found")
        if translations is not None and not translations.is_file():
            fail(f"{translations}: file not found")
        if band_rule not in BAND_RULES:
            fail(f"--band-rule '{band_rule}': choose repeat or average")
        if schedule not in ("cosine", "constant"):
            fail(f"--schedule '{schedule}': choose cosine or constant")
        if not 0 < teacher_decay <= teacher_decay_end <= 1 or teacher_decay >= 1:
            fail(f"--teacher-decay {teacher_decay} and --teacher-decay-end {teacher_decay_end}: need "
                 "0 < teacher decay < 1 and teacher decay <= end <= 1")
        if teacher_temp <= 0 or (teacher_temp_start is not None and teacher_temp_start <= 0):
            fail("--teacher-temp and --teacher-temp-start must be > 0")
        from clipsuite.remote.rasters import check_scale

        check_scale(scale, "--scale")
        from clipsuite.remote.fill import parse_nodata

        fill_value = parse_nodata(nodata)
        from clipsuite.cli.resume import absolute_if_exists, remembered

        o: dict[str, Any] = {"data": absolute_if_exists(data), "model": model, "pretrained": pretrained,
             "languages": _languages(languages), "translations": absolute_if_exists(translations), "split": split,
             "eval_split": eval_split, "distill_weight": distill_weight, "teacher_decay": teacher_decay,
             "teacher_decay_end": teacher_decay_end, "teacher_temp": teacher_temp,
             "teacher_temp_start": teacher_temp_start, "teacher_temp_warmup": teacher_temp_warmup,
             "local_crops": local_crops, "bands": parse_bands(bands, allow_all=True), "band_rule": band_rule,
             "scale": scale, "s2_offset": s2_offset, "stretch": _as_list(parse_stretch(stretch)), "nodata": fill_value,
             "epochs": epochs,
             "max_steps": max_steps,
             "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
             "schedule": schedule, "precision": precision, "grad_accum": grad_accum,
             "checkpoint_every": checkpoint_every, "seed": seed}
        if resume:
            o = remembered(ctx, output, o, adjustable=("epochs", "max_steps", "checkpoint_every"))
        if o["data"] is None:
            fail("missing DATA (captions or class folders); only --resume of a run started by this command may "
                 "leave it out")
        from clipsuite.remote.held_out import check_held_out

        check_held_out(o["data"], o["split"], o["eval_split"])  # before torch: a CSV has no test split
        from clipsuite.remote.data import RasterInput
        from clipsuite.remote.rasters import S2_L2A_OFFSET_DN
        from clipsuite.remote.train import RemoteTrainConfig, TrainingData, train_remote

        raster = None
        if o["bands"] is not None or o["scale"] is not None or o["s2_offset"] or o.get("nodata") is not None:
            raster = RasterInput(tuple(o["bands"]) if o["bands"] is not None else None, o["scale"],
                                 S2_L2A_OFFSET_DN if o["s2_offset"] else 0.0,
                                 tuple(o["stretch"]) if o["stretch"] is not None else None, o.get("nodata"))
        source = TrainingData(Path(o["data"]), split=o["split"], eval_split=o["eval_split"],
                              translations=Path(o["translations"]) if o["translations"] else None, raster=raster)
        settings = RemoteTrainConfig(languages=tuple(o["languages"]), distill_weight=o["distill_weight"],
                                     teacher_decay=o["teacher_decay"], local_crops=o["local_crops"],
                                     teacher_decay_end=o["teacher_decay_end"], teacher_temp=o["teacher_temp"],
                                     teacher_temp_start=o["teacher_temp_start"],
                                     teacher_temp_warmup_steps=o["teacher_temp_warmup"])
        result = train_remote(source, output, o["model"], pretrained=o["pretrained"], settings=settings,
                              band_rule=o["band_rule"], overwrite=overwrite, options=o, epochs=o["epochs"],
                              max_steps=o["max_steps"], batch_size=o["batch_size"], lr=o["lr"],
                              weight_decay=o["weight_decay"], warmup_steps=o["warmup"], schedule=o["schedule"],
                              precision=o["precision"], grad_accum=o["grad_accum"],
                              checkpoint_every=o["checkpoint_every"], resume=resume, seed=o["seed"],
                              progress=not quiet)
        if not result.main_process:
            return
        report_training(result.train, held_out=result.held_out, longer="--epochs or --max-steps")
        console.print(f"model saved to {result.output_dir} (use it with --model {result.output_dir})")
