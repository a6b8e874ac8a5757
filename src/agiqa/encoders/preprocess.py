"""Image preprocessing shared by every backend: resize, centre-crop, normalise (PIL and numpy only).

The numbers that define a checkpoint's preprocessing travel with the checkpoint: ``ImageTransform`` is built
from arguments (lite) or from a Hugging Face ``preprocessor_config.json`` (CLIP, BLIP-2), then applied with
PIL, because torchvision (which transformers' default image processors need) is not a dependency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


MAX_ASPECT = 4
"""Longest side kept, in multiples of the shorter one, before any resize (see ``limit_aspect``)."""


def limit_aspect(image: Image.Image, max_aspect: int = MAX_ASPECT) -> Image.Image:
    """Cut the far ends of the longer side so it is at most ``max_aspect`` times the shorter one (centre kept).

    Every resize of an untrusted image goes through this first: a 12000 x 1 PNG (119 bytes) upscaled until its
    short side is 384 px would otherwise become 4.6 gigapixels.
    """
    w, h = image.size
    if max(w, h) <= max_aspect * min(w, h):
        return image
    keep = max_aspect * min(w, h)
    return image.crop(((w - keep) // 2, 0, (w + keep) // 2, h) if w > h else (0, (h - keep) // 2, w, (h + keep) // 2))


def upscale_short_side(image: Image.Image, side: int, max_aspect: int = MAX_ASPECT) -> Image.Image:
    """The image with its shorter side at least ``side``: smaller images are upscaled (aspect kept, PIL's default
    filter) after ``limit_aspect``, so the result has at most ``max_aspect * side * side`` pixels."""
    if min(image.size) >= side:
        return image
    image = limit_aspect(image, max_aspect)
    scale = side / min(image.size)
    return image.resize((max(side, round(image.width * scale)), max(side, round(image.height * scale))))


def resize_center_crop(
    image: Image.Image, size: int, resample: int = Image.Resampling.BICUBIC, resize: int | None = None
) -> Image.Image:
    """Resize so the shorter side is ``resize`` (default ``size``; aspect kept), then cut the central
    ``size`` x ``size`` square (extreme aspects are cut by ``limit_aspect`` first, so the resize stays small)."""
    short = resize or size
    image = limit_aspect(image)
    w, h = image.size
    # the longer side is floored, as transformers' image processors do, so outputs match theirs exactly
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample=resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_normalized_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB image -> ``(3, H, W)`` float32 tensor, scaled to [0, 1] then normalised per channel."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _side(value: Any, key: str) -> int:
    if isinstance(value, Mapping):
        for name in ("shortest_edge", "height", "width"):
            if name in value:
                return int(value[name])
        raise ValueError(f"preprocessor config: cannot read a size from {key}={dict(value)}")
    return int(value)


@dataclass(frozen=True)
class ImageTransform:
    """Decoded image -> normalised ``(3, size, size)`` tensor.

    Attributes:
        size: Side of the square output.
        center_crop: True: resize the shorter side to ``size`` then centre-crop (aspect kept);
            False: resize straight to ``size`` x ``size`` (aspect changes, nothing is cut; BLIP-2's way).
        mean: Per-channel mean of the normalisation (0..1 scale).
        std: Per-channel standard deviation.
        resample: PIL resampling filter.
        resize: Shorter side before the centre crop (default ``size``).
    """

    size: int
    center_crop: bool = True
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resample: int = Image.Resampling.BICUBIC
    resize: int | None = None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.center_crop:
            image = resize_center_crop(image, self.size, self.resample, self.resize)
        elif image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), resample=self.resample)
        return to_normalized_tensor(image, self.mean, self.std)

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any]) -> ImageTransform:
        """Read ``size``/``crop_size``/``do_center_crop``/``image_mean``/``image_std``/``resample`` of a
        Hugging Face ``preprocessor_config.json``.
        """
        crop = bool(config.get("do_center_crop", False))
        size = _side(config["crop_size"] if crop else config["size"], "crop_size" if crop else "size")
        return cls(
            resize=_side(config["size"], "size") if crop else None,
            size=size,
            center_crop=crop,
            mean=tuple(config.get("image_mean", IMAGENET_MEAN)),
            std=tuple(config.get("image_std", IMAGENET_STD)),
            resample=int(config.get("resample", Image.Resampling.BICUBIC)),
        )
