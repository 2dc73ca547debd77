"""``clipsuite train``: contrastive fine-tuning (CLIP or SigLIP loss) from an image-text source."""

from __future__ import annotations

from pathlib import Path

import typer

from clipsuite.cli.common import cli_errors, console


def register(app: typer.Typer) -> None:
    @app.command("train")
    @cli_errors
    def train(
        data: str = typer.Argument(..., help="Image-text pairs: CSV/TSV (filepath, title), JSONL, Karpathy JSON, "
                                             "or webdataset .tar shards (a file, a folder, or a {000..009} pattern)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for checkpoints, metrics and the model."),
        model: str = typer.Option("tiny", "--model", "-m", help="Model spec (clipsuite models lists names)."),
        pretrained: str = typer.Option(None, help="Pretrained tag or weight file."),
        epochs: int = typer.Option(1, help="Passes over the data."),
        max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
        batch_size: int = typer.Option(32, "--batch-size", "-b", help="Pairs per step and process."),
        lr: float = typer.Option(5e-4, help="Peak learning rate (AdamW, cosine schedule)."),
        weight_decay: float = typer.Option(0.1, "--weight-decay"),
        warmup: int = typer.Option(0, help="Linear warm-up steps."),
        loss: str = typer.Option("clip", help="clip (softmax InfoNCE) or siglip (sigmoid)."),
        lock_image: bool = typer.Option(False, "--lock-image", help="Freeze the image tower."),
        lock_text: bool = typer.Option(False, "--lock-text", help="Freeze the text tower."),
        shared_positives: bool = typer.Option(False, "--shared-positives",
                                              help="clip loss: repeated captions in a batch are all positives."),
        precision: str = typer.Option("auto", help="auto, fp32, amp_bf16 or amp_fp16 (float32 weights, autocast "
                                      "compute). auto: amp_bf16 on a GPU (amp_fp16 on an older one), fp32 on the CPU, "
                                      "or what `accelerate launch --mixed_precision` says."),
        distributed: str = typer.Option("ddp", help="Several processes: ddp (replicated model) or fsdp (model "
                                                    "sharded across GPUs, for models that do not fit one)."),
        grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step."),
        grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Trade compute for memory."),
        ema: float = typer.Option(None, help="EMA decay of the weights, e.g. 0.999."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints "
                                                                             "(default: each epoch end; 0: only "
                                                                             "the final one)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in --output."),
        image_column: str = typer.Option("filepath", "--image-column", help="Column (or JSONL key) of image paths."),
        caption_column: str = typer.Option("title", "--caption-column", help="Column (or JSONL key) of captions."),
        split: str = typer.Option(None, help="Karpathy JSON only: train on this split."),
        holdout: float = typer.Option(0.0, help="Fraction of pairs held out for retrieval recall each epoch."),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Decode every image once before training."),
        workers: int = typer.Option(0, help="DataLoader worker processes."),
        seed: int = typer.Option(0),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Fine-tune a CLIP model contrastively on image-caption pairs; writes a model folder that
        --model accepts. Several GPUs: `accelerate launch --multi_gpu -m clipsuite.cli.main train ...`;
        several CPU processes: `torchrun --nproc_per_node N -m clipsuite.cli.main train ...`."""
        from clipsuite.core.contrastive import ContrastiveConfig, train_contrastive

        settings = ContrastiveConfig(loss=loss, lock_image=lock_image, lock_text=lock_text,
                                     shared_positives=shared_positives)
        result = train_contrastive(
            data, output, model, pretrained=pretrained, contrastive=settings, image_column=image_column,
            caption_column=caption_column, split=split, verify=verify, holdout=holdout, overwrite=overwrite,
            epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            warmup_steps=warmup, precision=precision, grad_accum=grad_accum, grad_checkpointing=grad_checkpointing,
            ema_decay=ema, checkpoint_every=checkpoint_every, resume=resume, num_workers=workers, seed=seed,
            distributed=distributed,
            progress=not quiet)
        if not result.main_process:  # under a multi-process launch, one process reports
            return
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.train.metrics.items())
        resumed = f" (resumed at step {result.train.resumed_from})" if result.train.resumed_from is not None else ""
        console.print(f"trained {result.train.step} steps{resumed}: {metrics}")
        console.print(f"model saved to {result.output_dir} (use it with --model {result.output_dir})")
