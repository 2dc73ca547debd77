"""``clipsuite index build|search``: a faiss index over embedding shards, queried by text or image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipsuite.cli.common import DeviceOpt, PretrainedOpt, cli_errors, console, need
from clipsuite.core.errors import InputError

index_app = typer.Typer(name="index", help="Build and query an embedding index (faiss).", no_args_is_help=True)


@index_app.command("build")
@cli_errors
def build(
    embeddings: Annotated[Path, typer.Argument(help="A folder written by `clipsuite embed`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Index folder to write (replaced atomically).")],
    kind: Annotated[str, typer.Option(help="exact | ivf | ivfpq | hnsw")] = "exact",
    nlist: Annotated[int | None, typer.Option(min=1, help="IVF cells (default ~4 sqrt(N)).")] = None,
    nprobe: Annotated[int, typer.Option(min=1, help="IVF cells searched per query.")] = 32,
    hnsw_m: Annotated[int, typer.Option(min=4, help="HNSW graph degree.")] = 32,
    ef_search: Annotated[int, typer.Option(min=1, help="HNSW search beam.")] = 128,
) -> None:
    """Build an index from every shard in EMBEDDINGS."""
    need(embeddings, "embeddings folder", "dir")  # before torch is imported
    from clipsuite.core.index import EmbeddingIndex, IndexConfig

    config = IndexConfig(kind=kind, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search)
    index = EmbeddingIndex.from_shards(embeddings, config)
    index.save(output)
    console.print(f"indexed {len(index)} vectors ({index.dim}-d, {kind}) into {output}")


def _write_results(path: Path, records: list[dict[str, Any]]) -> None:
    from clipsuite.core.staging import atomic_write_json
    from clipsuite.core.tabular import write_table

    if path.suffix.lower() == ".json":
        atomic_write_json(path, records)
    elif path.suffix.lower() in (".csv", ".tsv"):
        write_table(path, records)  # the core's delimiter rule; nested values as JSON
    else:
        raise InputError(f"{path}: unknown output format (use .json, .csv or .tsv)")


@index_app.command("search")
@cli_errors
def search(
    index_dir: Annotated[Path, typer.Argument(help="A folder written by `clipsuite index build`.")],
    text: Annotated[list[str] | None, typer.Option("--text", "-t", help="A text query (repeatable).")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="An image query (repeatable).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Results per query.")] = 5,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Query model (default: the one the embeddings were made with).")] = None,
    pretrained: PretrainedOpt = None,
    nprobe: Annotated[int | None, typer.Option(min=1, help="Override the IVF cells searched.")] = None,
    ef_search: Annotated[int | None, typer.Option(min=1, help="Override the HNSW search beam.")] = None,
    device: DeviceOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also write the results (.json, .csv or .tsv).")] = None,
) -> None:
    """Nearest neighbours of text and/or image queries; prints a table."""
    need(index_dir, "index folder", "dir")  # paths first, before torch is imported
    for query in image or []:
        need(query, "--image file", "file")
    import torch

    from clipsuite.core import load_model
    from clipsuite.core.images import load_image
    from clipsuite.core.index import EmbeddingIndex

    texts, images = list(text or []), list(image or [])
    if not texts and not images:
        raise InputError("give at least one --text or --image query")
    if output is not None and output.suffix.lower() not in (".json", ".csv", ".tsv"):
        raise InputError(f"{output}: unknown output format (use .json, .csv or .tsv)")
    index = EmbeddingIndex.load(index_dir)
    spec = model or index.config.model
    if spec is None:
        raise InputError(f"{index_dir}: the index does not record its model; pass --model")
    decoded = [load_image(path) for path in images]  # a bad query image fails before the model loads
    torch.manual_seed(0)  # same random init as `clipsuite embed` for untrained specs
    clip = load_model(spec, pretrained=pretrained, device=device)
    if clip.embed_dim != index.dim:
        raise InputError(f"model '{spec}' embeds in {clip.embed_dim} dimensions but the index {index_dir} holds "
                         f"{index.dim}-dimensional vectors (built with model '{index.config.model}')")
    index.set_search_params(nprobe=nprobe, ef_search=ef_search)
    queries = [clip.encode_texts(texts)] if texts else []
    if decoded:
        queries.append(clip.encode_images(decoded))
    labels = texts + [str(p) for p in images]
    result = index.search(torch.cat(queries), k=k)
    records = [{"query_text": labels[r["query"]], **r} for r in result.records()]
    table = Table("query", "rank", "score", "id", "path")
    for record in records:
        table.add_row(record["query_text"], str(record["rank"]), f"{record['score']:.4f}", str(record.get("id", "")),
                      str(record.get("path", "")))
    console.print(table)
    if output is not None:
        _write_results(output, records)
        console.print(f"wrote {len(records)} results to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
