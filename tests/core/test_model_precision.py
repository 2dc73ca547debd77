"""ClipModel's precision, logit scale and seeding rules (none needs a GPU)."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel, load_model


def _on(clip: ClipModel, device: str, precision: str) -> ClipModel:
    """The same model object described as living on ``device`` (nothing is moved: autocast is only
    resolved, never entered, so no GPU is needed)."""
    return ClipModel(clip.model, clip.tokenizer, clip.config, clip.name, torch.device(device), precision)


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # resolved only, never entered
def test_fp32_means_fp32_on_a_gpu_too(tiny: ClipModel) -> None:
    assert isinstance(_on(tiny, "cuda", "fp32").autocast(), contextlib.nullcontext)
    assert isinstance(_on(tiny, "cuda", "bf16").autocast(), contextlib.nullcontext)  # cast weights, no autocast
    amp = _on(tiny, "cuda", "amp")  # open_clip's name, an alias
    assert amp.precision == "amp_fp16"
    context = amp.autocast()
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.float16
    assert _on(tiny, "cpu", "amp_bf16").autocast().fast_dtype == torch.bfloat16


def test_load_model_resolves_the_precision_vocabulary() -> None:
    assert load_model("tiny", device="cpu").precision == "fp32"  # auto on the CPU
    half = load_model("tiny", device="cpu", precision="bf16")
    assert half.precision == "bf16" and half.input_dtype == torch.bfloat16
    assert next(half.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ModelError, match="unknown precision 'fp64'"):
        load_model("tiny", device="cpu", precision="fp64")


def test_logit_scale_is_the_models_own_clamped_at_100(tiny: ClipModel) -> None:
    assert tiny.logit_scale() == pytest.approx(1 / 0.07, rel=1e-6)  # open_clip's init
    clip = load_model("tiny", device="cpu")
    with torch.no_grad():
        clip.model.logit_scale.fill_(math.log(250.0))
    assert clip.logit_scale() == 100.0


def test_building_a_builtin_model_seeds_only_the_cpu_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    calls: list[int] = []  # recorded from here on: torch.manual_seed also seeds CUDA
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    first = load_model("tiny", device="cpu")
    assert calls == []  # the caller's CUDA generators are untouched
    assert torch.equal(torch.rand(3), expected_next)  # and so is the caller's CPU generator
    second = load_model("tiny", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                  second.model.state_dict().values()))
