"""Every trained method (tsp-mgs, prefiqa, mint-iqa, ip-iqa) against the QualityModel contract.

Run over a tiny hand-written encoder, tiny random CLIP and BLIP-2 checkpoints loaded through the real
``create_encoder`` path, and (slow) the offline lite encoder with the package's cards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _tiny import TinyDualEncoder, tiny_images
from _tiny_checkpoints import save_tiny_blip2, save_tiny_clip
from agiqa.encoders import create_encoder
from agiqa.encoders.base import DualEncoder
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.registry import METHODS, list_models

METHOD_NAMES = ("tsp-mgs", "prefiqa", "mint-iqa", "ip-iqa")
TINY_ARGS: dict[str, dict[str, Any]] = {
    "tsp-mgs": {"adapter": True, "alpha": {"quality": "learned"}, "learn_logit_scale": True, "max_words": 6},
    "prefiqa": {"n_phrases": 3, "num_heads": 2},
    "mint-iqa": {
        "qformer": {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "num_queries": 4},
        "text_length": 10,
        "regressor_hidden": 8,
    },
    "ip-iqa": {"text_length": 10, "num_heads": 4},
}
DIMS = (ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True))
PROMPTS = ["a red cat, oil painting", "a dog. in a park, 8k", "tree", "sky, cloud, sun, blue"]


def build(method: str, encoder: DualEncoder, **overrides: Any) -> QualityModel:
    card = ModelCard(
        name=f"{method}-test",
        method=method,
        encoder="tiny",
        dimensions=DIMS,
        method_args={**TINY_ARGS[method], **overrides},
    )
    return METHODS.get(method)(encoder, card)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DualEncoder]:
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return {
        "tiny": TinyDualEncoder(),
        "clip": create_encoder(f"clip:{save_tiny_clip(root / 'clip')}"),
        "blip2": create_encoder(f"blip2:{save_tiny_blip2(root / 'blip2')}"),
    }


def _batch(model: QualityModel, n: int = 4) -> torch.Tensor:
    return torch.stack([model.preprocess(im) for im in tiny_images(n)])


CASES = [(m, b) for m in METHOD_NAMES for b in ("tiny", "clip")] + [("mint-iqa", "blip2"), ("ip-iqa", "blip2")]


@pytest.mark.parametrize(("method", "backend"), CASES)
def test_contract(method: str, backend: str, encoders: dict[str, DualEncoder]) -> None:
    torch.manual_seed(0)
    model = build(method, encoders[backend]).eval()
    pixels = _batch(model)
    with torch.no_grad():
        out = model(pixels, PROMPTS)
        assert set(out) == {"quality", "alignment"}
        for scores in out.values():
            assert scores.shape == (4,) and torch.isfinite(scores).all()
        # forward == forward_head(forward_features)
        split = model.forward_head(model.forward_features(pixels, PROMPTS))
        for name in out:
            torch.testing.assert_close(split[name], out[name])
        # batch-size and order invariance
        single = model(pixels[2:3], PROMPTS[2:3])
        flipped = model(pixels.flip(0), PROMPTS[::-1])
        for name in out:
            torch.testing.assert_close(single[name], out[name][2:3], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(flipped[name], out[name].flip(0), atol=1e-5, rtol=1e-4)
        # per-image and per-prompt features stack into the batch's features (what the feature cache relies on)
        rows = [model.text_features([p]) for p in PROMPTS]
        for key, value in model.text_features(PROMPTS).items():
            torch.testing.assert_close(torch.cat([r[key] for r in rows]), value, atol=1e-5, rtol=1e-4)
        images = [model.image_features(pixels[i : i + 1]) for i in range(4)]
        for key, value in model.image_features(pixels).items():
            torch.testing.assert_close(torch.cat([r[key] for r in images]), value, atol=1e-5, rtol=1e-4)
        # alignment uses the prompt; IP-IQA's prompt only steers an attention pool over the image tokens, which
        # cannot matter when they are all equal (the random tiny BLIP-2's vision tower outputs ~constant tokens)
        tokens = model.image_features(pixels).get("image_tokens")
        if method != "ip-iqa" or tokens.std(dim=1).max() > 1e-3:
            swapped = model(pixels, [PROMPTS[1], PROMPTS[0], PROMPTS[3], PROMPTS[2]])
            assert not torch.allclose(swapped["alignment"], out["alignment"])


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_gradients_reach_every_head_parameter(method: str, encoders: dict[str, DualEncoder]) -> None:
    torch.manual_seed(0)
    model = build(method, encoders["tiny"]).train()
    head = {n: p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad}
    assert head, f"{method} has no trainable head parameters"
    features = {k: v.detach() for k, v in model.forward_features(_batch(model), PROMPTS).items()}
    optimiser = torch.optim.SGD(head.values(), lr=0.1)
    for _ in range(2):  # a second step so that parameters behind zero-initialised layers get gradients too
        optimiser.zero_grad()
        out = model.forward_head(features)
        (out["quality"] * torch.arange(4.0)).sum().add((out["alignment"] ** 2).sum()).backward()
        optimiser.step()
    # BLIP-2's Q-Former runs a feed-forward on the text positions of every layer; only the queries are read
    # out, so the last layer's text feed-forward cannot influence any score.
    last = (
        f"qformer.qformer.encoder.layer.{len(model.qformer.qformer.encoder.layer) - 1}."
        if method == "mint-iqa"
        else "-"
    )
    unused = [n for n in head if n.startswith(last) and (".intermediate." in n or ".output." in n)]
    dead = [n for n, p in head.items() if n not in unused and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead, f"{method}: no gradient reached {dead}"


@pytest.mark.parametrize("card", [c for c in list_models() if c.method in METHOD_NAMES], ids=lambda c: c.name)
def test_package_cards_build(card: ModelCard, encoders: dict[str, DualEncoder]) -> None:
    args = dict(card.method_args)
    if "qformer" in args:  # the BLIP-2-sized Q-Former of the clip card is too big for a unit test
        args["qformer"] = TINY_ARGS["mint-iqa"]["qformer"]
    args.pop("refiner", None)  # the llm refiner is tested in test_prompts (slow)
    if "num_heads" in args:  # heads must divide the tiny encoder's widths (20 and 16)
        args["num_heads"] = 4 if card.method == "ip-iqa" else 2
    small = ModelCard(name=card.name, method=card.method, encoder="tiny", dimensions=card.dimensions, method_args=args)
    model = METHODS.get(card.method)(TinyDualEncoder(), small).eval()
    with torch.no_grad():
        batch = _batch(model, 2)
        out = model(batch, PROMPTS[:2])
        swapped = model(batch, PROMPTS[2:4])
    assert set(out) == set(card.dimension_names)
    for spec in card.dimensions:  # a card may only claim a prompt-free score if the prompt truly does not matter
        if not spec.needs_prompt:
            torch.testing.assert_close(out[spec.name], swapped[spec.name], msg=f"{card.name}: {spec.name}")


def test_unknown_method_args_name_the_card() -> None:
    card = ModelCard(
        name="x", method="prefiqa", encoder="tiny", dimensions=DIMS, method_args={"n_phrase": 3}, source="/cards/x.yaml"
    )
    with pytest.raises(ValueError, match=r"/cards/x.yaml.*n_phrase.*allowed"):
        METHODS.get("prefiqa")(TinyDualEncoder(), card)


@pytest.fixture(scope="module")
def lite() -> DualEncoder:
    return create_encoder("lite")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_lite_cards_score_real_images(method: str, lite: DualEncoder, agiqa3k_root: Path) -> None:
    from PIL import Image

    card = next(c for c in list_models(f"{method}-lite"))
    model = METHODS.get(card.method)(lite, card).eval()
    paths = sorted((agiqa3k_root / "images").iterdir())[:2]
    pixels = torch.stack([model.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        out = model(pixels, ["a photo of a cat, oil painting", "a city at night, anime style"])
        single = model(pixels[1:], ["a city at night, anime style"])
    for name, scores in out.items():
        assert scores.shape == (2,) and torch.isfinite(scores).all()
        torch.testing.assert_close(single[name], scores[1:], atol=1e-4, rtol=1e-4)
