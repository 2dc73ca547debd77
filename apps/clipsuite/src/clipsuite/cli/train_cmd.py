"""``clipsuite train``: contrastive fine-tuning (CLIP or SigLIP loss) from an image-text source.

Parse -> config -> library call -> print: the run's options are ``ContrastiveRun``'s fields (torch-free,
checked there), the command adds only where it writes and how it shows progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console, fail
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.core.contrastive_run import ContrastiveRun

OutputOpt = Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Folder for checkpoints, metrics and the model.")]


def register(app: typer.Typer) -> None:
    @app.command("train")
    @cli_errors
    @with_config_options(ContrastiveRun)  # the run's options: the fields of clipsuite.core.contrastive_run
    def train(
        ctx: typer.Context,
        values: dict[str, Any],
        output: OutputOpt = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output from its last "
                                                              "checkpoint, with the flags it was started with "
                                                              "(flags given again must agree; --epochs and "
                                                              "--max-steps may be raised).")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")] = False,
        verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                             help="Decode every image once before training.")] = True,
        workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a CLIP model contrastively on image-caption pairs; writes a model folder that
        --model accepts. Several GPUs: `accelerate launch --multi_gpu -m clipsuite.cli.main train ...`;
        several CPU processes: `torchrun --nproc_per_node N -m clipsuite.cli.main train ...`."""
        from clipsuite.core.run_folder import check_output_folder

        data = values["data"]
        if resume and output is None and data is not None and (Path(data) / "trainer_state.json").is_file():
            output, values["data"] = Path(data), None  # `clipsuite train RUN --resume`
        if output is None:
            fail("--output is required (the run folder)")
        check_output_folder(output, resume, overwrite)  # --output and the run first: before torch is imported
        run = build_config(ctx, ContrastiveRun, values, resume_from=output if resume else None)
        from clipsuite.core.contrastive import train_run

        result = train_run(run, output, resume=resume, overwrite=overwrite, verify=verify, num_workers=workers,
                           progress=not quiet)
        if result.main_process:  # under a multi-process launch, one process reports
            report_training(result.train, longer="--epochs or --max-steps")
            console.print(f"model saved to {result.output_dir} (use it with --model {result.output_dir})")
