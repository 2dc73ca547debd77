"""``clipsuite train``: contrastive fine-tuning (CLIP or SigLIP loss) from an image-text source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import ModelOpt, PretrainedOpt, cli_errors, console, fail, need
from clipsuite.cli.train_report import report_training

DataArg = Annotated[str | None, typer.Argument(
    help="Image-text pairs: CSV/TSV (filepath, title), JSONL, Karpathy JSON, or webdataset .tar shards (a file, a "
         "folder, or a {000..009} pattern). With --resume it may be left out, or be the run folder itself.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Folder for checkpoints, metrics and the model.")]
PrecisionOpt = Annotated[str, typer.Option(help="auto, fp32, amp_bf16 or amp_fp16 (float32 weights, autocast compute). "
                                                "auto: amp_bf16 on a GPU (amp_fp16 on an older one), fp32 on the CPU, "
                                                "or what `accelerate launch --mixed_precision` says.")]
DistributedOpt = Annotated[str, typer.Option(help="Several processes: ddp (replicated model) or fsdp (model sharded "
                                                  "across GPUs, for models that do not fit one).")]


def register(app: typer.Typer) -> None:
    @app.command("train")
    @cli_errors
    def train(
        ctx: typer.Context,
        data: DataArg = None,
        output: OutputOpt = None,
        model: ModelOpt = "tiny",
        pretrained: PretrainedOpt = None,
        epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 1,
        max_steps: Annotated[int | None, typer.Option("--max-steps",
                                                      help="Stop after this many optimizer steps.")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Pairs per step and process.")] = 32,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine schedule).")] = 5e-4,
        weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")] = 0.1,
        warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 0,
        loss: Annotated[str, typer.Option(help="clip (softmax InfoNCE) or siglip (sigmoid).")] = "clip",
        lock_image: Annotated[bool, typer.Option("--lock-image", help="Freeze the image tower.")] = False,
        lock_text: Annotated[bool, typer.Option("--lock-text", help="Freeze the text tower.")] = False,
        shared_positives: Annotated[bool, typer.Option(
            "--shared-positives", help="clip loss: repeated captions in a batch are all positives.")] = False,
        precision: PrecisionOpt = "auto",
        distributed: DistributedOpt = "ddp",
        grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")] = 1,
        grad_checkpointing: Annotated[bool, typer.Option("--grad-checkpointing",
                                                         help="Trade compute for memory.")] = False,
        ema: Annotated[float | None, typer.Option(help="EMA decay of the weights, e.g. 0.999.")] = None,
        checkpoint_every: Annotated[int | None, typer.Option(
            "--checkpoint-every", help="Steps between checkpoints (default: each epoch end; 0: only the final "
                                       "one).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output from its last "
                                                              "checkpoint, with the flags it was started with "
                                                              "(flags given again must agree; --epochs and "
                                                              "--max-steps may be raised).")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")] = False,
        image_column: Annotated[str, typer.Option("--image-column",
                                                  help="Column (or JSONL key) of image paths.")] = "filepath",
        caption_column: Annotated[str, typer.Option("--caption-column",
                                                    help="Column (or JSONL key) of captions.")] = "title",
        split: Annotated[str | None, typer.Option(help="Karpathy JSON only: train on this split.")] = None,
        holdout: Annotated[float, typer.Option(help="Fraction of pairs held out for retrieval recall each "
                                                    "epoch.")] = 0.0,
        verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                             help="Decode every image once before training.")] = True,
        workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
        seed: Annotated[int, typer.Option(help="Seed of the data order and the initialisation.")] = 0,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a CLIP model contrastively on image-caption pairs; writes a model folder that
        --model accepts. Several GPUs: `accelerate launch --multi_gpu -m clipsuite.cli.main train ...`;
        several CPU processes: `torchrun --nproc_per_node N -m clipsuite.cli.main train ...`."""
        from clipsuite.cli.resume import absolute_if_exists, remembered
        from clipsuite.core.run_folder import check_output_folder

        if resume and output is None and data is not None and (Path(data) / "trainer_state.json").is_file():
            output, data = Path(data), None  # `clipsuite train RUN --resume`
        if output is None:
            fail("--output is required (the run folder)")
        # --output and the data first: a typo answers before torch is imported
        check_output_folder(output, resume, overwrite)
        if data is not None and not any(mark in data for mark in ("{", "://", "::", "pipe:")):
            need(Path(data), "data")
        from clipsuite.core.contrastive import ContrastiveConfig, train_contrastive
        # the run's identity, stored with it; --quiet, --workers, --verify and --overwrite are not part of it
        o: dict[str, Any] = {
             "data": absolute_if_exists(data), "model": model, "pretrained": pretrained, "epochs": epochs,
             "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
             "warmup": warmup, "loss": loss, "lock_image": lock_image, "lock_text": lock_text,
             "shared_positives": shared_positives, "precision": precision, "distributed": distributed,
             "grad_accum": grad_accum, "grad_checkpointing": grad_checkpointing, "ema": ema,
             "checkpoint_every": checkpoint_every, "image_column": image_column, "caption_column": caption_column,
             "split": split, "holdout": holdout, "seed": seed}
        if resume:
            o = remembered(ctx, output, o, adjustable=("epochs", "max_steps", "checkpoint_every"))
        if o["data"] is None:
            fail("missing DATA (image-text pairs); only --resume of a run started with this clipsuite may leave "
                 "it out")
        if o["split"] is not None and Path(str(o["data"])).suffix.lower() != ".json":
            fail(f"--split {o['split']}: {o['data']} has no splits (only a Karpathy JSON does); every row would "
                 "be trained on")
        settings = ContrastiveConfig(loss=o["loss"], lock_image=o["lock_image"], lock_text=o["lock_text"],
                                     shared_positives=o["shared_positives"])
        result = train_contrastive(
            o["data"], output, o["model"], pretrained=o["pretrained"], contrastive=settings,
            image_column=o["image_column"], caption_column=o["caption_column"], split=o["split"], verify=verify,
            holdout=o["holdout"], overwrite=overwrite, options=o, epochs=o["epochs"], max_steps=o["max_steps"],
            batch_size=o["batch_size"], lr=o["lr"], weight_decay=o["weight_decay"], warmup_steps=o["warmup"],
            precision=o["precision"], grad_accum=o["grad_accum"], grad_checkpointing=o["grad_checkpointing"],
            ema_decay=o["ema"], checkpoint_every=o["checkpoint_every"], resume=resume, num_workers=workers,
            seed=o["seed"], distributed=o["distributed"], progress=not quiet)
        if not result.main_process:  # under a multi-process launch, one process reports
            return
        report_training(result.train, longer="--epochs or --max-steps")
        console.print(f"model saved to {result.output_dir} (use it with --model {result.output_dir})")
