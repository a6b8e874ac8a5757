"""A tiny deterministic ``DualEncoder`` for fast method tests (no weights, no tokenizer files)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from agiqa.encoders.base import DualEncoder, EncoderOutput


class TinyDualEncoder(DualEncoder):
    """16x16 RGB -> 4x4 grid of 24-d tokens; words hashed to 64 buckets -> 20-d tokens; 16-d joint space.

    Like the lite encoder it has a concept vocabulary (8 concepts: image probabilities and text summaries), so
    cards with TSP-MGS's ``concept_match`` build over it.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.name = "tiny"
        self.image_size = 16
        self.embed_dim = 16
        self.image_token_dim = 24
        self.text_token_dim = 20
        self.max_text_tokens = 12
        self.patchify = nn.Conv2d(3, 24, kernel_size=4, stride=4)
        self.image_block = nn.Sequential(nn.LayerNorm(24), nn.Linear(24, 24), nn.GELU())
        self.words = nn.Embedding(64, 20)
        self.text_block = nn.Sequential(nn.LayerNorm(20), nn.Linear(20, 20), nn.GELU())
        self.image_projection = nn.Linear(24, 16)
        self.text_projection = nn.Linear(20, 16)
        self.concept_head = nn.Linear(24, 8)
        self.register_buffer("concept_names", nn.functional.normalize(torch.randn(8, 20), dim=-1))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.25

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        tokens = self.image_block(self.patchify(pixel_values).flatten(2).transpose(1, 2))
        summary = tokens.mean(dim=1)
        concepts = self.concept_head(summary).softmax(dim=-1)
        return EncoderOutput(tokens=tokens, pooled=self.image_projection(summary), summary=summary, concepts=concepts)

    def concept_text(self) -> torch.Tensor:
        return self.concept_names

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        ids = [
            [zlib.crc32(w.encode()) % 63 + 1 for w in t.lower().split()][: self.max_text_tokens] or [0] for t in texts
        ]
        length = max(len(i) for i in ids)
        padded = torch.tensor([i + [0] * (length - len(i)) for i in ids])
        mask = torch.tensor([[True] * len(i) + [False] * (length - len(i)) for i in ids])
        tokens = self.text_block(self.words(padded.to(self.words.weight.device)))
        weights = mask.unsqueeze(-1).to(tokens)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1)
        return EncoderOutput(
            tokens=tokens, pooled=self.text_projection(mean), mask=mask.to(tokens.device), summary=mean
        )

    def project(self, summary: torch.Tensor, tower: str) -> torch.Tensor:
        return self.image_projection(summary) if tower == "image" else self.text_projection(summary)

    def projection_modules(self) -> list[nn.Module]:
        return [self.image_projection, self.text_projection]

    def freeze(self, fraction: float, tower: str = "both") -> None:
        modules = {"image": [self.patchify, self.image_block], "text": [self.words, self.text_block]}
        for name in ("image", "text") if tower == "both" else (tower,):
            for module in modules[name]:
                module.requires_grad_(fraction < 1.0)


def tiny_images(count: int, size: int = 40, seed: int = 0) -> list[Image.Image]:
    """Random RGB images (larger than the encoder input, so patch crops have something to cut)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)) for _ in range(count)]
