"""``clipsuite-remote translate``: fill a translations JSONL from a Karpathy caption JSON with a local
machine-translation model (MarianMT per language, or one NLLB-style model). Checked before torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipsuite.cli.common import cli_errors, console, fail, parse_list


def _models(specs: list[str]) -> dict[str, str] | str:
    """``LANG=MODEL`` per language, or one ``MODEL`` for every language (language codes)."""
    if len(specs) == 1 and "=" not in specs[0]:
        return specs[0]
    out: dict[str, str] = {}
    for spec in specs:
        language, _, model = spec.partition("=")
        if not language.strip() or not model.strip():
            fail(f"--mt '{spec}': give LANG=MODEL for each language, or one MODEL for all")
        out[language.strip()] = model.strip()
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    @cli_errors
    def translate(
        captions: Annotated[Path, typer.Argument(help="Karpathy-style caption JSON (English captions).")],
        out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Translations JSONL to write.")],
        languages: Annotated[str, typer.Option(help="Target languages, comma-separated, e.g. zh,ru,ko.")],
        mt: Annotated[list[str], typer.Option(help="LANG=MODEL (repeat per language; MarianMT style) or one "
                                              "MODEL for all (NLLB style, language codes). A folder or a "
                                              "model in the Hugging Face cache; nothing is downloaded.")],
        existing: Annotated[Path | None, typer.Option(help="Translations JSONL to keep and complete.")] = None,
        batch_size: Annotated[int, typer.Option(min=1)] = 16,
        device: Annotated[str, typer.Option(help="cpu, cuda ...")] = "cpu",
    ) -> None:
        """Translate every caption into each language it still lacks (RS-M-CLIP's translation step)."""
        from clipsuite.core.outputs import check_output_file

        check_output_file(out, "--output")
        if not captions.is_file():
            fail(f"{captions}: file not found")
        if existing is not None and not existing.is_file():
            fail(f"{existing}: file not found (--existing)")
        langs = [x for x in parse_list(languages, "--languages", kind="languages", example="zh,ru") if x != "en"]
        if not langs:
            fail("--languages: give at least one language other than en")
        models = _models(mt)
        if isinstance(models, dict) and (missing := [x for x in langs if x not in models]):
            fail(f"--mt: no model for {', '.join(missing)} (give {missing[0]}=MODEL)")
        from clipsuite.remote.evaluate import read_translations
        from clipsuite.remote.translate import Seq2SeqTranslator, caption_texts, fill_translations

        table = read_translations(existing) if existing is not None else None
        texts = caption_texts(captions)
        counts = fill_translations(texts, langs, Seq2SeqTranslator(models, batch_size=batch_size, device=device),
                                   out, table)
        done = ", ".join(f"{lang} {n}" for lang, n in counts.items())
        console.print(f"{len(texts)} captions; translated {done} -> {out}")
