"""``clipsuite demo``: the whole core end to end, offline, in about three minutes on two CPU cores.

Synthetic captions -> train ``tiny`` from scratch -> zero-shot accuracy on held-out images against
chance -> faiss index answering a text query -> each installed domain's demo step -> an HTML report.
Everything is written to a staging folder and moved into place at the end, so a failed run leaves
no half-written report behind.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import typer

from clipsuite.cli.common import cli_errors, console, fail

QUERY = "a red circle"


@dataclass
class DemoSettings:
    output: Path
    train_images: int = 2000
    test_images: int = 240
    steps: int = 250
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    domains: bool = True


def _log(message: str) -> None:
    console.print(f"[cyan]demo[/] {message}")


def _train(settings: DemoSettings, train_csv: Path, out: Path) -> tuple[Path, list[float]]:
    from clipsuite.core.contrastive import train_contrastive
    from clipsuite.core.train import read_metrics

    # No augmentation: captions name positions, which random crops would blur.
    result = train_contrastive(train_csv, out / "model", model="tiny", augment=False, verify=False,
                               max_steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                               weight_decay=0.1, warmup_steps=max(1, settings.steps // 10), schedule="cosine",
                               seed=settings.seed, log_every=5, drop_last=True)
    losses = [float(row["loss"]) for row in read_metrics(result.output_dir) if "loss" in row]
    return Path(result.output_dir), losses


def _zero_shot(model: Any, test_csv: Path) -> dict[str, Any]:
    from clipsuite.core.metrics import topk_accuracy
    from clipsuite.core.synthetic import class_names
    from clipsuite.core.tabular import read_table
    from clipsuite.core.zeroshot import build_classifier, logits

    rows = [dict(record.values) for record in read_table(test_csv, required=("filepath", "title", "label"))]
    features = model.encode_images([test_csv.parent / r["filepath"] for r in rows])
    classifier = build_classifier(model, class_names(), ["a {}.", "a photo of a {}."])
    scores = logits(features, classifier, model.logit_scale())
    accuracy = topk_accuracy(scores, [int(r["label"]) for r in rows], topk=(1, 3))
    return {"top1": accuracy[1], "top3": accuracy[3], "chance_top1": 1 / len(class_names()),
            "classes": len(class_names()), "images": len(rows), "features": features, "rows": rows}


def _search(model: Any, features: Any, rows: list[dict[str, str]], test_csv: Path, out: Path) -> dict[str, Any]:
    from clipsuite.core.index import EmbeddingIndex
    from clipsuite.core.visualize import contact_sheet

    metadata = [{"id": i, "path": r["filepath"], "caption": r["title"], "class_name": r["class_name"]}
                for i, r in enumerate(rows)]
    index = EmbeddingIndex.build(features, metadata, kind="exact")
    index.save(out / "index")
    hits = index.search(model.encode_texts([QUERY]), k=10).records()
    precision = sum(h["class_name"] == "red circle" for h in hits) / max(1, len(hits))
    contact_sheet([test_csv.parent / h["path"] for h in hits],
                  [f"{h['rank']}. {h['score']:.2f}" for h in hits], out / "query_hits.png",
                  title=f"query: '{QUERY}'")
    return {"query": QUERY, "precision_at_10": precision, "hits": hits}


def _relative_to(value: Any, folder: Path) -> Any:
    if isinstance(value, (str, Path)) and Path(value).is_absolute():
        try:
            return str(Path(value).relative_to(folder))
        except ValueError:
            return str(value)
    return value


def _domain_steps(out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for entry in sorted(entry_points(group="clipsuite.demo_steps"), key=lambda e: e.name):
        _log(f"domain step: {entry.name}")
        started = time.perf_counter()
        step = entry.load()
        folder = out / entry.name
        folder.mkdir(parents=True, exist_ok=True)
        summary = step(folder, lambda message, name=entry.name: _log(f"[{name}] {message}"))
        # the staging folder is renamed at the end: keep paths relative to the step's folder
        summary = {key: _relative_to(value, folder) for key, value in summary.items()}
        summary["seconds"] = round(time.perf_counter() - started, 1)
        results[entry.name] = summary
    return results


def _write_report(out: Path, summary: dict[str, Any]) -> None:
    zs, search = summary["zero_shot"], summary["search"]
    domain_rows = "".join(
        f"<h2>{html.escape(name)}</h2><pre>{html.escape(json.dumps(result, indent=1, default=str))}</pre>"
        + (f'<p><a href="{name}/{html.escape(str(result["report"]))}">open the {name} report</a></p>'
           if "report" in result else "")
        + "".join(f'<img src="{name}/{html.escape(str(v))}" alt="{html.escape(k)}">'
                  for k, v in result.items() if isinstance(v, str) and v.endswith(".png"))
        for name, result in summary["domains"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>clipsuite demo</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}} td,th{{padding:4px 10px}}</style></head><body>
<h1>clipsuite demo</h1>
<p>Model <code>tiny</code> trained from scratch for {summary['train']['steps']} steps on
{summary['train']['images']} synthetic captioned images ({summary['train']['seconds']} s).</p>
<img src="loss.png" alt="training loss">
<h2>Zero-shot on held-out images</h2>
<table><tr><th>top-1</th><th>top-3</th><th>chance (top-1)</th><th>classes</th><th>images</th></tr>
<tr><td>{zs['top1']:.3f}</td><td>{zs['top3']:.3f}</td><td>{zs['chance_top1']:.3f}</td><td>{zs['classes']}</td>
<td>{zs['images']}</td></tr></table>
<h2>Index search</h2><p>Query <q>{html.escape(search['query'])}</q>: precision@10 {search['precision_at_10']:.2f}</p>
<img src="query_hits.png" alt="query hits">
{domain_rows}
</body></html>"""
    (out / "index.html").write_text(page, encoding="utf-8")


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every demo step into a staging folder; move it to ``settings.output`` when all succeeded."""
    from clipsuite.core import load_model
    from clipsuite.core.staging import staged_folder
    from clipsuite.core.synthetic import write_shapes_dataset
    from clipsuite.core.visualize import line_plot

    # built in a hidden sibling folder and swapped in when complete; durable=False: fsyncing thousands
    # of scratch images costs seconds, and the swap is atomic without it
    with staged_folder(settings.output, durable=False) as staging:
        started = time.perf_counter()
        _log(f"writing {settings.train_images} + {settings.test_images} synthetic captioned images")
        train_csv = write_shapes_dataset(staging / "data", settings.train_images, settings.seed, name="train.csv")
        test_csv = write_shapes_dataset(staging / "data", settings.test_images, settings.seed + 1, name="test.csv")
        _log(f"training tiny from scratch for {settings.steps} steps (batch {settings.batch_size})")
        t0 = time.perf_counter()
        model_dir, losses = _train(settings, train_csv, staging)
        train_seconds = round(time.perf_counter() - t0, 1)
        line_plot(losses, staging / "loss.png", title="training loss")
        model = load_model(str(model_dir), device="cpu")
        zero_shot = _zero_shot(model, test_csv)
        _log(f"zero-shot top-1 {zero_shot['top1']:.3f} (chance {zero_shot['chance_top1']:.3f}) "
             f"on {zero_shot['images']} held-out images")
        search = _search(model, zero_shot.pop("features"), zero_shot.pop("rows"), test_csv, staging)
        _log(f"index query '{QUERY}': precision@10 {search['precision_at_10']:.2f}")
        domains = _domain_steps(staging) if settings.domains else {}
        summary = {"train": {"steps": settings.steps, "images": settings.train_images, "seconds": train_seconds,
                             "final_loss": losses[-1] if losses else None},
                   "zero_shot": zero_shot, "search": {k: v for k, v in search.items() if k != "hits"},
                   "domains": domains, "seconds": round(time.perf_counter() - started, 1)}
        (staging / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        _write_report(staging, summary | {"search": search})
    return summary


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @cli_errors
    def demo(output: Path = typer.Option(Path("clipsuite-demo"), help="Folder for the report."),
             steps: int = typer.Option(250, help="Training steps for tiny."),
             train_images: int = typer.Option(2000, help="Synthetic training images."),
             domains: bool = typer.Option(True, help="Run each installed domain's demo step too."),
             seed: int = typer.Option(0)) -> None:
        """Train tiny offline on synthetic data, check zero-shot and search, run domain demos, write a report."""
        settings = DemoSettings(output=output, steps=steps, train_images=train_images, domains=domains, seed=seed)
        summary = run_demo(settings)
        zs = summary["zero_shot"]
        if zs["top1"] < 3 * zs["chance_top1"]:
            fail(f"zero-shot top-1 {zs['top1']:.3f} is not far above chance {zs['chance_top1']:.3f}: "
                 "training did not learn (report kept in {output})")
        console.print(f"[bold green]done[/] in {summary['seconds']} s: report at {output / 'index.html'}")
