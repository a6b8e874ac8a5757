"""Every registered model card, hence every registered method, against the ``QualityModel`` contract.

Nothing here names a method: the cases are whatever the registry holds (built-in methods and installed plugins).
Every card runs over a tiny hand-written encoder, one card of every method also over tiny random CLIP and BLIP-2
checkpoints loaded through the real ``create_encoder`` path, size arguments shrunk; (slow) the ``*-lite`` cards
over the offline lite encoder, and every model that can score here (trained or zero-shot, its weights present) with
its real weights: does ``needs_prompt`` tell the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _conformance import TINY_ARGS, check_contract, check_gradients, pixels, tiny_card
from _tiny import TinyDualEncoder
from _tiny_checkpoints import save_tiny_blip2, save_tiny_clip
from agiqa.api import load, model_info
from agiqa.encoders import create_encoder
from agiqa.encoders.base import DualEncoder
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.registry import METHODS, list_models

CARDS = list_models()
# one card per method for the other backends, preferring a card without shipped weights (a generic one)
FIRST_CARDS = [
    min((c for c in CARDS if c.method == m), key=lambda c: (c.weights is not None, c.name))
    for m in sorted({c.method for c in CARDS})
]
CASES = [(c, "tiny") for c in CARDS] + [(c, b) for c in FIRST_CARDS for b in ("clip", "blip2")]


def build(card: ModelCard, encoder: DualEncoder) -> torch.nn.Module:
    return METHODS.get(card.method)(encoder, tiny_card(card))


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DualEncoder]:
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return {
        "tiny": TinyDualEncoder(),
        "clip": create_encoder(f"clip:{save_tiny_clip(root / 'clip')}"),
        "blip2": create_encoder(f"blip2:{save_tiny_blip2(root / 'blip2')}"),
    }


def test_every_method_ships_a_card() -> None:
    shipped = {m for m in METHODS.names() if METHODS.get(m).__module__.startswith("agiqa.")}  # not test helpers'
    assert shipped <= {c.method for c in CARDS}, "a method without a card cannot be loaded by name"


@pytest.mark.parametrize(("card", "backend"), CASES, ids=[f"{c.name}-{b}" for c, b in CASES])
def test_contract(card: ModelCard, backend: str, encoders: dict[str, DualEncoder]) -> None:
    torch.manual_seed(0)
    try:
        model = build(card, encoders[backend]).eval()
        tokens = model.image_features(pixels(model)).get("image_tokens")
    except ValueError as err:  # a card may need what only some backends give (summaries, concepts); tiny gives all
        if backend == "tiny":
            raise
        pytest.skip(f"{card.name} does not run over {backend}: {err}")
    # The random tiny BLIP-2's vision tower outputs ~constant tokens: a prompt that only steers an attention
    # pool over them (IP-IQA) cannot change the score there.
    check_contract(model, prompt_sensitive=tokens is None or tokens.std(dim=1).max() > 1e-3)


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_gradients_reach_every_head_parameter(card: ModelCard, encoders: dict[str, DualEncoder]) -> None:
    torch.manual_seed(0)
    model = build(card, encoders["tiny"]).train()
    if not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("encoder.")):
        pytest.skip(f"{card.name}: no trainable head parameter (zero-shot, or the whole encoder trains)")
    check_gradients(model)


def test_unknown_method_args_name_the_card() -> None:
    dims = (ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True))
    card = ModelCard(
        name="x", method="prefiqa", encoder="tiny", dimensions=dims, method_args={"n_phrase": 3}, source="/cards/x.yaml"
    )
    with pytest.raises(ValueError, match=r"/cards/x.yaml.*n_phrase.*allowed"):
        METHODS.get("prefiqa")(TinyDualEncoder(), card)


def test_tiny_args_are_real_method_arguments() -> None:
    """Every shrinking argument is used by some card (a renamed argument would silently stop shrinking)."""
    used = {k for c in CARDS for k in c.method_args}
    assert set(TINY_ARGS) <= used, set(TINY_ARGS) - used


@pytest.fixture(scope="module")
def lite() -> DualEncoder:
    return create_encoder("lite")


@pytest.mark.slow
@pytest.mark.parametrize(
    "card", [c for c in CARDS if c.name.endswith("-lite") and c.weights is None], ids=lambda c: c.name
)
def test_lite_cards_score_real_images(card: ModelCard, lite: DualEncoder, agiqa3k_root: Path) -> None:
    from PIL import Image

    encoder = create_encoder("lite", **card.encoder_args) if card.encoder_args else lite
    model = METHODS.get(card.method)(encoder, card).eval()
    paths = sorted((agiqa3k_root / "images").iterdir())[:2]
    batch = torch.stack([model.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        out = model(batch, ["a photo of a cat, oil painting", "a city at night, anime style"])
        single = model(batch[1:], ["a city at night, anime style"])
    for name, scores in out.items():
        assert scores.shape == (2,) and torch.isfinite(scores).all()
        torch.testing.assert_close(single[name], scores[1:], atol=1e-4, rtol=1e-4)


READY = [r["name"] for r in model_info() if r["ready"]]  # trained or zero-shot, every weight here


@pytest.mark.slow
@pytest.mark.parametrize("name", READY, ids=str)
def test_needs_prompt_tells_the_truth_with_the_real_weights(name: str, agiqa3k_root: Path) -> None:
    """What the scorer does with the real weights: a prompt-free dimension ignores the prompt (and its absence), a
    prompt dimension changes with it."""
    scorer = load(name)
    paths = sorted((agiqa3k_root / "images").iterdir())[:2]
    a = scorer.score(paths, "a photo of a cat, oil painting")
    b = scorer.score(paths, "a city at night, anime style")
    none = scorer.score(paths)
    for spec in scorer.dimensions:
        if spec.needs_prompt:
            assert not np.allclose(a.scores[spec.name], b.scores[spec.name], atol=1e-6), spec.name
            assert np.isnan(none.scores[spec.name]).all()
        else:
            np.testing.assert_allclose(a.scores[spec.name], b.scores[spec.name], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(none.scores[spec.name], a.scores[spec.name], rtol=1e-5, atol=1e-6)
