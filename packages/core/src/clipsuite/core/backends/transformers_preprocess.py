"""Image preprocessing as a transformers CLIP folder's ``preprocessor_config.json`` says.

``ClipImageTransform`` reproduces transformers' ``CLIPImageProcessor`` (the torchvision backend):
PIL -> uint8 tensor, resize (shortest edge, antialiased, the config's resample filter), centre crop
(``int((h - crop) / 2)``, zero-padded when the crop is larger), then rescale and normalise fused as
``(x - mean / s) / (std / s)``. It is a small picklable callable, so DataLoader workers can use it
without the processor's per-call overhead; a test compares it with ``CLIPImageProcessor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import ModelError

PROCESSOR_FILE = "preprocessor_config.json"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# PIL's resample codes (what preprocessor_config.json stores) -> torchvision, as transformers maps them
_RESAMPLE = {0: InterpolationMode.NEAREST_EXACT, 1: InterpolationMode.LANCZOS, 2: InterpolationMode.BILINEAR,
             3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING}


@dataclass(frozen=True)
class ClipImageTransform:
    """``PIL.Image -> [3, H, W]`` float32, as ``CLIPImageProcessor`` with these settings."""

    resize: dict[str, int] | None  # {"shortest_edge": n} or {"height": h, "width": w}; None: no resize
    crop: tuple[int, int] | None  # (height, width); None: no centre crop
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resample: int = 3
    rescale_factor: float | None = 1 / 255  # None: no rescale
    normalize: bool = True

    @property
    def output_size(self) -> tuple[int, int]:
        if self.crop is not None:
            return self.crop
        if self.resize is not None and "height" in self.resize:
            return int(self.resize["height"]), int(self.resize["width"])
        raise ModelError("this preprocessing keeps the input size (no crop, no fixed resize)")

    def _resized_shape(self, height: int, width: int) -> tuple[int, int]:
        assert self.resize is not None
        if "shortest_edge" in self.resize:
            short_side = int(self.resize["shortest_edge"])
            if width <= height:
                return int(short_side * height / width), short_side
            return short_side, int(short_side * width / height)
        return int(self.resize["height"]), int(self.resize["width"])

    def _center_crop(self, image: torch.Tensor) -> torch.Tensor:
        assert self.crop is not None
        crop_h, crop_w = self.crop
        height, width = image.shape[-2:]
        if crop_w > width or crop_h > height:  # pad with zeros first, as transformers does
            pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
            image = tvF.pad(image, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2], fill=0)
            height, width = image.shape[-2:]
        return tvF.crop(image, int((height - crop_h) / 2.0), int((width - crop_w) / 2.0), crop_h, crop_w)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            # transparency goes onto white (transformers' convert_to_rgb), not onto black
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
        if self.resize is not None:
            shape = self._resized_shape(*pixels.shape[-2:])
            pixels = tvF.resize(pixels, list(shape), interpolation=_RESAMPLE[self.resample], antialias=True)
        if self.crop is not None:
            pixels = self._center_crop(pixels)
        if self.normalize and self.rescale_factor is not None:
            # fused like transformers: mean and std scaled by 1 / rescale_factor, in float32
            mean = torch.tensor(self.mean) * (1.0 / self.rescale_factor)
            std = torch.tensor(self.std) * (1.0 / self.rescale_factor)
            return tvF.normalize(pixels.to(torch.float32), mean.tolist(), std.tolist())
        if self.normalize:
            return tvF.normalize(pixels.to(torch.float32), list(self.mean), list(self.std))
        if self.rescale_factor is not None:
            return pixels.to(torch.float32) * self.rescale_factor
        return pixels.to(torch.float32)

    def preprocess_cfg(self) -> PreprocessCfg:
        """The same settings in open_clip's vocabulary (size, mean, std) for code that reads them."""
        interpolation = {2: "bilinear", 3: "bicubic"}.get(self.resample, "bicubic")
        return PreprocessCfg(size=self.output_size, mean=tuple(self.mean), std=tuple(self.std),
                             interpolation=interpolation, resize_mode="shortest")

    def train_transform(self) -> Any:
        """Training augmentation: open_clip's (random resized crop, scale 0.9-1) with these statistics."""
        return image_transform_v2(self.preprocess_cfg(), is_train=True)


