"""A ``Scorer`` for every registered card as the invariance tests run it, and a script printing their scores.

Cards over the lite encoder get the real encoder and the runtime ``agiqa.load`` picks (ONNX Runtime on a CPU);
the others get the tiny hand-written encoder (their CLIP / BLIP-2 weights cannot be had offline), size arguments
shrunk as in the conformance tests. ``python tests/_registry_scorers.py`` prints ``{card: {dimension: scores}}``
of a fixed set of images as JSON: the two-fresh-processes test runs it twice.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import torch
from PIL import Image

from _conformance import tiny_card
from _tiny import TinyDualEncoder
from agiqa.api import Scorer
from agiqa.encoders.fast import accelerate
from agiqa.models.card import ModelCard
from agiqa.models.registry import METHODS, create_model, list_models

PROMPTS = ["a red cat, oil painting", "a dog in a park at night, 8k", "tree", "a city skyline, anime style"]


def is_lite(card: ModelCard) -> bool:
    return card.encoder == "lite"


def scorer_for(card: ModelCard) -> Scorer:
    """The card's model: the real lite encoder (weights loaded, runtime as ``agiqa.load``), else a tiny one."""
    if is_lite(card):
        model = create_model(card.name)
        accelerate(model.encoder, "auto", threads=torch.get_num_threads())
        return Scorer(model)
    torch.manual_seed(0)
    return Scorer(METHODS.get(card.method)(TinyDualEncoder(), tiny_card(card)))


def images(n: int) -> list[bytes]:
    """``n`` distinct PNG images of varied sizes (encoded, as a user's files are)."""
    rng = np.random.default_rng(7)
    out = []
    for k in range(n):
        arr = rng.integers(0, 256, (48 + 4 * k, 64, 3), dtype=np.uint8)
        arr[: 10 + k] = (30 * k) % 256  # some structure, so images differ in more than noise
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def main() -> None:
    torch.set_num_threads(1)
    pics = images(len(PROMPTS))
    scores = {}
    for card in list_models():
        result = scorer_for(card).score(pics, PROMPTS, batch_size=len(PROMPTS))
        scores[card.name] = {k: v.tolist() for k, v in result.scores.items()}
    json.dump(scores, sys.stdout)


if __name__ == "__main__":
    main()
