"""Hugging Face hub files, cache first: a missing model fails in seconds, never after minutes of retries.

Before a loader touches the hub, ``check`` looks for the files it needs in the local cache. All there:
the load runs with the hub switched to offline (``local_only``), so no request is made. Something
missing: when offline is set (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) the error comes at once,
without any request; otherwise one short connection attempt to the hub decides, and an unreachable
hub is the same one-line error. The error names what to pass instead, in Python and in CLI words.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from clipsuite.core.errors import WeightsUnavailableError

PROBE_TIMEOUT_S = 3.0  # the one short attempt: a TCP connection to the hub's host
_OFFLINE_VALUES = ("1", "ON", "YES", "TRUE")
_reachable: dict[str, bool] = {}  # host -> answer, asked once per process


@dataclass(frozen=True)
class HubFile:
    """One file a loader needs: the first of ``candidates`` found in ``repo`` (a weight file may come
    as .safetensors or .bin, a config as open_clip's or transformers')."""

    repo: str
    candidates: tuple[str, ...]


def parse_file_ref(ref: str) -> tuple[str, str] | None:
    """``hf-hub:org/repo/path/file.pt`` -> (``org/repo``, ``path/file.pt``); None when not a file ref."""
    if not ref.startswith("hf-hub:"):
        return None
    parts = ref[len("hf-hub:"):].split("/")
    if len(parts) < 3 or not all(parts):
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def repo_files(repo: str) -> list[HubFile]:
    """What an ``hf-hub:`` model repo must hold: a config (open_clip's or transformers') and weights."""
    return [HubFile(repo, ("open_clip_config.json", "config.json")),
            HubFile(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors",
                           "pytorch_model.bin"))]


def fixes(name: str) -> tuple[str, str]:
    """What to pass instead of hub weights, as a library user and as a CLI user writes it."""
    return (f"load_model('{name}', pretrained='/path/to/weights') or load_model('local-dir:/path/to/folder')",
            "--pretrained FILE or --model local-dir:DIR")


def offline() -> bool:
    """The offline setting, read now (huggingface_hub reads the variables only once, at import)."""
    from huggingface_hub import constants

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return bool(constants.HF_HUB_OFFLINE) or any(os.environ.get(n, "").upper() in _OFFLINE_VALUES for n in names)


def cached(repo: str, filename: str) -> Path | None:
    """The cached copy of ``filename`` in ``repo``, or None (a pure cache lookup, no request)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def _hub_host() -> str:
    from huggingface_hub import constants

    return urlparse(constants.ENDPOINT).hostname or "huggingface.co"


def reachable(host: str) -> bool:
    """One TCP connection attempt to ``host`` (port 443), at most ``PROBE_TIMEOUT_S``; remembered."""
    if host not in _reachable:
        try:
            with socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S):
                _reachable[host] = True
        except OSError:
            _reachable[host] = False
    return _reachable[host]


def unavailable(what: str, python_fix: str, cli_fix: str, reason: str,
                offline_model: str = "tiny") -> WeightsUnavailableError:
    """The one error for weights that cannot be had: what, why, and what to pass (both vocabularies);
    ``offline_model``: the built-in model that runs the command offline (the domain's own, e.g.
    tiny-multilingual for multilingual retrieval), given to ``--model``, or the whole option when the command
    names its model otherwise (``--clip tiny-transformers``)."""
    offline = offline_model if offline_model.startswith("--") else f"--model {offline_model}"
    tail = "on a machine with network, run it once to fill the cache (~/.cache/huggingface)"
    return WeightsUnavailableError(
        f"{what}: {reason}; {tail}, or pass a local copy: {python_fix}",
        cli=f"{what}: {reason}; {tail}, or pass a local copy with {cli_fix}, or {offline} to try "
            "the command offline")


def check(files: Sequence[HubFile], what: str, python_fix: str, cli_fix: str,
          host: str | None = None, offline_model: str = "tiny") -> bool:
    """True when every file is cached (load with ``local_only``). Otherwise: offline set, or the hub not
    reachable in one short attempt, raises ``WeightsUnavailableError``; reachable returns False."""
    missing = [f for f in files if not any(cached(f.repo, name) for name in f.candidates)]
    if not missing:
        return True
    first = missing[0]
    where = f"{first.repo}/{first.candidates[0]}"
    if offline():
        raise unavailable(what, python_fix, cli_fix, f"{where} is not in the local cache and offline mode is set "
                                                     "(HF_HUB_OFFLINE)", offline_model)
    host = host or _hub_host()
    if not reachable(host):
        raise unavailable(what, python_fix, cli_fix, f"{where} is not in the local cache and {host} cannot be "
                                                     "reached", offline_model)
    return False


@contextlib.contextmanager
def local_only(active: bool = True) -> Iterator[None]:
    """Within, huggingface_hub (and transformers through it) serve from the cache and send no request."""
    if not active:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def url_cached(url: str, cache_dir: Path | None = None) -> Path | None:
    """open_clip's copy of a weight URL (``~/.cache/clip/<basename>``), if downloaded before."""
    folder = cache_dir or Path(os.path.expanduser("~/.cache/clip"))
    path = folder / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def check_url(url: str, what: str, python_fix: str, cli_fix: str, offline_model: str = "tiny") -> None:
    """The same rule for a plain URL that open_clip downloads itself."""
    if url_cached(url) is not None:
        return
    host = urlparse(url).hostname or url
    if offline():
        raise unavailable(what, python_fix, cli_fix, f"{url} was never downloaded here and offline mode is set "
                                                     "(HF_HUB_OFFLINE)", offline_model)
    if not reachable(host):
        raise unavailable(what, python_fix, cli_fix, f"{url} was never downloaded here and {host} cannot be reached",
                          offline_model)
