"""``clipsuite demo``: the whole core end to end, offline, in about three minutes on two CPU cores.

Synthetic captions -> train ``tiny`` from scratch -> zero-shot accuracy on held-out images against
chance -> faiss index answering a text query -> each installed domain's demo step -> an HTML report.
Everything is written to a staging folder and moved into place at the end, so a failed run leaves
no half-written report behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console, fail
from clipsuite.core.html_report import escape, figure, page, table
from clipsuite.core.plugins import DemoStepResult, PluginError, Registry, describe

# step(folder, log) -> DemoStepResult, declared by each domain app
DEMO_STEPS: Registry[Callable[[Path, Callable[[str], None]], DemoStepResult]] = Registry(
    "clipsuite.demo_steps", "demo step", callable, "a function (folder, log) -> DemoStepResult")

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


def run_step(name: str, out: Path) -> DemoStepResult:
    """Run the installed demo step ``name`` in ``out/name``; its paths come back relative to that folder
    (the demo is written under a staging name and renamed at the end)."""
    step = DEMO_STEPS.get(name)
    # Absolute, so paths the step builds from it are unambiguous whatever the working directory.
    folder = (out / name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    result = step(folder, lambda message: _log(f"[{name}] {message}"))
    if not isinstance(result, DemoStepResult):
        raise PluginError(f"demo step {describe(DEMO_STEPS.entries()[name])} returned {type(result).__name__}, "
                          "not a clipsuite.core.plugins.DemoStepResult")
    return result.relative_to(folder)


def _domain_steps(out: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in DEMO_STEPS.names():
        _log(f"domain step: {name}")
        started = time.perf_counter()
        results[name] = run_step(name, out).to_dict() | {"seconds": round(time.perf_counter() - started, 1)}
        _log(f"domain step: {name} took {results[name]['seconds']} s")  # what each step costs, as it goes
    return results


def _picture_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        return None


def _domain_section(out: Path, name: str, result: dict[str, Any]) -> str:
    """One domain step in the report: its findings, metrics table, linked files and pictures (small ones
    enlarged, their size said)."""
    def link(path: str) -> str:
        return escape(f"{name}/{path}")

    lines = "".join(f"<li>{escape(line)}</li>" for line in result["summary"])
    metrics = table(["metric", "value"], [(k, f"{v:.4g}") for k, v in result["metrics"].items()])
    files = "".join(f'<li><a href="{link(p)}">{escape(k)}</a></li>' for k, p in result["files"].items())
    pictures = "".join(figure(f"{name}/{p}", k, _picture_size(out / name / p)) for k, p in result["pictures"].items())
    return (f"<h2>{escape(result['title'])}</h2>" + (f"<ul>{lines}</ul>" if lines else "")
            + (metrics if result["metrics"] else "") + (f"<ul>{files}</ul>" if files else "")
            + pictures + f"<p><small>{result['seconds']} s</small></p>")


def _write_report(out: Path, summary: dict[str, Any]) -> None:
    zs, search = summary["zero_shot"], summary["search"]
    train = summary["train"]
    body = [f"<p>Model <code>tiny</code> trained from scratch for {train['steps']} steps on {train['images']} "
            f"synthetic captioned images ({train['seconds']} s).</p>", '<img src="loss.png" alt="training loss">',
            "<h2>Zero-shot on held-out images</h2>",
            table(["top-1", "top-3", "chance (top-1)", "classes", "images"],
                  [(f"{zs['top1']:.3f}", f"{zs['top3']:.3f}", f"{zs['chance_top1']:.3f}", zs["classes"],
                    zs["images"])]),
            f"<h2>Index search</h2><p>Query <q>{escape(search['query'])}</q>: precision@10 "
            f"{search['precision_at_10']:.2f}</p>", '<img src="query_hits.png" alt="query hits">',
            *(_domain_section(out, name, result) for name, result in summary["domains"].items())]
    # the page carries the run's notes: which models (tiny before its training, the domain steps' own) are random
    (out / "index.html").write_text(page("clipsuite demo", body, style="body{max-width:900px;margin:2em auto}"),
                                    encoding="utf-8")


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every demo step into a staging folder; move it to ``settings.output`` when all succeeded."""
    from clipsuite.core import load_model
    from clipsuite.core.staging import staged_folder
    from clipsuite.core.synthetic import write_shapes_dataset
    from clipsuite.core.visualize import line_plot

    # built in a hidden sibling folder and swapped in when complete; durable=False: fsyncing thousands
    # of scratch images costs seconds, and the swap is atomic without it
    with staged_folder(settings.output, durable=False, command="demo") as staging:
        started = time.perf_counter()
        _log(f"writing {settings.train_images} + {settings.test_images} synthetic captioned images")
        train_csv = write_shapes_dataset(staging / "data", settings.train_images, settings.seed, name="train.csv")
        test_csv = write_shapes_dataset(staging / "data", settings.test_images, settings.seed + 1, name="test.csv")
        _log(f"training tiny from scratch for {settings.steps} steps (batch {settings.batch_size})")
        t0 = time.perf_counter()
        model_dir, losses = _train(settings, train_csv, staging)
        train_seconds = round(time.perf_counter() - t0, 1)
        _log(f"trained in {train_seconds} s")
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


OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Folder for the report.")]
StepsOpt = Annotated[int, typer.Option(min=1, help="Training steps for tiny.")]
TrainImagesOpt = Annotated[int, typer.Option(min=1, help="Synthetic training images.")]
DomainsOpt = Annotated[bool, typer.Option(help="Run each installed domain's demo step too.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the synthetic data and the training run.")]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @cli_errors
    def demo(output: OutputOpt = Path("clipsuite-demo"), steps: StepsOpt = 250, train_images: TrainImagesOpt = 2000,
             domains: DomainsOpt = True, seed: SeedOpt = 0) -> None:
        """Train tiny offline on synthetic data, check zero-shot and search, run domain demos, write a report."""
        from clipsuite.core.outputs import check_output_dir

        check_output_dir(output, "--output")  # a user's folder is refused before minutes of work
        settings = DemoSettings(output=output, steps=steps, train_images=train_images, domains=domains, seed=seed)
        summary = run_demo(settings)
        report = (output / "index.html").resolve()
        zs = summary["zero_shot"]
        if zs["top1"] < 3 * zs["chance_top1"]:
            fail(f"zero-shot top-1 {zs['top1']:.3f} is not far above chance {zs['chance_top1']:.3f}: "
                 f"training did not learn (report kept at {report})")
        console.print(f"[bold green]done[/] in {summary['seconds']} s: report at {report}", soft_wrap=True)
