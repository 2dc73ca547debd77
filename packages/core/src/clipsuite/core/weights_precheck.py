"""Are a model spec's published weights here? Answered without torch or open_clip.

A command given a model whose weights are neither cached nor downloadable (offline, hub unreachable)
used to learn it inside ``load_model``, after torch and open_clip were imported (tens of seconds on a
busy machine). ``check_weights`` asks the same question first, from the Hugging Face cache alone:
presets, ``hf-hub:`` repos (open_clip's or transformers' files, by the preset's loader), open_clip
names with a pretrained tag, and ``hf-hub:org/repo/file`` weight files. open_clip's tag table is read
by parsing its ``pretrained.py`` (importing open_clip imports torch). A spec it cannot decide (a folder,
a file, a built-in config, a name it does not know) is left to ``load_model``, which checks again.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

from clipsuite.core import hub
from clipsuite.core.presets import find_preset

RANDOM = "none"  # model_specs.RANDOM (not imported: model_specs imports open_clip)
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
OPEN_CLIP_HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_CFG_KEYS = ("url", "hf_hub", "quick_gelu")  # what the check needs from an open_clip pretrained entry


def transformers_repo_files(repo: str) -> list[hub.HubFile]:
    """What a transformers ``CLIPModel`` repo must hold (PubMedCLIP, LaDI-VTON's CLIP): its config and weights."""
    return [hub.HubFile(repo, ("config.json",)), hub.HubFile(repo, TRANSFORMERS_WEIGHTS)]


def is_transformers_spec(spec: str) -> bool:
    """An ``hf-hub:`` spec that a preset declares as a transformers CLIPModel (its files are not open_clip's)."""
    from clipsuite.core.presets import presets

    return any(p.spec == spec and p.loader == "transformers" for p in presets().values())


def needs_from_cfg(cfg: dict[str, Any]) -> tuple[list[hub.HubFile], str | None]:
    """open_clip's pretrained entry -> the hub files it fetches, or the plain URL it downloads."""
    if cfg.get("hf_hub"):
        hf_hub = str(cfg["hf_hub"])  # 'org/repo/' (open_clip's default file names) or 'org/repo/file'
        if hf_hub.endswith("/"):
            return [hub.HubFile(hf_hub.rstrip("/"), OPEN_CLIP_HUB_WEIGHTS)], None
        repo, filename = hf_hub.rsplit("/", 1)
        names = tuple(dict.fromkeys([filename.rsplit(".", 1)[0] + ".safetensors", filename]))
        return [hub.HubFile(repo, names)], None
    return [], cfg.get("url") or None


def _constant_kwargs(call: ast.Call) -> dict[str, Any]:
    out = {}
    for keyword in call.keywords:
        if keyword.arg in _CFG_KEYS and isinstance(keyword.value, ast.Constant):
            out[keyword.arg] = keyword.value.value
    return out


def _tag_table(node: ast.expr, named: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]] | None:
    """``dict(tag=_pcfg(...), ...)``, ``{"tag": _pcfg(...)}`` or the name of one defined above."""
    if isinstance(node, ast.Name):
        return named.get(node.id)
    pairs: list[tuple[str | None, ast.expr]] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        pairs = [(k.arg, k.value) for k in node.keywords]
    elif isinstance(node, ast.Dict):
        pairs = [(k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else None, v)
                 for k, v in zip(node.keys, node.values)]
    else:
        return None
    table = {}
    for tag, value in pairs:
        if isinstance(tag, str) and isinstance(value, ast.Call):  # _pcfg(url=..., hf_hub=...), _slpcfg(...) ...
            table[tag] = _constant_kwargs(value)
    return table


@functools.lru_cache(maxsize=1)
def open_clip_table() -> dict[str, dict[str, dict[str, Any]]] | None:
    """open_clip's ``_PRETRAINED`` (model -> tag -> url / hf_hub / quick_gelu) from its source, or None when
    open_clip is missing or its file is laid out otherwise (then ``load_model`` decides, after the import)."""
    spec = importlib.util.find_spec("open_clip")  # a top-level name: found without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    named: dict[str, dict[str, dict[str, Any]]] = {}
    pretrained: dict[str, dict[str, dict[str, Any]]] | None = None
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            continue
        name = statement.targets[0].id
        if name == "_PRETRAINED" and isinstance(statement.value, ast.Dict):
            pretrained = {}
            for key, value in zip(statement.value.keys, statement.value.values):
                table = _tag_table(value, named)
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and table is not None:
                    pretrained[key.value] = table
        else:
            table = _tag_table(statement.value, named)
            if table:
                named[name] = table
    if not pretrained:
        return None
    for model, tags in list(pretrained.items()):  # open_clip adds '<model>-quickgelu' for its QuickGELU tags
        quick = {tag: cfg for tag, cfg in tags.items() if cfg.get("quick_gelu")}
        if quick:
            pretrained.setdefault(f"{model}-quickgelu", quick)
    return pretrained


def check_weights(spec: str, pretrained: str | None = None, offline_model: str = "tiny",
                  cli_fix: str | None = None) -> None:
    """Raise ``WeightsUnavailableError`` (in one line, naming the missing file) when ``spec`` needs weights
    that are not cached and cannot be downloaded now; return otherwise, also when unsure.
    ``offline_model``: the built-in model the CLI message offers for trying the command offline (a bare
    name goes to ``--model``; ``--clip tiny-transformers`` names another option); ``cli_fix``: how the
    command takes a local copy, when not ``--pretrained FILE or --model local-dir:DIR``."""
    preset = find_preset(spec)
    loader = "open_clip"
    if preset is not None:
        spec, loader = preset.spec, preset.loader
        pretrained = pretrained if pretrained is not None else preset.pretrained
    python_fix, default_fix = hub.fixes(spec)
    cli_fix = cli_fix or default_fix
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):]
        files = (transformers_repo_files(repo) if loader == "transformers" or is_transformers_spec(spec)
                 else hub.repo_files(repo))
        hub.check(files, f"'{spec}'", python_fix, cli_fix, offline_model=offline_model)
        return
    if pretrained in (None, "", RANDOM) or spec.startswith("local-dir:") or Path(spec).expanduser().exists():
        return
    assert pretrained is not None  # (checked just above)
    ref = hub.parse_file_ref(pretrained)
    if ref is not None:  # hf-hub:org/repo/file.pt: one state-dict file in a hub repo (RemoteCLIP, GeoRSCLIP)
        hub.check([hub.HubFile(ref[0], (ref[1],))], f"weights {pretrained} for '{spec}'", python_fix, cli_fix,
                  offline_model=offline_model)
        return
    if Path(pretrained).expanduser().is_file():
        return
    table = open_clip_table()
    cfg = (table or {}).get(spec, {}).get(pretrained.lower().replace("-", "_"))
    if not cfg:
        return  # an unknown name or tag: load_model says which, after the import
    files, url = needs_from_cfg(cfg)
    asked = f"weights for '{spec}' with pretrained '{pretrained}'"
    if files:
        hub.check(files, asked, python_fix, cli_fix, offline_model=offline_model)
    elif url:
        hub.check_url(url, asked, python_fix, cli_fix, offline_model=offline_model)