def _size(value: Any, where: str) -> dict[str, int]:
    if isinstance(value, int):  # very old configs store a bare int for the shortest edge
        return {"shortest_edge": value}
    if isinstance(value, dict) and "shortest_edge" in value:
        return {"shortest_edge": int(value["shortest_edge"])}
    if isinstance(value, dict) and "height" in value and "width" in value:
        return {"height": int(value["height"]), "width": int(value["width"])}
    raise ModelError(f"{where}: 'size' must be an int or have 'shortest_edge' or 'height' and 'width' (got {value!r})")


def _crop(value: Any, where: str) -> tuple[int, int]:
    size = _size(value, where)
    if "shortest_edge" in size:
        return size["shortest_edge"], size["shortest_edge"]
    return size["height"], size["width"]


def transform_from_dict(config: dict[str, Any], where: str = PROCESSOR_FILE) -> ClipImageTransform:
    """A ``ClipImageTransform`` from the contents of a ``preprocessor_config.json``."""
    if not isinstance(config, dict):
        raise ModelError(f"{where}: expected a JSON object")
    resample = int(config.get("resample", 3))
    if resample not in _RESAMPLE:
        raise ModelError(f"{where}: unknown resample filter {resample} (PIL codes 0-5)")
    do_resize = bool(config.get("do_resize", True))
    do_crop = bool(config.get("do_center_crop", True))
    mean = config.get("image_mean", OPENAI_MEAN)
    std = config.get("image_std", OPENAI_STD)
    mean = (float(mean),) * 3 if isinstance(mean, (int, float)) else tuple(float(m) for m in mean)
    std = (float(std),) * 3 if isinstance(std, (int, float)) else tuple(float(s) for s in std)
    return ClipImageTransform(
        resize=_size(config.get("size", {"shortest_edge": 224}), where) if do_resize else None,
        crop=_crop(config.get("crop_size", {"height": 224, "width": 224}), where) if do_crop else None,
        mean=mean, std=std, resample=resample,
        rescale_factor=float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else None,
        normalize=bool(config.get("do_normalize", True)))


def default_transform(image_size: int) -> ClipImageTransform:
    """What ``CLIPImageProcessor`` does for a model of ``image_size`` when a folder has no
    ``preprocessor_config.json`` (``CLIPModel.save_pretrained`` alone writes none)."""
    return ClipImageTransform(resize={"shortest_edge": image_size}, crop=(image_size, image_size),
                              mean=OPENAI_MEAN, std=OPENAI_STD)


def load_transform(folder: Path | None, image_size: int) -> ClipImageTransform:
    """The folder's preprocessing, or the CLIP default for ``image_size`` when it has none."""
    path = folder / PROCESSOR_FILE if folder is not None else None
    if path is None or not path.is_file():
        return default_transform(image_size)
    return transform_from_dict(read_json(path), str(path))


def with_image_size(transform: ClipImageTransform, image_size: int) -> ClipImageTransform:
    """The same statistics at another input size (``load_model(..., image_size=...)``)."""
    return ClipImageTransform(resize={"shortest_edge": image_size}, crop=(image_size, image_size),
                              mean=transform.mean, std=transform.std, resample=transform.resample,
                              rescale_factor=transform.rescale_factor, normalize=transform.normalize)


def transform_to_dict(transform: ClipImageTransform) -> dict[str, Any]:
    """The ``preprocessor_config.json`` that ``transform_from_dict`` reads back to ``transform``."""
    data: dict[str, Any] = {"image_processor_type": "CLIPImageProcessor", "do_convert_rgb": True,
                            "do_resize": transform.resize is not None, "resample": transform.resample,
                            "do_center_crop": transform.crop is not None,
                            "do_rescale": transform.rescale_factor is not None,
                            "do_normalize": transform.normalize,
                            "image_mean": list(transform.mean), "image_std": list(transform.std)}
    if transform.resize is not None:
        data["size"] = dict(transform.resize)
    if transform.crop is not None:
        data["crop_size"] = {"height": transform.crop[0], "width": transform.crop[1]}
    if transform.rescale_factor is not None:
        data["rescale_factor"] = transform.rescale_factor
    return data
