"""``clipsuite-remote train``: RS-M-CLIP-style fine-tuning (multilingual contrastive + self-distillation),
RGB captions or multispectral class folders.

Parse -> config -> library call -> print: the run's options are ``RemoteRun``'s fields (torch-free,
checked there before torch is imported), the command adds only where it writes and how it shows progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console, fail
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.remote.train_run import RemoteRun

OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Run folder: checkpoints, metrics.jsonl, "
                                                "the trained model.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --output with the flags it was "
                                         "started with (flags given again must agree; --epochs, --max-steps and "
                                         "--checkpoint-every may change).")]


def register(app: typer.Typer) -> None:
    @app.command()
    @cli_errors
    @with_config_options(RemoteRun)  # the run's options: the fields of clipsuite.remote.train_run
    def train(
        ctx: typer.Context,
        values: dict[str, Any],
        output: OutputOpt = None,
        resume: ResumeOpt = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a (multilingual) CLIP on remote-sensing captions or class folders, optionally with RS-M-CLIP's
        self-distillation; writes a model folder that --model accepts (index, search, classify, evaluate)."""
        from clipsuite.core.run_folder import check_output_folder

        if output is None:
            fail("--output is required (the run folder)")
        check_output_folder(output, resume, overwrite, "--output")  # before any work: a user's folder is refused
        run = build_config(ctx, RemoteRun, values, resume_from=output if resume else None)
        from clipsuite.remote.train import train_remote_run

        result = train_remote_run(run, output, resume=resume, overwrite=overwrite, progress=not quiet)
        if result.main_process:  # under a multi-process launch, one process reports
            report_training(result.train, held_out=result.held_out, longer="--epochs or --max-steps")
            console.print(f"model saved to {result.output_dir} (use it with --model {result.output_dir})")
