"""A tiny encoder, a tiny method and a tiny synthetic dataset for the training tests (milliseconds per step).

Set ``AGIQA_TEST_SLOW_STEP`` (seconds) to slow every training step down, for the killed-run test.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from _tiny import TinyDualEncoder
from agiqa.data.sample import Dataset, Sample
from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.encoders.factory import ENCODERS
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.registry import METHODS
from agiqa.train.config import TrainConfig

SIZE = 16
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class TinyEncoder(DualEncoder):
    """4x4 patch conv image tower + hashed word embeddings; counts its encode calls."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.name, self.embed_dim, self.image_token_dim, self.text_token_dim = "tiny", 8, 8, 8
        self.image_size, self.max_text_tokens = SIZE, 16
        self.image_tower = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.text_tower = nn.Embedding(97, 8)
        self.image_projection = nn.Linear(8, 8, bias=False)
        self.text_projection = nn.Linear(8, 8, bias=False)
        self.image_calls = 0
        self.text_calls = 0

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        self.image_calls += len(pixel_values)
        tokens = self.image_tower(pixel_values).flatten(2).transpose(1, 2)
        summary = tokens.mean(1)
        return EncoderOutput(tokens, self.image_projection(summary), summary=summary)

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        self.text_calls += len(texts)
        words = [t.lower().split()[: self.max_text_tokens] or [""] for t in texts]
        length = max(len(w) for w in words)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            ids[i, : len(ws)] = torch.tensor([zlib.crc32(w.encode()) % 97 for w in ws])
            mask[i, : len(ws)] = True
        tokens = self.text_tower(ids)
        mean = (tokens * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return EncoderOutput(tokens, self.text_projection(mean), mask, summary=mean)

    def project(self, summary: torch.Tensor, tower: str) -> torch.Tensor:
        return self.image_projection(summary) if tower == "image" else self.text_projection(summary)

    def projection_modules(self) -> list[nn.Module]:
        return [self.image_projection, self.text_projection]

    def freeze(self, fraction: float, tower: str = "both") -> None:
        for name, module in (("image", self.image_tower), ("text", self.text_tower)):
            if tower in (name, "both"):
                module.requires_grad_(fraction < 1.0)

    @property
    def fingerprint(self) -> str:
        digest = zlib.crc32(b"".join(p.detach().numpy().tobytes() for p in self.parameters()))
        return f"tiny/{digest:08x}"


class TinyModel(QualityModel):
    """Linear head per dimension over the pooled image, pooled text and their product."""

    default_loss = "l1"

    def __init__(self, encoder: DualEncoder, card: ModelCard) -> None:
        super().__init__(encoder, card.dimensions)
        d = encoder.embed_dim
        self.heads = nn.ModuleDict(
            {s.name: nn.Sequential(nn.Linear(3 * d, 16), nn.GELU(), nn.Linear(16, 1)) for s in card.dimensions}
        )

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.training and os.environ.get("AGIQA_TEST_SLOW_STEP"):  # lets a test kill a run between steps
            time.sleep(float(os.environ["AGIQA_TEST_SLOW_STEP"]))
        img, txt = features["image_pooled"], features["text_pooled"]
        x = torch.cat([img, txt, img * txt], dim=-1)
        return {name: head(x).squeeze(-1) for name, head in self.heads.items()}


def register() -> None:
    """Register the tiny encoder and method (idempotent)."""
    if "tiny" not in ENCODERS:
        ENCODERS.add("tiny", lambda source=None, **kw: TinyEncoder(**kw))
    if "tiny-linear" not in METHODS:
        METHODS.add("tiny-linear", TinyModel)


def tiny_model_section() -> dict:
    return {
        "method": "tiny-linear",
        "encoder": "tiny",
        "dimensions": [
            {"name": "quality", "low": 0, "high": 5},
            {"name": "alignment", "low": 0, "high": 5, "needs_prompt": True},
        ],
    }


def train_config(root: Path, name: str, val_fraction: float, **train: object) -> TrainConfig:
    """A config training the tiny model on the tiny dataset, caching under ``root / "cache"``, quietly."""
    return TrainConfig.from_dict(
        {
            "name": name,
            "model": tiny_model_section(),
            "data": {"dataset": "tiny", "root": str(root), "val_fraction": val_fraction},
            "train": {"cache_dir": str(root / "cache"), "progress": False, **train},
        }
    )


def make_dataset(root: Path, n_prompts: int = 6, per_prompt: int = 4, seed: int = 0, aligned: bool = False) -> Dataset:
    """Solid-colour images with noise: quality = brightness (x4), alignment = prompt names the image's colour.

    With ``aligned`` every image shows the colour its prompt asks for (as generated images mostly do), so the
    labels alone never tell a model that alignment depends on the prompt.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    samples = []
    for p in range(n_prompts):
        asked = names[p % 3]
        prompt = f"a {asked} square number {p}"
        for k in range(per_prompt):
            colour = asked if aligned else names[(p + k) % 3]
            bright = rng.uniform(0.2, 1.0)
            base = np.array(COLOURS[colour]) * bright
            pixels = np.clip(base + rng.normal(0, 10, (SIZE * 2, SIZE * 2, 3)), 0, 255).astype(np.uint8)
            path = root / f"img_{p}_{k}.png"
            Image.fromarray(pixels).save(path)
            labels = {"quality": float(4 * bright), "alignment": float(4.0 if colour == asked else 0.5) + bright * 0.1}
            samples.append(Sample(str(path), prompt, path.name, labels))
    return Dataset("tiny", root, samples=samples, dimensions=("quality", "alignment"))


def register_concepts() -> None:
    """Register the tiny encoders, with ``tiny-concepts`` (a concept vocabulary, for TSP-MGS's match terms)."""
    register()
    if "tiny-concepts" not in ENCODERS:
        ENCODERS.add("tiny-concepts", lambda source=None, **kw: TinyDualEncoder(**kw))


def tsp_caption_config(root: Path, **method_args: object) -> TrainConfig:
    """TSP-MGS over ``tiny-concepts`` with the match terms of ``lite/tsp-mgs-cap`` (overridable), 4 epochs."""
    model = {
        **tiny_model_section(),
        "method": "tsp-mgs",
        "encoder": "tiny-concepts",
        "method_args": {
            "n_patches": 1,
            "project_in_head": True,
            "concept_match": True,
            "concept_pmi": True,
            "caption_match": True,
            "prompt_kind": {"alignment": "perception"},
            "fine_grained": {"quality": False, "alignment": False},
            **method_args,
        },
    }
    return TrainConfig.from_dict(
        {
            "name": "tiny-caption",
            "model": model,
            "data": {"dataset": "tiny", "root": str(root), "val_fraction": 0.2},
            "train": {
                "cache_dir": str(root / "cache"),
                "progress": False,
                "epochs": 4,
                "batch_size": 8,
                "lr": 0.01,
                "mismatch": {"enabled": True, "margin": 1.0},
            },
        }
    )
