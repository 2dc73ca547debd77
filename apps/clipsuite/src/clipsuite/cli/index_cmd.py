"""``clipsuite index build|search``: a faiss index over embedding shards, queried by text or image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clipsuite.cli.common import DeviceOpt, PretrainedOpt, cli_errors, console, need
from clipsuite.core.errors import InputError

if TYPE_CHECKING:
    from clipsuite.core.index_store import IndexStore, StoreConfig

index_app = typer.Typer(name="index", help="Build and query an embedding index (faiss).", no_args_is_help=True)


@index_app.command("build")
@cli_errors
def build(
    embeddings: Annotated[Path, typer.Argument(help="A folder written by `clipsuite embed`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Index folder to write (replaced atomically).")],
    kind: Annotated[str | None, typer.Option(
        help="exact | ivf | hnsw (ivfpq = ivf with --codes pq). Default: exact, or chosen by --max-memory.")] = None,
    codes: Annotated[str | None, typer.Option(help="What IVF lists hold: flat | sq8 | pq<m> (e.g. pq64).")] = None,
    nlist: Annotated[int | None, typer.Option(min=1, help="IVF cells (default ~4 sqrt(N), a power of two).")] = None,
    nprobe: Annotated[int, typer.Option(min=1, help="IVF cells searched per query (or set by --tune-queries).")] = 32,
    rerank: Annotated[int | None, typer.Option(
        min=1, help="Re-score rerank*k candidates exactly from the float16 vectors (1: off).")] = None,
    hnsw_m: Annotated[int, typer.Option(min=4, help="HNSW graph degree.")] = 32,
    ef_search: Annotated[int, typer.Option(min=1, help="HNSW search beam.")] = 128,
    max_memory: Annotated[str | None, typer.Option(
        help="Memory budget (e.g. 8G): picks kind, codes and sizes; the build never holds all vectors.")] = None,
    tune_queries: Annotated[Path | None, typer.Option(
        help="Queries to tune for: .jsonl/.txt texts (encoded with the index's model), .npy vectors or an "
             "embedding folder.")] = None,
    target_recall: Annotated[float, typer.Option(help="Recall@10 to tune for with --tune-queries.")] = 0.95,
    trained: Annotated[Path | None, typer.Option(
        help="Reuse the trained quantizer of this index folder (per-node builds that merge later).")] = None,
    device: DeviceOpt = None,
) -> None:
    """Build an index from every shard in EMBEDDINGS, in bounded memory (format 2)."""
    config = _checked_build(embeddings, output, tune_queries, trained, target_recall, kind=kind, codes=codes,
                            nlist=nlist, nprobe=nprobe, rerank=rerank, hnsw_m=hnsw_m, ef_search=ef_search,
                            max_memory=max_memory)
    from clipsuite.core.embed import read_shards
    from clipsuite.core.index_build import build_store, settle_config
    from clipsuite.core.index_store import ShardSource

    source = ShardSource(read_shards(embeddings))
    config = settle_config(config, source.total, source.dim, pq_codes=kind == "ivfpq" and codes is None,
                           chosen=kind is not None or codes is not None)
    tune = _tuner(tune_queries, target_recall, source.model, device) if tune_queries is not None else None
    _report_build(build_store(source, output, config, trained=trained, tune=tune), output)


def _checked_build(embeddings: Path, output: Path, tune_queries: Path | None, trained: Path | None,
                   target_recall: float, kind: str | None, codes: str | None, max_memory: str | None,
                   rerank: int | None, **sizes: Any) -> StoreConfig:
    """The paths and flags of ``index build``, checked before torch; the store's config from the flags."""
    from clipsuite.core.index_build import check_target
    from clipsuite.core.index_plan import parse_memory
    from clipsuite.core.index_store import StoreConfig
    from clipsuite.core.outputs import check_output_dir

    check_output_dir(output, "--output")  # a user's folder is refused before any work
    need(embeddings, "embeddings folder", "dir")
    need(tune_queries, "--tune-queries", "any")
    need(trained, "--trained index folder", "dir")
    if not 0 < target_recall <= 1:
        raise InputError(f"--target-recall must be in (0, 1], got {target_recall}")
    check_target(output)
    budget = parse_memory(max_memory) if max_memory is not None else None
    return StoreConfig(kind="ivf" if kind == "ivfpq" else (kind or "exact"), codes=codes or "flat",
                       rerank=rerank or 1, max_memory=budget, **sizes)


