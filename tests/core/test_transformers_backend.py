"""The transformers backend: CLIP as transformers holds it, behind the same ClipModel API.

Everything is checked against transformers' own ``CLIPModel`` / ``CLIPImageProcessor`` on the
built-in ``tiny-transformers`` (config + locally built tokenizer, seeded random weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from clipsuite.core import ModelError, load_model
from clipsuite.core.backends.transformers_source import TINY_TOKENIZER_DIR
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import text_tower, vision_tower

TEXTS = ["a photo of a red circle.", "a blue square", "a damaged bottle with a crack on the left",
         "an mri of the brain"]


def _pooled(output: object) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features, 4.x a tensor."""
    return getattr(output, "pooler_output", output)  # type: ignore[return-value]  # a tensor on both versions


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def _test_image(width: int = 97, height: int = 61, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 40, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def pixels(tiny_transformers: ClipModel) -> torch.Tensor:
    return tiny_transformers.preprocess_images([_test_image(seed=s) for s in range(3)])


# ---- features equal transformers' own -------------------------------------------------------------
def test_image_features_equal_get_image_features(tiny_transformers: ClipModel, pixels: torch.Tensor) -> None:
    clip = tiny_transformers
    assert clip.backend == "transformers" and clip.embed_dim == 64 and clip.patch_grid == (8, 8)
    with torch.no_grad():
        expected = _normalized(_pooled(tiny_transformers.hf.get_image_features(pixel_values=pixels)))
    ours = tiny_transformers.encode_images(pixels, batch_size=2)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(ours[0], ours[1], atol=1e-3)  # different images, different features


def test_text_features_equal_get_text_features(tiny_transformers: ClipModel) -> None:
    encoded = tiny_transformers.tokenizer.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = _normalized(_pooled(tiny_transformers.hf.get_text_features(**encoded)))
    ours = tiny_transformers.encode_texts(TEXTS, batch_size=3)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    similarity = ours @ ours.T
    off_diagonal = similarity[~torch.eye(len(TEXTS), dtype=torch.bool)]
    assert float(off_diagonal.max()) < 0.99  # the random init tells prompts apart


def test_tokenizer_pads_with_the_end_token_and_keeps_it_when_cutting(tiny_transformers: ClipModel) -> None:
    ids = tiny_transformers.tokenize(["a photo of a dog", "word " * 100])
    bos, eos = tiny_transformers.tokenizer.tokenizer.bos_token_id, tiny_transformers.tokenizer.eos_id
    assert ids.shape == (2, 32) and (bos, eos) == (998, 999) and tiny_transformers.tokenizer.pad_id == eos
    assert ids[0, :7].tolist() == [998, 320, 524, 512, 320, ids[0, 5].item(), 999]
    assert (ids[0, 6:] == eos).all()
    assert ids[1, 0] == bos and ids[1, -1] == eos  # truncated to the context, end token kept


@pytest.mark.parametrize("eos_token_id", [999, 2])
def test_pooling_follows_transformers_for_current_and_old_configs(eos_token_id: int) -> None:
    """Old configs (eos_token_id == 2) pool at the argmax of the ids, current ones at the first end token;
    rows without an end token show the difference (argmax at position 3 vs first match at 0)."""
    config = json.loads((TINY_TOKENIZER_DIR / "config.json").read_text())
    config["text_config"]["eos_token_id"] = eos_token_id
    clip = load_model(config, device="cpu")
    ids = torch.tensor([[998, 320, 524, 999, 999, 999], [5, 320, 600, 700, 40, 41]])
    with torch.no_grad():
        expected = _pooled(clip.hf.get_text_features(input_ids=ids))
        tower = text_tower(clip).encode(ids)
        model = clip.model.encode_text(ids)
    torch.testing.assert_close(tower, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(model, expected, atol=1e-6, rtol=0)


# ---- towers ----------------------------------------------------------------------------------------
def test_dense_features_are_hidden_states_projected(tiny_transformers: ClipModel, pixels: torch.Tensor) -> None:
    layers = [0, 2, -1]
    with torch.no_grad():
        ours = tiny_transformers.dense_features(pixels, layers)
        hidden = tiny_transformers.hf.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
        vision = tiny_transformers.hf.vision_model
        project = tiny_transformers.hf.visual_projection
        expected = [project(vision.post_layernorm(hidden[i % 4 + 1][:, 1:])) for i in layers]
        unprojected = tiny_transformers.dense_features(pixels, [1], project=False)[0]
    for got, want in zip(ours, expected):
        assert got.shape == (3, 64, 64)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(unprojected, hidden[2][:, 1:], atol=1e-6, rtol=0)


def test_vision_tower_steps_equal_the_encoder(tiny_transformers: ClipModel, pixels: torch.Tensor) -> None:
    tower = vision_tower(tiny_transformers)
    assert (tower.width, tower.depth, tower.output_dim, tower.grid_size) == (128, 4, 64, (8, 8))
    with torch.no_grad():
        tokens = tower.pre_norm(tower.embed(pixels))
        full = tower.run_blocks(tokens)
        cls_only = tower.run_blocks(tokens, cls_only_last=True)
        pooled = tower.forward(pixels)
    torch.testing.assert_close(cls_only, full[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(_normalized(pooled), tiny_transformers.encode_images(pixels), atol=1e-6, rtol=0)


def test_vv_block_is_value_attention_without_mlp(tiny_transformers: ClipModel, pixels: torch.Tensor) -> None:
    tower = vision_tower(tiny_transformers)
    layer = tiny_transformers.hf.vision_model.encoder.layers[1]
    with torch.no_grad():
        x = tower.pre_norm(tower.embed(pixels))
        ours = tower.vv_block(1, x)
        v = layer.self_attn.v_proj(layer.layer_norm1(x)).view(3, 65, 4, 32).transpose(1, 2)
        weights = torch.softmax(v @ v.transpose(-1, -2) / 32 ** 0.5, dim=-1)
        expected = x + layer.self_attn.out_proj((weights @ v).transpose(1, 2).reshape(3, 65, 128))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_text_tower_with_embeddings_and_hooks(tiny_transformers: ClipModel) -> None:
    tower = text_tower(tiny_transformers)
    ids = tiny_transformers.tokenize(TEXTS)
    assert tower.token_count("a photo of a") == 6 and tower.padding_is_inert
    assert tower.attention_mask(ids)[1].tolist() == [1] * 5 + [0] * 27  # [SOS] a blue square [EOS], pad
    with torch.no_grad():
        plain = tower.encode_embeddings(tower.embed(ids), ids)
        used = int(tower.attention_mask(ids).sum(dim=1).max())
        trimmed = tower.encode_embeddings(tower.embed(ids[:, :used]), ids[:, :used])  # padding is inert
        same = tower.encode(ids, hooks={1: lambda h: h.clone()})
        prompt = torch.zeros(2, tower.width)
        changed = tower.encode(ids, hooks={1: lambda h: torch.cat([h[:, :1], prompt.expand(4, -1, -1), h[:, 3:]], 1)})
    torch.testing.assert_close(_normalized(plain), tiny_transformers.encode_texts(TEXTS), atol=1e-6, rtol=0)
    torch.testing.assert_close(trimmed, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(same, plain, atol=0, rtol=0)
    assert float((changed - plain).abs().max()) > 1e-3  # a deep prompt reaches the pooled feature


def test_image_size_override_interpolates_positions() -> None:
    clip = load_model("tiny-transformers", device="cpu", image_size=96)
    assert clip.image_size == 96 and clip.patch_grid == (12, 12)
    pixels = clip.preprocess(_test_image())[None]
    assert pixels.shape == (1, 3, 96, 96)
    with torch.no_grad():
        expected = _pooled(clip.hf.get_image_features(pixel_values=pixels, interpolate_pos_encoding=True))
    torch.testing.assert_close(clip.encode_images(pixels), _normalized(expected), atol=1e-6, rtol=0)
    assert clip.dense_features(pixels, [-1])[0].shape == (1, 144, 64)


# ---- preprocessing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(97, 61), (40, 130), (64, 64)])
def test_preprocess_equals_clip_image_processor(tiny_transformers: ClipModel, size: tuple[int, int]) -> None:
    image = _test_image(*size)
    processor = CLIPImageProcessor.from_pretrained(str(TINY_TOKENIZER_DIR))
    expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(tiny_transformers.preprocess(image), expected, atol=1e-6, rtol=0)


# ---- persistence and loading -----------------------------------------------------------------------
def test_save_load_round_trip(tiny_transformers: ClipModel, pixels: torch.Tensor, tmp_path: Path) -> None:
    folder = tiny_transformers.save(tmp_path / "saved")
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    images, texts = tiny_transformers.encode_images(pixels), tiny_transformers.encode_texts(TEXTS)
    for reloaded in (load_model(str(folder), device="cpu"), load_model(f"local-dir:{folder}", device="cpu"),
                     load_model(str(folder / "model.safetensors"), device="cpu")):
        assert reloaded.backend == "transformers"
        torch.testing.assert_close(reloaded.encode_images(pixels), images, atol=0, rtol=0)
        torch.testing.assert_close(reloaded.encode_texts(TEXTS), texts, atol=0, rtol=0)
        torch.testing.assert_close(reloaded.preprocess(_test_image()), tiny_transformers.preprocess(_test_image()))
    # transformers reads the folder too
    hf = CLIPModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        torch.testing.assert_close(_normalized(_pooled(hf.get_image_features(pixel_values=pixels))), images,
                                   atol=1e-6, rtol=0)


def test_trained_weights_survive_the_round_trip(tmp_path: Path) -> None:
    clip = load_model("tiny-transformers", device="cpu")
    before = clip.encode_texts(TEXTS)
    with torch.no_grad():
        clip.hf.text_projection.weight.mul_(-1.0)
    flipped = clip.encode_texts(TEXTS)
    torch.testing.assert_close(flipped, -before, atol=1e-6, rtol=0)
    clip.model.logit_bias = torch.nn.Parameter(torch.tensor(-7.5))  # as SigLIP training adds one
    reloaded = load_model(str(clip.save(tmp_path / "m")), device="cpu")
    torch.testing.assert_close(reloaded.encode_texts(TEXTS), flipped, atol=0, rtol=0)
    assert reloaded.model.logit_bias.item() == -7.5


def _transformers_folder(folder: Path, seed: int = 1, weights: str = "safetensors") -> CLIPModel:
    """A folder as transformers users write one: save_pretrained of model, tokenizer and processor."""
    config = CLIPConfig.from_pretrained(str(TINY_TOKENIZER_DIR))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = CLIPModel(config).eval()
    hf.save_pretrained(str(folder))
    if weights == "bin":  # an old checkpoint: pickled state dict, with the position-id buffers of the time
        (folder / "model.safetensors").unlink()
        state = dict(hf.state_dict(), **{"text_model.embeddings.position_ids": torch.arange(32)[None]})
        torch.save(state, folder / "pytorch_model.bin")
    CLIPTokenizer.from_pretrained(str(TINY_TOKENIZER_DIR)).save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 72}, crop_size={"height": 64, "width": 64},
                       image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]).save_pretrained(str(folder))
    return hf


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_loads_a_folder_written_by_transformers(tmp_path: Path, weights: str) -> None:
    hf = _transformers_folder(tmp_path, weights=weights)
    clip = load_model(str(tmp_path), device="cpu")
    image = _test_image(83, 71)
    processed = CLIPImageProcessor.from_pretrained(str(tmp_path))(images=image, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(clip.preprocess_images([image]), processed, atol=1e-6, rtol=0)
    encoded = CLIPTokenizer.from_pretrained(str(tmp_path))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        image_expected = _normalized(_pooled(hf.get_image_features(pixel_values=processed)))
        text_expected = _normalized(_pooled(hf.get_text_features(**encoded)))
    torch.testing.assert_close(clip.encode_images([image]), image_expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(clip.encode_texts(TEXTS), text_expected, atol=1e-6, rtol=0)


def _break(folder: Path, fault: str) -> None:
    if fault == "malformed config":
        (folder / "config.json").write_text("{not json")
    elif fault == "not clip":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    elif fault == "no weights":
        (folder / "model.safetensors").unlink()
    elif fault == "other shapes":
        config = json.loads((folder / "config.json").read_text())
        config["text_config"]["hidden_size"] = 32
        (folder / "config.json").write_text(json.dumps(config))
    elif fault == "corrupt weights":
        (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    elif fault == "no tokenizer":
        for name in ("tokenizer.json", "vocab.json", "merges.txt"):
            (folder / name).unlink(missing_ok=True)


@pytest.mark.parametrize(("fault", "message"), [
    ("malformed config", "config.json: malformed JSON"),
    ("not clip", "describes a 'bert' model"),
    ("no weights", "no weights"),
    ("other shapes", "does not fit"),
    ("corrupt weights", "not a readable safetensors file"),
    ("no tokenizer", "no tokenizer files"),
])
def test_a_bad_folder_is_one_clear_model_error(tmp_path: Path, fault: str, message: str) -> None:
    _transformers_folder(tmp_path)
    _break(tmp_path, fault)
    with pytest.raises(ModelError, match=message) as caught:
        load_model(str(tmp_path), device="cpu")
    text = str(caught.value)
    assert "\n" not in text and str(tmp_path) in text


def test_config_object_and_dict_build_the_builtin_model(tiny_transformers: ClipModel, pixels: torch.Tensor) -> None:
    config = CLIPConfig.from_pretrained(str(TINY_TOKENIZER_DIR))
    expected = tiny_transformers.encode_images(pixels)
    for spec in (config, config.to_dict()):
        clip = load_model(spec, device="cpu")
        torch.testing.assert_close(clip.encode_images(pixels), expected, atol=0, rtol=0)
    with pytest.raises(ModelError, match="describes a 'bert' model"):
        load_model({"model_type": "bert"}, device="cpu")
    small_vocab = config.to_dict()
    small_vocab["text_config"]["vocab_size"] = 500
    with pytest.raises(ModelError, match="tokenizer has 1000 tokens"):
        load_model(small_vocab, device="cpu")


def _fake_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def test_hf_hub_transformers_repo_from_the_offline_cache(tiny_transformers: ClipModel, pixels: torch.Tensor,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from clipsuite.core.backends.transformers_source import hub_source

    saved = tiny_transformers.save(tmp_path / "saved")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-clip", {p.name: p for p in saved.iterdir() if p.is_file()})
    _fake_hub_cache(cache, "someone/open-clip-model", {"open_clip_config.json": saved / "config.json",
                                                       "config.json": saved / "config.json"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    clip = load_model("hf-hub:someone/tiny-clip", device="cpu")
    assert clip.backend == "transformers" and clip.name == "hf-hub:someone/tiny-clip"
    torch.testing.assert_close(clip.encode_images(pixels), tiny_transformers.encode_images(pixels), atol=0, rtol=0)
    assert hub_source("someone/open-clip-model") is None  # open_clip's repo: open_clip loads it
    assert hub_source("someone/not-cached") is None  # offline and unknown: open_clip's error and hint


def test_hf_hub_offline_and_not_cached_is_open_clips_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from huggingface_hub import constants

    from clipsuite.core import WeightsUnavailableError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after import: honoured too
    with pytest.raises(WeightsUnavailableError, match="pass a local copy"):
        load_model("hf-hub:someone/not-cached", device="cpu")


# ---- prompt learners through this backend's towers ----------------------------------------------
CLASSES = ["red circle", "blue square", "green triangle", "damaged bottle with a long crack on the left"]


@pytest.fixture(scope="module")
def shapes(tiny_transformers: ClipModel,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pixels, labels and class names of eight coloured-shape images of four classes."""
    import csv

    from clipsuite.core.synthetic import write_shapes_dataset

    path = write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=48, seed=5)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    names = sorted({r["class_name"] for r in rows})[:4]
    rows = [r for r in rows if r["class_name"] in names][:8]
    pixels = tiny_transformers.preprocess_images([path.parent / r["filepath"] for r in rows])
    return pixels, torch.tensor([names.index(r["class_name"]) for r in rows]), names


def _train(module: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, steps: int, lr: float) -> list[float]:
    """A few Adam steps on the learner's own parameters, the CLIP weights frozen (as the runner does)."""
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(module(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_coop_at_init_equals_the_hand_crafted_prompt(tiny_transformers: ClipModel) -> None:
    from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
    from clipsuite.core.zeroshot import build_classifier, logits

    # the longest prompt decides how much shared padding is trimmed: its end token must stay
    features = _normalized(torch.randn(6, 64, generator=torch.Generator().manual_seed(0)))
    coop = CoOpClassifier(tiny_transformers, CLASSES, PromptConfig(ctx_init="a photo of a"))
    assert coop.prompt.ctx.shape == (4, 64)
    with torch.no_grad():
        learned = coop(features)
    classifier = build_classifier(tiny_transformers, CLASSES, ["a photo of a {}."])
    expected = logits(features, classifier, scale=tiny_transformers.logit_scale())
    torch.testing.assert_close(learned, expected, atol=1e-5, rtol=0)


def test_coop_loss_falls(tiny_transformers: ClipModel,
                         shapes: tuple[torch.Tensor, torch.Tensor, list[str]]) -> None:
    from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig

    pixels, labels, names = shapes
    tiny_transformers.model.requires_grad_(False)
    coop = CoOpClassifier(tiny_transformers, names, PromptConfig(n_ctx=4, ctx_init="a photo of a"))
    losses = _train(coop, tiny_transformers.encode_images(pixels), labels, steps=15, lr=0.02)
    # a random-init tower moves slowly (about 1.49 -> 1.40); a context that got no gradient stays put
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.05
    assert coop.prompt.ctx.grad is not None and float(coop.prompt.ctx.grad.abs().max()) > 0


def test_maple_starts_at_the_hand_crafted_text_and_trains(tiny_transformers: ClipModel,
                                                          shapes: tuple[torch.Tensor, torch.Tensor, list[str]]) -> None:
    from clipsuite.core.adapt.maple import MaPLeClassifier, MaPLeConfig

    maple = MaPLeClassifier(tiny_transformers, CLASSES, MaPLeConfig(n_ctx=2, depth=3))
    with torch.no_grad():  # deep text prompts start at the tower's own hidden states: the plain prompt
        plain = tiny_transformers.encode_texts([f"a photo of a {c}." for c in CLASSES])
        torch.testing.assert_close(maple.text_features(), plain, atol=1e-5, rtol=0)
    pixels, labels, names = shapes
    tiny_transformers.model.requires_grad_(False)
    maple = MaPLeClassifier(tiny_transformers, names, MaPLeConfig(n_ctx=2, depth=3))
    losses = _train(maple, pixels, labels, steps=8, lr=0.02)
    assert losses[-1] < 0.9 * losses[0]  # about 1.49 -> 1.27
    assert maple.deep_proj[0].weight.grad is not None  # the text -> vision couplings learn too


@pytest.mark.parametrize("method", ["coop", "cocoop", "kgcoop", "maple"])
def test_prompt_learners_run_through_the_adapt_runner(tiny_transformers: ClipModel, method: str,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    from clipsuite.core.adapt.fewshot_data import load_split
    from clipsuite.core.adapt.registry import MethodOptions
    from clipsuite.core.adapt.runner import prepare, train_one
    from clipsuite.core.synthetic import write_shapes_split

    split = write_shapes_split(tmp_path_factory.mktemp("split"), {"train": 2, "val": 1, "test": 2}, seed=3)
    data = prepare(tiny_transformers, load_split(split), 1, seed=0, views=0)
    before, _ = train_one(method, data, MethodOptions(epochs=0))
    after, _ = train_one(method, data, MethodOptions(max_steps=2, batch_size=6, lr=0.05, optimizer="adamw"))
    pixels = data.pixels("test")[0][:4]
    if method == "coop":  # with no step CoOp is the hand-crafted zero-shot classifier
        zero, _ = train_one("zeroshot", data)
        test = data.features("test").features[0]
        torch.testing.assert_close(before.logits(test), zero.logits(test), atol=1e-5, rtol=0)
    assert not torch.allclose(before.logits(pixels), after.logits(pixels))  # the learned prompt moved
    assert all(not p.requires_grad for p in tiny_transformers.model.parameters())  # the backbone stayed frozen


# ---- other ClipModel features through this backend ---------------------------------------------------
def test_input_bands_are_saved_and_reloaded(tmp_path: Path) -> None:
    clip = load_model("tiny-transformers", device="cpu")
    rgb = clip.preprocess(_test_image())[None]
    expected = clip.encode_images(rgb)
    clip.adapt_input_bands(6, "repeat")
    six = torch.cat([rgb, rgb], dim=1)  # band b is RGB channel b % 3: the repeat rule gives the RGB result
    torch.testing.assert_close(clip.encode_images(six), expected, atol=1e-5, rtol=0)
    reloaded = load_model(str(clip.save(tmp_path / "bands")), device="cpu")
    torch.testing.assert_close(reloaded.encode_images(six), clip.encode_images(six), atol=0, rtol=0)


def test_contrastive_loss_falls_through_the_open_clip_surface(tiny_transformers: ClipModel) -> None:
    clip = load_model("tiny-transformers", device="cpu")
    model = clip.model.train()
    images = clip.preprocess_images([_test_image(seed=s) for s in range(4)])
    tokens = clip.tokenize(TEXTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        image_features, text_features, scale = model(images, tokens)
        logits = scale * image_features @ text_features.T
        target = torch.arange(4)
        cross_entropy = torch.nn.functional.cross_entropy
        loss = (cross_entropy(logits, target) + cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_train_contrastive_fine_tunes_and_saves_a_transformers_folder(tmp_path: Path) -> None:
    """The PubMedCLIP path: core contrastive fine-tuning of a transformers CLIP, saved and reloaded."""
    from clipsuite.core.contrastive import train_contrastive
    from clipsuite.core.synthetic import write_shapes_dataset

    data = write_shapes_dataset(tmp_path / "data", n=16, seed=1)
    result = train_contrastive(data, tmp_path / "out", model="tiny-transformers", max_steps=2, batch_size=8,
                               augment=False, precision="fp32")
    assert result.train.step == 2
    trained = result.model
    reloaded = load_model(str(tmp_path / "out"), device="cpu")
    original = load_model("tiny-transformers", device="cpu")
    assert reloaded.backend == "transformers"
    trained.to("cpu")
    torch.testing.assert_close(reloaded.encode_texts(TEXTS), trained.encode_texts(TEXTS), atol=0, rtol=0)
    assert float((reloaded.encode_texts(TEXTS) - original.encode_texts(TEXTS)).abs().max()) > 1e-4  # it moved


def test_builtin_tokenizer_has_clips_layout_and_rebuilds(tmp_path: Path) -> None:
    """The shipped files and a fresh build both have CLIP's vocabulary layout. (A rebuild may order
    merges of equal count differently: the tokenizers trainer breaks such ties in hash order.)"""
    from open_clip.tokenizer import bytes_to_unicode

    from clipsuite.core.backends.tiny_tokenizer import build_tokenizer_files

    build_tokenizer_files(tmp_path)
    alphabet = list(bytes_to_unicode().values())
    for folder in (TINY_TOKENIZER_DIR, tmp_path):
        vocab = json.loads((folder / "vocab.json").read_text())
        merges = (folder / "merges.txt").read_text().splitlines()[1:]
        by_id = sorted(vocab, key=vocab.__getitem__)
        assert len(vocab) == 1000 and len(merges) == 1000 - 514
        assert by_id[:512] == alphabet + [c + "</w>" for c in alphabet]
        assert by_id[-2:] == ["<|startoftext|>", "<|endoftext|>"]
        for index, merge in enumerate(merges):  # each merge makes the next token from earlier ones
            left, right = merge.split(" ")
            assert vocab[left] < 512 + index and vocab[right] < 512 + index
            assert by_id[512 + index] == left + right
        tokenizer = CLIPTokenizer.from_pretrained(str(folder))
        ids = tokenizer("a photo of a red circle.")["input_ids"]
        assert len(ids) == 9 and tokenizer.decode(ids, skip_special_tokens=True) == "a photo of a red circle ."
