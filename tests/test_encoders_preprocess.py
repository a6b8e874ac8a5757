"""``ImageTransform``: PIL preprocessing that reproduces transformers' image processors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil

from agiqa.encoders.preprocess import ImageTransform


@pytest.mark.parametrize("shape", [(50, 90), (97, 41), (31, 33), (20, 130), (300, 40)])
def test_matches_clip_image_processor(shape: tuple[int, int]) -> None:
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8))
    expected = torch.from_numpy(processor(image, return_tensors="np")["pixel_values"][0])
    torch.testing.assert_close(ImageTransform.from_hf_config(processor.to_dict())(image), expected)


def test_modes_are_converted_to_rgb() -> None:
    transform = ImageTransform(size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    gray = transform(Image.new("L", (20, 30), 255))
    rgba = transform(Image.new("RGBA", (30, 20), (255, 0, 0, 10)))
    assert gray.shape == rgba.shape == (3, 16, 16)
    assert torch.allclose(gray, torch.ones_like(gray)) and rgba[0].min() == 1.0 and rgba[1].max() == 0.0


def test_resize_larger_than_crop_matches_processor() -> None:
    processor = CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32})
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (70, 50, 3), dtype=np.uint8))
    transform = ImageTransform.from_hf_config(processor.to_dict())
    expected = torch.from_numpy(processor(image, return_tensors="np")["pixel_values"][0])
    assert transform.size == 32 and transform.resize == 40
    torch.testing.assert_close(transform(image), expected)
