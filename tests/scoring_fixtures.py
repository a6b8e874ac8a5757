"""A tiny encoder + method for the scoring tests, registered only in the processes that import this module.

The model folder it writes (``config.yaml`` + ``model.safetensors``) loads through the real ``create_model`` path.
Set ``AGIQA_TEST_SLOW_PREPROCESS`` (seconds) to slow preprocessing down, for the interrupted-run test.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.encoders.factory import ENCODERS, register_encoder
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.registry import METHODS, register_method

VOCAB = 97


class TinyEncoder(DualEncoder):
    """Conv patches for images, hashed words for text; ``max_text_tokens`` words at most."""

    name = "test-tiny"
    embed_dim = 8
    image_token_dim = 8
    text_token_dim = 8
    image_size = 16
    max_text_tokens = 6

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.img_proj = nn.Linear(8, 8)
        self.words = nn.Embedding(VOCAB, 8)
        self.txt_proj = nn.Linear(8, 8)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        delay = float(os.environ.get("AGIQA_TEST_SLOW_PREPROCESS", "0") or 0)
        if delay:
            time.sleep(delay)
        arr = np.asarray(image.resize((16, 16), Image.BILINEAR), dtype=np.float32) / 255.0
        return (torch.from_numpy(arr).permute(2, 0, 1) - 0.5) / 0.25

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        tokens = self.patch(pixel_values).flatten(2).transpose(1, 2)
        return EncoderOutput(tokens, self.img_proj(tokens.mean(1)))

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        ids = [[zlib.crc32(w.encode()) % (VOCAB - 1) + 1 for w in t.split()][: self.max_text_tokens] for t in texts]
        length = max(1, *(len(i) for i in ids))
        padded = torch.tensor([i + [0] * (length - len(i)) for i in ids], device=self.words.weight.device)
        mask = padded != 0
        tokens = self.words(padded)
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return EncoderOutput(tokens, self.txt_proj(pooled), mask)

    def freeze(self, fraction: float, tower: str = "both") -> None:
        for p in self.parameters():
            p.requires_grad_(fraction < 1)


class TinyModel(QualityModel):
    """quality from the image alone, alignment as image-text cosine (needs the prompt)."""

    def __init__(self, encoder: DualEncoder, card: ModelCard) -> None:
        super().__init__(encoder, card.dimensions)
        self.head = nn.Linear(8, 1)

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        img = features["image_pooled"]
        return {
            "quality": torch.sigmoid(self.head(img)).squeeze(-1),
            "alignment": torch.cosine_similarity(img, features["text_pooled"], dim=-1),
        }


if "test-tiny" not in ENCODERS:
    register_encoder("test-tiny")(lambda source, **kw: TinyEncoder())
if "test-tiny" not in METHODS:
    register_method("test-tiny")(TinyModel)

CARD = {
    "name": "test-tiny",
    "method": "test-tiny",
    "encoder": "test-tiny",
    "dimensions": [
        {"name": "quality", "low": 0.0, "high": 1.0, "higher_is_better": True},
        {"name": "alignment", "low": -1.0, "high": 1.0, "higher_is_better": True, "needs_prompt": True},
    ],
    "weights": "model.safetensors",
    "trained_on": "nothing (random test weights)",
    "metrics": {"quality_srcc": 0.0},
}


def write_tiny_model(folder: Path) -> Path:
    """Write a model folder with seeded random weights and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = TinyModel(TinyEncoder(), ModelCard.from_dict(CARD))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.yaml").write_text(yaml.safe_dump(CARD))
    return folder


def write_images(folder: Path, n: int, size: int = 24) -> list[Path]:
    """``n`` small distinct JPEGs named ``img_000.jpg`` ...; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / f"img_{k:03d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def write_untrained_model(folder: Path) -> Path:
    """A model folder whose card names no weights: the state ``untrained`` (the tiny method declares nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({**CARD, "weights": None}))
    return folder
