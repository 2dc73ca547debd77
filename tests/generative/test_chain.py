"""The four LaDI-VTON stages end to end on tiny parts: each stage's saved part is what the later
stages and the final try-on load (not fresh random parts), and inference refuses other parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.checkpoints import load_tensors, read_config
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.towers import text_tower, vision_tower
from clipsuite.generative.components import build_parts
from clipsuite.generative.data import VitonHD
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.inversion import InversionAdapter
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.pipeline import SamplingOptions
from clipsuite.generative.stages import make_stage_task, part_digest, train_chain
from clipsuite.generative.tryon import StageFiles, TryOnModel

SIZE = (32, 24)
STEPS = {"warping": 4, "emasc": 3, "inversion": 2, "tryon": 3}


def _same(module: torch.nn.Module, part_file: Path) -> bool:
    saved = load_tensors(part_file)
    own = module.state_dict()
    return set(saved) == set(own) and all(torch.equal(own[k].float().cpu(), saved[k].float()) for k in saved)


@pytest.fixture(scope="module")
def chain(vitonhd: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, StageFiles, VitonHD]:
    torch.manual_seed(0)
    clip = load_model("tiny-transformers", device="cpu")
    data = VitonHD(vitonhd, "train", size=SIZE)
    files = train_chain(clip, "micro", SIZE, data, tmp_path_factory.mktemp("chain"), STEPS, n_tokens=4)
    return clip, files, data


def test_each_stage_saves_a_trained_part(chain) -> None:  # type: ignore[no-untyped-def]
    clip, files, _ = chain
    for stage, path in (("warping", files.warping), ("emasc", files.emasc), ("inversion", files.inversion),
                        ("tryon", files.unet)):
        config = read_config(path)
        assert config["stage"] == stage and config["step"] == STEPS[stage]
    # trained, not the initial parts: the warper's refinement and EMASC's convs start at zero
    assert not _same(GarmentWarper(SIZE), files.warping)
    assert not _same(EMASC(build_parts("micro").vae.config), files.emasc)
    torch.manual_seed(0)
    assert not _same(InversionAdapter(vision_tower(clip).width, text_tower(clip).width, 4), files.inversion)


def test_tryon_stage_loads_the_trained_warper_and_adapter(chain) -> None:  # type: ignore[no-untyped-def]
    clip, files, data = chain
    recorded = read_config(files.unet)["inputs"]
    assert recorded == {"warping": part_digest(files.warping), "inversion": part_digest(files.inversion)}
    task = make_stage_task("tryon", clip, "micro", SIZE, StageFiles(warping=files.warping,
                                                                   inversion=files.inversion))
    assert _same(task.warper, files.warping) and _same(task.adapter, files.inversion)
    # the adapter's pseudo-words reach the prompt: other garments give other text states
    batch = torch.utils.data.default_collate([data[0], data[1]])
    states = task.text_states(batch)
    assert not torch.allclose(states[0], states[1])
    plain = make_stage_task("tryon", clip, "micro", SIZE)
    assert torch.allclose(*plain.text_states(batch))   # no adapter: one fixed prompt


def test_tryon_inference_uses_all_trained_parts(chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip, files, data = chain
    model = TryOnModel.build(clip, "micro", files, SIZE)
    pipe = model.pipeline
    assert _same(pipe.unet, files.unet) and _same(pipe.emasc, files.emasc)
    assert _same(pipe.warper, files.warping) and _same(model.adapter, files.inversion)
    sample = {k: v for k, v in data[0].items() if k != "index"}
    options = SamplingOptions(steps=3, guidance=2.0, seed=0)
    full = model.run(sample, "upper_body", options)
    # the trained warper's garment, and EMASC's decoding, are in the result
    with torch.no_grad():
        warped = pipe.warper(sample["cloth"][None], sample["masked_image"][None], sample["pose"][None])["refined"]
    torch.testing.assert_close(full["warped_cloth"], warped)
    no_emasc = TryOnModel.build(clip, "micro", StageFiles(files.unet, None, files.warping, files.inversion), SIZE)
    other = no_emasc.run(sample, "upper_body", options)
    inside = sample["mask"].bool().expand(3, -1, -1)
    assert (full["image"][0] - other["image"][0])[inside].abs().max() > 1e-3
    # the UNet refuses to run without (or with another) warper / adapter than it was trained with
    with pytest.raises(InputError, match="trained with the inversion stage .* pass that file with --inversion"):
        TryOnModel.build(clip, "micro", StageFiles(files.unet, files.emasc, files.warping, None), SIZE)
    fresh = tmp_path / "warping.safetensors"
    fresh.write_bytes(files.emasc.read_bytes())
    with pytest.raises(InputError, match="not the warping stage the try-on UNet"):
        TryOnModel.build(clip, "micro", StageFiles(files.unet, files.emasc, fresh, files.inversion), SIZE)
