"""The try-on and editing metrics, as the papers report them.

Paired (a generated person against the same person photographed): SSIM and LPIPS. Distribution
(generated set against real set; "paired" when each person wears their own garment, "unpaired" when
the garments are swapped): FID and KID. Edits: CLIP score (image-text agreement) and CLIP directional
similarity (does the image move the way the text moves).

SSIM, LPIPS, FID and KID are torchmetrics' own implementations; this module only feeds them. Images
are float tensors ``[N, 3, H, W]`` in [0, 1] (``unit`` converts the pipeline's [-1, 1]).

A metric that needs a pretrained network reports itself as unavailable, with the reason, when that
network's weights are not on this machine -- never a number from random weights. Nothing here
downloads: LPIPS looks for torchvision's backbone in the torch hub cache (where torchvision would
have put it), FID/KID look for torch-fidelity's Inception file there or at a path you give; any
``nn.Module`` mapping images to ``[N, D]`` features can stand in (the tests pass a tiny one).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import InputError, ModelError, first_line

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

# torch-fidelity's Inception v3 (the TF FID network, converted); its file name in the torch hub cache
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
# torchvision backbones LPIPS can use, and their weight enums
LPIPS_NETS = {"alex": ("alexnet", "AlexNet_Weights"), "vgg": ("vgg16", "VGG16_Weights"),
              "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights")}
BATCH = 32


@dataclass(frozen=True)
class Metric:
    """One reported number, or the reason there is none."""

    name: str
    value: float | None = None
    unavailable: str = ""

    @property
    def available(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, **({"unavailable": self.unavailable} if self.unavailable
                                                           else {})}


def unit(images: torch.Tensor) -> torch.Tensor:
    """Pipeline images in [-1, 1] -> [0, 1]."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def _check_images(name: str, *sets: torch.Tensor, same_shape: bool = False) -> None:
    for images in sets:
        if images.dim() != 4 or images.shape[1] != 3:
            raise InputError(f"{name}: images must be [N, 3, H, W], got {list(images.shape)}")
        if not torch.isfinite(images).all():
            raise InputError(f"{name}: images hold NaN or infinite values")
        if images.min() < 0 or images.max() > 1:
            raise InputError(f"{name}: images must be in [0, 1] (got {float(images.min()):.3g}.."
                             f"{float(images.max()):.3g}); convert pipeline outputs with evaluate.unit")
    if same_shape and len({tuple(s.shape) for s in sets}) > 1:
        raise InputError(f"{name}: paired images differ in shape: {' vs '.join(str(list(s.shape)) for s in sets)}")


# ---- paired -------------------------------------------------------------------------------------------
def ssim(generated: torch.Tensor, target: torch.Tensor) -> Metric:
    """Mean SSIM (Gaussian window 11, sigma 1.5, data range 1), torchmetrics."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_images("ssim", generated, target, same_shape=True)
    value = structural_similarity_index_measure(generated.float(), target.float(), data_range=1.0)
    return Metric("ssim", float(cast(torch.Tensor, value)))  # a tuple only with return_full_image


def hub_checkpoints() -> Path:
    """Where torch.hub (and so torchvision) keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def lpips_backbone_file(net: str = "alex") -> Path:
    """The file torchvision would download for LPIPS' ``net`` backbone, in the hub cache."""
    import torchvision

    if net not in LPIPS_NETS:
        raise InputError(f"unknown LPIPS network '{net}' (choose from {', '.join(LPIPS_NETS)})")
    weights = getattr(torchvision.models, LPIPS_NETS[net][1]).DEFAULT
    return hub_checkpoints() / Path(weights.url).name