def _report_build(store: IndexStore, output: Path) -> None:
    shape = store.config.kind
    if shape == "ivf":
        shape += f", IVF{store.config.nlist} {store.config.codes}"
    console.print(f"indexed {len(store)} vectors ({store.dim}-d, {shape}) into {output}")
    record = store.config.tuning
    if record:
        how = f"nprobe {record['nprobe']}" if "nprobe" in record else (
            f"ef_search {record['ef_search']}" if "ef_search" in record else "exact")
        shift = ", queries moved across the modality gap to pick cells" if record.get("query_shift") else ""
        console.print(f"tuned on {record['queries']} queries: {how}, recall@{record['k']} {record['recall']:.3f} "
                      f"(target {record['target_recall']}){shift}")
        if not record.get("met", True):
            console.print("[yellow]warning:[/] the target recall was not reached even at the widest setting")


def _tuner(path: Path, target: float, model: str | None, device: str | None) -> Any:
    """A tune(store) callback; texts are read and checked now, encoded once the store exists."""
    from clipsuite.core.index_tuning import read_query_texts, read_query_vectors, tune

    vectors = read_query_vectors(path)
    texts = read_query_texts(path) if vectors is None else None
    if texts is not None and model is None:
        raise InputError(f"{path}: text queries need the embeddings' model, and the shards do not record one")

    def run(store: Any) -> dict[str, Any]:
        queries = vectors
        if queries is None:
            import torch

            from clipsuite.core import load_model

            torch.manual_seed(0)  # same random init as `clipsuite embed` for untrained specs
            queries = load_model(model, device=device).encode_texts(texts).cpu().numpy()
        return tune(store, queries, target=target, k=10)

    return run


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
    index_dirs: Annotated[list[Path], typer.Argument(
        help="A folder written by `clipsuite index build`; several are searched as one (same model).")],
    text: Annotated[list[str] | None, typer.Option("--text", "-t", help="A text query (repeatable).")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="An image query (repeatable).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Results per query.")] = 5,
    where: Annotated[str | None, typer.Option(
        help="SQL predicate on the metadata columns, e.g. \"split = 'val' AND year >= 2020\" (DuckDB).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Query model (default: the one the embeddings were made with).")] = None,
    pretrained: PretrainedOpt = None,
    nprobe: Annotated[int | None, typer.Option(min=1, help="Override the IVF cells searched.")] = None,
    ef_search: Annotated[int | None, typer.Option(min=1, help="Override the HNSW search beam.")] = None,
    rerank: Annotated[int | None, typer.Option(
        min=1, help="Re-score rerank*k candidates exactly from the stored float16 vectors.")] = None,
    device: DeviceOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also write the results (.json, .csv or .tsv).")] = None,
) -> None:
    """Nearest neighbours of text and/or image queries; prints a table."""
    stores = _checked_search(index_dirs, text, image, where, output)
    import torch

    from clipsuite.core import load_model
    from clipsuite.core.images import load_image

    spec = model or stores[0].config.model
    if spec is None:
        raise InputError(f"{index_dirs[0]}: the index does not record its model; pass --model")
    decoded = [load_image(path) for path in image or []]  # a bad query image fails before the model loads
    torch.manual_seed(0)  # same random init as `clipsuite embed` for untrained specs
    clip = load_model(spec, pretrained=pretrained, device=device)
    if clip.embed_dim != stores[0].dim:
        raise InputError(f"model '{spec}' embeds in {clip.embed_dim} dimensions but the index {index_dirs[0]} holds "
                         f"{stores[0].dim}-dimensional vectors (built with model '{stores[0].config.model}')")
    texts, labels = list(text or []), [*(text or []), *(str(p) for p in image or [])]
    records = []
    for offset, queries, is_text in ((0, clip.encode_texts(texts) if texts else None, True),
                                     (len(texts), clip.encode_images(decoded) if decoded else None, False)):
        if queries is not None:  # texts cross the modality gap to pick cells (when tuned so), images do not
            records += [{"query_text": labels[offset + r["query"]], **r, "query": offset + r["query"]}
                        for r in _search(stores, index_dirs, queries, k, where, nprobe, ef_search, rerank,
                                         is_text)]
    _show_hits(records, output)


def _checked_search(index_dirs: list[Path], text: list[str] | None, image: list[Path] | None, where: str | None,
                    output: Path | None) -> list[Any]:
    """The paths, queries and --where of ``index search``, checked before torch; the opened stores."""
    if output is not None:
        from clipsuite.core.outputs import check_output_file

        check_output_file(output, "--output", (".json", ".csv", ".tsv"))
        if output.suffix.lower() not in (".json", ".csv", ".tsv"):
            raise InputError(f"{output}: unknown output format (use .json, .csv or .tsv)")
    for index_dir in index_dirs:
        need(index_dir, "index folder", "dir")
    for query in image or []:
        need(query, "--image file", "file")
    if not text and not image:
        raise InputError("give at least one --text or --image query")
    stores = [_open_index(folder, where) for folder in index_dirs]  # a bad --where or folder fails before torch
    if len(stores) > 1 and not all(hasattr(s, "parts") for s in stores):
        raise InputError("searching several index folders needs folders written by this version; rebuild the "
                         "older ones with `clipsuite index build EMBEDDINGS --output FOLDER`")
    return stores


