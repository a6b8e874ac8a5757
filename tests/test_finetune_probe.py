"""The fine-tuning probe rebuilds the lite encoder's ``multilevel`` summary from what it caches and what it trains:
if the two disagreed, its rows would not measure the default's features."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
finetune_probe = pytest.importorskip("finetune_probe")


@pytest.mark.parametrize("tail", [1, 2])
def test_cached_part_plus_trained_tail_is_the_encoders_summary(tail: int) -> None:
    from agiqa.encoders import create_encoder

    encoder = create_encoder("lite", image_size=224, pooling="multilevel")
    net, ends = encoder.image_tower, encoder.stage_ends
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = encoder.encode_image(pixels).summary
        cached = finetune_probe.frozen_part(net, ends, pixels)
        first = len(net._blocks) - tail
        frozen = torch.cat([cached[f"stats_{i}"] for i in ends if i < first], dim=-1)
        probe = finetune_probe.Probe(net, ends, tail, frozen.shape[1], prompt_dim=8).eval()
        got = probe.summary(frozen, cached[f"enter_{tail}"].float())
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=5e-4), (got - expected).abs().max()  # the cache keeps float16 maps