def lpips(generated: torch.Tensor, target: torch.Tensor, net: str = "alex") -> Metric:
    """Mean LPIPS (torchmetrics; its linear heads ship with it, the backbone comes from torchvision)."""
    _check_images("lpips", generated, target, same_shape=True)
    backbone = lpips_backbone_file(net)
    if not backbone.is_file():
        return Metric("lpips", unavailable=f"needs torchvision's pretrained {LPIPS_NETS[net][0]} weights at "
                                           f"{backbone} (not downloaded here)")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    net_type = cast(Literal["vgg", "alex", "squeeze"], net)  # checked against LPIPS_NETS above
    metric = LearnedPerceptualImagePatchSimilarity(net_type=net_type, normalize=True)  # finds the cached file
    for start in range(0, len(generated), BATCH):
        metric.update(generated[start:start + BATCH].float(), target[start:start + BATCH].float())
    return Metric("lpips", float(metric.compute()))


# ---- distributions ------------------------------------------------------------------------------------
class InceptionFeatures(nn.Module):
    """torch-fidelity's Inception v3 pool features (2048) for images in [0, 1], from a local file."""

    num_features = 2048

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        # torch-fidelity unpickles the file without restriction: accept it only if it holds plain tensors
        try:
            torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise ModelError(f"{weights}: not a readable Inception weights file ({first_line(error)})"
                             ) from None
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=str(weights))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images * 255).round().to(torch.uint8))


def inception_file(weights: str | Path | None = None) -> tuple[Path | None, str]:
    """(the Inception weights file, "") or (None, why not)."""
    path = Path(weights) if weights is not None else hub_checkpoints() / INCEPTION_FILE
    if not path.is_file():
        return None, f"needs torch-fidelity's Inception weights ({INCEPTION_FILE}) at {path}; not downloaded here"
    return path, ""


def feature_network(extractor: nn.Module | None = None, inception_weights: str | Path | None = None,
                    ) -> tuple[nn.Module | None, str]:
    """The network FID/KID measure with: ``extractor`` if given, else Inception if its file is here."""
    if extractor is not None:
        return extractor.eval(), ""
    path, why = inception_file(inception_weights)
    return (InceptionFeatures(path).eval(), "") if path is not None else (None, why)


def _image_batches(images: torch.Tensor) -> Iterable[torch.Tensor]:
    for start in range(0, len(images), BATCH):
        yield images[start:start + BATCH].float()


def fid(real: torch.Tensor, generated: torch.Tensor, extractor: nn.Module | None = None,
        inception_weights: str | Path | None = None, name: str = "fid") -> Metric:
    """Frechet distance between the feature distributions (torchmetrics' FrechetInceptionDistance)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_images(name, real, generated)
    if min(len(real), len(generated)) < 2:
        raise InputError(f"{name}: needs at least 2 real and 2 generated images")
    network, why = feature_network(extractor, inception_weights)
    if network is None:
        return Metric(name, unavailable=why)
    metric = FrechetInceptionDistance(feature=network, normalize=True)
    with torch.no_grad():
        for batch in _image_batches(real):
            metric.update(batch, real=True)
        for batch in _image_batches(generated):
            metric.update(batch, real=False)
        return Metric(name, float(metric.compute()))


def kid(real: torch.Tensor, generated: torch.Tensor, extractor: nn.Module | None = None,
        inception_weights: str | Path | None = None, subsets: int = 100, subset_size: int = 1000,
        name: str = "kid") -> Metric:
    """Kernel Inception Distance (torchmetrics; cubic polynomial kernel, mean over random subsets of
    ``min(subset_size, N)``; the raw value -- papers often print it x 100 or x 1000)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_images(name, real, generated)
    if min(len(real), len(generated)) < 2:
        raise InputError(f"{name}: needs at least 2 real and 2 generated images")
    network, why = feature_network(extractor, inception_weights)
    if network is None:
        return Metric(name, unavailable=why)
    size = min(subset_size, len(real), len(generated))
    with warnings.catch_warnings():  # "saves all features in a buffer": that is what KID is
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=network, normalize=True, subsets=subsets, subset_size=size)
    with torch.no_grad():
        for batch in _image_batches(real):
            metric.update(batch, real=True)
        for batch in _image_batches(generated):
            metric.update(batch, real=False)
        mean, _ = metric.compute()
    return Metric(name, float(mean))


