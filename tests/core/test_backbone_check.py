"""A learned prompt/adapter file records the model it was trained on (spec + weights fingerprint) and
refuses another backbone with one line naming both, in the library and in the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.cli.main import app
from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
from clipsuite.core.adapt.io import load_classifier, save_adapter
from clipsuite.core.errors import InputError
from clipsuite.core.fingerprint import weights_fingerprint
from clipsuite.core.models import load_model
from clipsuite.core.synthetic import write_shapes_split

torch.set_num_threads(1)
runner = CliRunner()
NAMES = ["circle", "square"]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def other_tiny(tmp_path_factory, tiny):
    """Same architecture and embed_dim as `tiny`, other weights: what the old embed_dim check let through."""
    other = load_model("tiny", device="cpu")
    with torch.no_grad():
        for parameter in other.model.parameters():
            parameter.add_(0.01)
    return other.save(tmp_path_factory.mktemp("other") / "other-tiny")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny) -> Path:
    module = CoOpClassifier(tiny, NAMES, PromptConfig(n_ctx=2, ctx_init=""))
    return save_adapter(tmp_path_factory.mktemp("adapter") / "coop.safetensors", module, "coop", NAMES, tiny)


def test_fingerprint_is_stable_and_tells_weights_apart(tiny, other_tiny):
    assert tiny.weights_hash == load_model("tiny", device="cpu").weights_hash == weights_fingerprint(tiny.model)
    assert load_model(str(other_tiny), device="cpu").weights_hash != tiny.weights_hash
    assert tiny.identity() == {"model": "tiny", "model_hash": tiny.weights_hash, "model_dtype": "float32",
                               "model_image_size": "64"}


def test_adapter_refuses_the_same_backbone_at_another_image_size(adapter, tiny):
    """At another input size the position grid is resampled (other hashes too): the refusal names the
    size, which is what the user has to change."""
    bigger = load_model("tiny", device="cpu", image_size=96)
    with pytest.raises(InputError) as caught:
        load_classifier(adapter, bigger)
    assert "trained on model 'tiny' at 64 px, not at 96 px" in str(caught.value)
    assert caught.value.cli_message.endswith("run with --image-size 64")


def test_adapter_refuses_another_backbone_naming_both(adapter, tiny, other_tiny):
    assert load_classifier(adapter, load_model("tiny", device="cpu")).class_names == NAMES
    other = load_model(str(other_tiny), device="cpu")
    with pytest.raises(InputError) as caught:
        load_classifier(adapter, other)
    message = str(caught.value)
    assert f"trained on model 'tiny' (weights {tiny.weights_hash}), not on '{other_tiny}'" in message
    assert other.weights_hash in message and "load_model('tiny')" in message
    assert caught.value.cli_message.endswith("run with --model tiny")


def test_cli_zeroshot_and_adapt_evaluate_refuse_another_backbone(adapter, other_tiny, tmp_path):
    split = write_shapes_split(tmp_path / "data", {"train": 1, "val": 1, "test": 1}, seed=3)
    image = next((tmp_path / "data").rglob("*.png"))
    for args in (["zeroshot", str(image), "--adapter", str(adapter), "--model", str(other_tiny), "--device", "cpu"],
                 ["adapt", "evaluate", str(adapter), "--split", str(split), "--model", str(other_tiny),
                  "--device", "cpu"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "trained on model 'tiny'" in lines[0], result.output
        assert lines[0].endswith("run with --model tiny")