def _show_hits(records: list[dict[str, Any]], output: Path | None) -> None:
    table = Table("query", "rank", "score", "id", "path")
    for record in records:
        table.add_row(record["query_text"], str(record["rank"]), f"{record['score']:.4f}", str(record.get("id", "")),
                      str(record.get("path", "")))
    console.print(table)
    if output is not None:
        _write_results(output, records)
        console.print(f"wrote {len(records)} results to {output}")


def _open_index(folder: Path, where: str | None) -> Any:
    """A format-2 store, or (format 1, no --where) the older in-memory index; others refused in one line."""
    from clipsuite.core.json_files import read_json

    raw = read_json(folder / "index.json") if (folder / "index.json").is_file() else None
    if isinstance(raw, dict) and raw.get("format_version") == 1:
        if where is not None:
            raise InputError(f"{folder}: built by an older clipsuite without a metadata table, so --where cannot "
                             f"filter it; rebuild it with `clipsuite index build EMBEDDINGS --output {folder}`")
        from clipsuite.core.index import EmbeddingIndex

        return EmbeddingIndex.load(folder)
    from clipsuite.core.index_store import IndexStore

    store = IndexStore.open(folder)
    if where is not None:
        store.matching_rows(where)  # parse and bind it now: a typo costs milliseconds, not a model load
    return store


def _search(stores: list[Any], folders: list[Path], queries: Any, k: int, where: str | None, nprobe: int | None,
            ef_search: int | None, rerank: int | None, shift: bool) -> list[dict[str, Any]]:
    import numpy as np

    from clipsuite.core.index import EmbeddingIndex, SearchResult
    from clipsuite.core.index_store import search_many

    store = stores[0]
    if len(stores) > 1:  # each folder searched apart, the best k kept; hits say which folder they come from
        scores, rows, which = search_many(stores, queries, k, where=where, nprobe=nprobe, ef_search=ef_search,
                                          rerank=rerank, shift=shift)
        metadata = [[None if r < 0 else {**(stores[w].rows_metadata(np.array([[r]]))[0][0] or {}),
                                         "index": str(folders[w])} for r, w in zip(line_rows, line_which)]
                    for line_rows, line_which in zip(rows.tolist(), which.tolist())]
        return SearchResult(rows=rows, scores=scores, metadata=metadata).records()
    if isinstance(store, EmbeddingIndex):
        store.set_search_params(nprobe=nprobe, ef_search=ef_search)
        return store.search(queries, k=k).records()
    scores, rows = store.search(queries, k=k, where=where, nprobe=nprobe, ef_search=ef_search, rerank=rerank,
                                shift=shift)
    return SearchResult(rows=rows, scores=scores, metadata=store.rows_metadata(rows)).records()


@index_app.command("add")
@cli_errors
def add(
    index_dir: Annotated[Path, typer.Argument(help="A folder written by `clipsuite index build`.")],
    embeddings: Annotated[Path, typer.Argument(help="New shards (a folder written by `clipsuite embed`).")],
) -> None:
    """Add new shards with the index's trained quantizer; the folder is swapped whole (old or new, never a mix)."""
    need(index_dir, "index folder", "dir")
    need(embeddings, "embeddings folder", "dir")
    from clipsuite.core.index_store import IndexStore

    IndexStore.open(index_dir)  # an old or damaged folder is refused before torch
    from clipsuite.core.embed import read_shards
    from clipsuite.core.index_build import add_to_store
    from clipsuite.core.index_store import ShardSource

    store = add_to_store(index_dir, ShardSource(read_shards(embeddings)))
    console.print(f"added {store.parts[-1].rows} vectors (now {len(store)}) to {index_dir}")


@index_app.command("merge")
@cli_errors
def merge(
    index_dirs: Annotated[list[Path], typer.Argument(help="Index folders built with one quantizer (--trained).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Merged index folder to write.")],
) -> None:
    """Merge per-node index folders (same trained quantizer) into one, lists merged on disk."""
    from clipsuite.core.outputs import check_output_dir

    check_output_dir(output, "--output")  # a user's folder is refused before any work
    for folder in index_dirs:
        need(folder, "index folder", "dir")
    from clipsuite.core.index_build import merge_stores

    store = merge_stores(index_dirs, output)
    console.print(f"merged {len(index_dirs)} indexes ({len(store)} vectors) into {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
