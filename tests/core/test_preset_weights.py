"""Every installed preset names real weights and the loader that reads them; offline, each one either is a
built-in offline config or fails at once, without a request, with one whole line naming its source."""

from __future__ import annotations

import socket

import pytest

from clipsuite.core import hub
from clipsuite.core.errors import ModelError, WeightsUnavailableError
from clipsuite.core.model_specs import builtin_names, resolve_spec
from clipsuite.core.models import load_model
from clipsuite.core.presets import presets

LOADERS = {"built-in", "open_clip", "transformers"}


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty hub cache, offline set, and any connection or HTTP request is a test failure."""
    from huggingface_hub import constants

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:1]))
        raise AssertionError(f"network request attempted: {args[:1]}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)  # what every HTTP client ends in
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(hub, "_reachable", {})
    return attempts


def _repo_named(preset) -> str:
    """The hub repo a preset's weights come from, as its spec / pretrained / open_clip's tag table say."""
    import open_clip

    for ref in (preset.pretrained or "", preset.spec):
        parsed = hub.parse_file_ref(ref)
        if parsed:
            return parsed[0]
    if preset.spec.startswith("hf-hub:"):
        return preset.spec[len("hf-hub:"):]
    return str(open_clip.get_pretrained_cfg(preset.spec, preset.pretrained)["hf_hub"]).rstrip("/")


@pytest.mark.parametrize("name", sorted(presets()))
def test_every_preset_is_offline_config_or_fails_fast_naming_its_weights(name, no_network):
    preset = presets()[name]
    assert preset.loader in LOADERS, f"{name}: loader {preset.loader!r}"
    if preset.loader == "built-in":
        assert preset.domain == "offline" and preset.pretrained is None
        source = resolve_spec(name)
        assert source.weights is None and name in builtin_names() + ["tiny-transformers"]
        return
    repo = _repo_named(preset)
    assert repo in preset.source, f"{name}: source {preset.source!r} does not name {repo}"
    if preset.loader == "transformers":
        assert preset.spec.startswith("hf-hub:")
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model(name, device="cpu")
    error = caught.value
    assert repo in str(error)
    # whole messages: Python words for the library, CLI words for the CLI, nothing cut off
    assert str(error).endswith("load_model('local-dir:/path/to/folder')")
    assert "--pretrained FILE or --model local-dir:DIR" in error.cli_message
    assert error.cli_message.endswith("or --model tiny to try the command offline")
    assert no_network == []


def test_an_architecture_without_weights_is_refused_unless_random_is_asked(no_network):
    with pytest.raises(ModelError) as caught:
        load_model("ViT-B-32", device="cpu")
    assert "pretrained='none'" in str(caught.value) and "--pretrained none" in caught.value.cli_message
    assert "laion2b_s34b_b79k" in str(caught.value)  # the published tags are listed
    model = load_model("RN50", pretrained="none", device="cpu")  # random on request (a small net, no network)
    assert model.embed_dim == 1024


def test_a_saved_folder_without_weights_is_refused(tmp_path):
    tiny = load_model("tiny", device="cpu")
    folder = tiny.save(tmp_path / "model")
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights beside open_clip_config.json"):
        load_model(str(folder))
    assert load_model(str(folder), pretrained="none").embed_dim == tiny.embed_dim


def test_cached_hub_files_are_read_without_a_request(no_network, tmp_path):
    """A file in the cache is served with the hub switched offline inside the load."""
    from huggingface_hub import constants

    folder = tmp_path / "hub" / "models--org--repo"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc")
    (folder / "snapshots" / "abc").mkdir(parents=True)
    (folder / "snapshots" / "abc" / "f.bin").write_bytes(b"1")
    assert hub.check([hub.HubFile("org/repo", ("f.safetensors", "f.bin"))], "x", "", "")
    with hub.local_only():
        assert constants.HF_HUB_OFFLINE
    assert no_network == []


def test_unreachable_hub_fails_after_one_short_attempt(monkeypatch, tmp_path):
    from huggingface_hub import constants

    calls: list[tuple] = []

    def unreachable(address, timeout=None):
        calls.append((address, timeout))
        raise OSError("no route")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(hub, "_reachable", {})
    for _ in range(2):  # the second load does not try again
        with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
            load_model("hf-hub:no-such-org/no-such-model", device="cpu")
    assert calls == [(("huggingface.co", 443), hub.PROBE_TIMEOUT_S)]