def tryon_metrics(real: torch.Tensor, paired: torch.Tensor, unpaired: torch.Tensor | None = None,
                  extractor: nn.Module | None = None, inception_weights: str | Path | None = None,
                  lpips_net: str = "alex") -> list[Metric]:
    """The VITON-HD table: SSIM, LPIPS, FID, KID on the paired results; FID/KID unpaired when given.
    ``real[i]`` is the photograph that ``paired[i]`` reconstructs."""
    network, why = feature_network(extractor, inception_weights)
    out = [ssim(paired, real), lpips(paired, real, lpips_net)]
    sets = [("", paired)] + ([("_unpaired", unpaired)] if unpaired is not None else [])
    for suffix, generated in sets:
        if network is None:
            out += [Metric(f"fid{suffix}", unavailable=why), Metric(f"kid{suffix}", unavailable=why)]
        else:
            out += [fid(real, generated, network, name=f"fid{suffix}"), kid(real, generated, network,
                                                                           name=f"kid{suffix}")]
    return out


# ---- CLIP ---------------------------------------------------------------------------------------------
def clip_image_embeddings(clip: ClipModel, images: torch.Tensor) -> torch.Tensor:
    """Normalised CLIP embeddings of [0, 1] images, through the model's own preprocessing (as PIL)."""
    from PIL import Image

    arrays = (images.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return clip.encode_images([Image.fromarray(a) for a in arrays])


def clip_score(clip: ClipModel, images: torch.Tensor, texts: Sequence[str]) -> Metric:
    """CLIPScore (Hessel et al.; torchmetrics' definition): mean of 100 * max(cos(image, text), 0)."""
    _check_images("clip_score", images)
    if len(texts) != len(images):
        raise InputError(f"clip_score: {len(images)} images but {len(texts)} texts")
    cos = (clip_image_embeddings(clip, images) * clip.encode_texts(list(texts))).sum(-1)
    return Metric("clip_score", float((100 * cos.clamp_min(0)).mean()))


def directional_similarity(clip: ClipModel, originals: torch.Tensor, edited: torch.Tensor,
                           source_texts: Sequence[str], target_texts: Sequence[str]) -> Metric:
    """Mean cos(E(edited) - E(original), T(target) - T(source)) with normalised CLIP embeddings
    (StyleGAN-NADA / InstructPix2Pix's directional CLIP similarity). Not in torchmetrics."""
    _check_images("directional_similarity", originals, edited, same_shape=True)
    if not len(source_texts) == len(target_texts) == len(originals):
        raise InputError(f"directional_similarity: {len(originals)} image pairs, {len(source_texts)} source and "
                         f"{len(target_texts)} target texts")
    image_delta = clip_image_embeddings(clip, edited) - clip_image_embeddings(clip, originals)
    text_delta = clip.encode_texts(list(target_texts)) - clip.encode_texts(list(source_texts))
    cos = F.cosine_similarity(image_delta, text_delta, dim=-1)  # an unchanged image scores 0
    return Metric("directional_similarity", float(cos.mean()))


def read_image_folder(folder: Path, names: Sequence[str] | None = None, like: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, list[str]]:
    """Images of a folder (or the listed ``names`` in it) as ``[N, 3, H, W]`` in [0, 1], sorted by name.
    All must share one size; with ``like``, that of ``like`` (paired results against their photos)."""
    import numpy as np

    from clipsuite.core.images import load_image

    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        if not names:
            raise InputError(f"{folder}: no images (.png, .jpg, .webp) in the folder")
    arrays: list[np.ndarray] = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: missing (the folders must hold the same file names)")
        image = load_image(path)
        expected = (like.shape[-1], like.shape[-2]) if like is not None else None
        if arrays and expected is None:
            expected = (arrays[0].shape[1], arrays[0].shape[0])
        if expected is not None and image.size != expected:
            raise InputError(f"{path}: {image.width}x{image.height}, expected {expected[0]}x{expected[1]} "
                             "like the other images")
        arrays.append(np.asarray(image, dtype=np.float32) / 255)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), list(names)
