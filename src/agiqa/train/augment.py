"""Views of an image that training and the protocol score besides the original.

* **Weak views** (Stable Preference, 004): horizontal flip with probability 1/2, then a random resized crop
  (area 0.85-1 of the image) back to the input size. ``weak_view`` draws one from a generator;
  ``seeded_weak_view`` is the transform the trainer caches: its draw is seeded by (seed, view index, the
  image's content hash), so a view of an image is the same in every run and is drawn once per image, not anew
  every epoch.
* **Flip + centre crop** (004, Table 1): the robustness report's perturbation, ``hflip_center_crop(ratio)``.

A ``ViewTransform`` is ``transform(image, content_hash) -> image``; the name a view is cached under must
identify the transform fully (``stable_preference_views`` names them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from agiqa.train.config import StablePreferenceConfig

ViewTransform = Callable[[Image.Image, str], Image.Image]
"""``transform(image, content_hash) -> image``: a view of an image (the hash seeds random views per image)."""


def random_resized_box(
    width: int, height: int, rng: np.random.Generator, area: tuple[float, float] = (0.85, 1.0)
) -> tuple[int, int, int, int]:
    """Crop box ``(left, top, right, bottom)``: area fraction uniform in ``area``, aspect ratio log-uniform in
    [3/4, 4/3]; after 10 draws that do not fit, the whole image."""
    if not 0 < area[0] <= area[1] <= 1:
        raise ValueError(f"area={area} must satisfy 0 < low <= high <= 1")
    for _ in range(10):
        target = rng.uniform(*area) * width * height
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    return 0, 0, width, height


def weak_view(
    image: Image.Image | torch.Tensor, rng: np.random.Generator, area: tuple[float, float] = (0.85, 1.0)
) -> Image.Image | torch.Tensor:
    """One weak view: horizontal flip with probability 1/2, then a random resized crop back to the input size.

    Args:
        image: A PIL image or a ``(C, H, W)`` tensor.
        rng: Source of randomness (seed it for reproducible views).
        area: Bounds of the crop area as a fraction of the image (0.85-1 in the paper).
    """
    is_pil = isinstance(image, Image.Image)
    width, height = image.size if is_pil else (image.shape[-1], image.shape[-2])
    flip = rng.random() < 0.5
    box = random_resized_box(width, height, rng, area)
    if is_pil:
        out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image
        return out.crop(box).resize((width, height), Image.Resampling.BICUBIC)
    out = image.flip(-1) if flip else image
    crop = out[..., box[1] : box[3], box[0] : box[2]]
    return F.interpolate(crop.unsqueeze(0).float(), size=(height, width), mode="bilinear", align_corners=False)[0]


def weak_views(
    image: Image.Image | torch.Tensor, k: int = 3, seed: int = 0, area: tuple[float, float] = (0.85, 1.0)
) -> list[Image.Image | torch.Tensor]:
    """``k`` weak views of one image (3 in the paper), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [weak_view(image, rng, area) for _ in range(k)]


def seeded_weak_view(index: int, area: tuple[float, float] = (0.85, 1.0), seed: int = 0) -> ViewTransform:
    """Weak view ``index`` of any image, drawn from (``seed``, ``index``, the image's content hash)."""

    def view(image: Image.Image, content_hash: str = "") -> Image.Image:
        rng = np.random.default_rng([seed, index, int(content_hash[:12] or "0", 16)])
        return weak_view(image, rng, area)

    return view


def stable_preference_views(options: StablePreferenceConfig) -> list[tuple[str, ViewTransform]]:
    """The named weak views Stable Preference scores besides the original (none when it is off)."""
    if not options.enabled:
        return []
    low, high = options.crop_area
    return [
        (f"weak{i}-s{options.view_seed}-a{low}-{high}", seeded_weak_view(i, options.crop_area, options.view_seed))
        for i in range(options.views)
    ]


def hflip_center_crop(ratio: float) -> ViewTransform:
    """Stable Preference's perturbation (Table 1): horizontal flip, then the central crop of ``ratio`` x side."""

    def view(image: Image.Image, _hash: str = "") -> Image.Image:
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        w, h = flipped.size
        cw, ch = max(1, round(w * ratio)), max(1, round(h * ratio))
        left, top = (w - cw) // 2, (h - ch) // 2
        return flipped.crop((left, top, left + cw, top + ch))

    return view
