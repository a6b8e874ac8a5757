"""Training views: Stable Preference's weak views and the flip + centre crop of the robustness report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from agiqa.train import augment
from agiqa.train.config import StablePreferenceConfig


def test_random_resized_box_area_and_fallback() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = augment.random_resized_box(100, 80, rng, (0.85, 1.0))
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 80
        assert 0.8 <= (right - left) * (bottom - top) / 8000 <= 1.0
    assert augment.random_resized_box(10, 1, rng, (1.0, 1.0)) == (0, 0, 10, 1)
    with pytest.raises(ValueError, match="area"):
        augment.random_resized_box(10, 10, rng, (0.0, 1.0))


def test_weak_views_seeded_pil_and_tensor() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    views = augment.weak_views(image, k=3, seed=5)
    again = augment.weak_views(image, k=3, seed=5)
    assert len(views) == 3 and all(v.size == image.size for v in views)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, again, strict=True))
    other = augment.weak_views(image, k=3, seed=6)
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, other, strict=True))
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).float()
    tviews = augment.weak_views(tensor, k=2, seed=5)
    assert all(v.shape == tensor.shape for v in tviews)
    # area 1 on a square image: the only crop is the whole image, so a view is the image or its mirror
    square = torch.arange(16.0).view(1, 4, 4)
    for view in augment.weak_views(square, k=4, seed=0, area=(1.0, 1.0)):
        assert torch.allclose(view, square) or torch.allclose(view, square.flip(-1))


def test_flip_and_centre_crop_view() -> None:
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :30] = 255  # white stripe on the left edge, 10 px of it outside a 0.9 centre crop
    view = augment.hflip_center_crop(0.9)(Image.fromarray(pixels))
    assert view.size == (180, 90)
    out = np.asarray(view)
    assert out[:, -20:].min() == 255 and out[:, :-20].max() == 0  # flipped to the right, 20 px left


def test_seeded_weak_views_are_named_and_repeat_per_image() -> None:
    views = augment.stable_preference_views(StablePreferenceConfig(enabled=True, views=2, view_seed=3))
    assert [name for name, _ in views] == ["weak0-s3-a0.85-1.0", "weak1-s3-a0.85-1.0"]
    assert augment.stable_preference_views(StablePreferenceConfig(enabled=False)) == []
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8))
    first, second = (np.asarray(views[0][1](image, "ab12")) for _ in range(2))
    assert np.array_equal(first, second)
