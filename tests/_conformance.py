"""The ``QualityModel`` contract as checks any model must pass (registry-wide tests and the plugin test use them)."""

from __future__ import annotations

from typing import Any

import torch

from _tiny import tiny_images
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.layers.qformer import QFormer

PROMPTS = ["a red cat, oil painting", "a dog. in a park, 8k", "tree", "sky, cloud, sun, blue"]
TINY_QFORMER = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "num_queries": 4}
# Card arguments sized for the tiny test encoders (widths 16-32); every other argument is kept as the card has it.
TINY_ARGS: dict[str, Any] = {
    "qformer": TINY_QFORMER,
    "num_heads": 4,
    "text_length": 10,
    "regressor_hidden": 8,
    "n_phrases": 3,
    "max_words": 6,
    "refiner": "rules",  # the llm refiner is tested in test_prompts (slow)
}


def tiny_card(card: ModelCard, encoder: str = "tiny") -> ModelCard:
    """``card`` over a tiny encoder, its size arguments shrunk (``TINY_ARGS``) and its weights left out."""
    args = {k: TINY_ARGS.get(k, v) for k, v in card.method_args.items()}
    return ModelCard(name=card.name, method=card.method, encoder=encoder, dimensions=card.dimensions, method_args=args)


def pixels(model: QualityModel, n: int = 4) -> torch.Tensor:
    """A batch of ``n`` random images, preprocessed by the model."""
    return torch.stack([model.preprocess(im) for im in tiny_images(n)])


@torch.no_grad()
def check_contract(model: QualityModel, prompt_sensitive: bool = True) -> None:
    """Shapes, finiteness, ``forward == forward_head(forward_features)``, batch-size and order invariance,
    per-item features that stack into the batch's, and which scores depend on the prompt: a dimension whose card
    says ``needs_prompt: false`` gives the same scores for other prompts and for no prompt, one that says true
    gives other scores for other prompts.

    Args:
        model: The model, in eval mode.
        prompt_sensitive: Require the scores that need a prompt to change when the prompts are swapped (off
            when the encoder cannot show it, e.g. image tokens that are all equal). Nor can a score that is the
            same for all four images (a random encoder saturating a zero-shot softmax), nor text features that
            are the same for every prompt (the tiny CLIP tokenizer maps most characters to its end token).
    """
    batch = pixels(model)
    out = model(batch, PROMPTS)
    assert set(out) == {d.name for d in model.dimensions}
    for scores in out.values():
        assert scores.shape == (4,) and torch.isfinite(scores).all()
    split = model.forward_head(model.forward_features(batch, PROMPTS))
    for name in out:
        torch.testing.assert_close(split[name], out[name])
    single = model(batch[2:3], PROMPTS[2:3])
    flipped = model(batch.flip(0), PROMPTS[::-1])
    for name in out:
        torch.testing.assert_close(single[name], out[name][2:3], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(flipped[name], out[name].flip(0), atol=1e-5, rtol=1e-4)
    # per-image and per-prompt features stack into the batch's features (what the feature cache relies on)
    rows = [model.text_features([p]) for p in PROMPTS]
    for key, value in model.text_features(PROMPTS).items():
        torch.testing.assert_close(torch.cat([r[key] for r in rows]), value, atol=1e-5, rtol=1e-4)
    images = [model.image_features(batch[i : i + 1]) for i in range(4)]
    for key, value in model.image_features(batch).items():
        torch.testing.assert_close(torch.cat([r[key] for r in images]), value, atol=1e-5, rtol=1e-4)
    # a card may only claim a prompt-free score if the prompt truly does not matter
    text = model.text_features(PROMPTS).values()
    prompt_sensitive &= any(not torch.allclose(v[0], v[i]) for v in text for i in range(1, len(PROMPTS)))
    swapped = model(batch, [PROMPTS[1], PROMPTS[0], PROMPTS[3], PROMPTS[2]])
    # no prompt at all: what the scorer runs for `agiqa score` without --prompt (prompt-free dimensions are kept)
    empty = model(batch, [""] * len(PROMPTS))
    for spec in model.dimensions:
        if not spec.needs_prompt:
            torch.testing.assert_close(swapped[spec.name], out[spec.name], msg=f"{spec.name} depends on the prompt")
            torch.testing.assert_close(empty[spec.name], out[spec.name], msg=f"{spec.name} differs without a prompt")
        elif prompt_sensitive and out[spec.name].std() > 1e-6:
            assert not torch.allclose(swapped[spec.name], out[spec.name]), f"{spec.name} ignores the prompt"


def check_gradients(model: QualityModel) -> None:
    """Two SGD steps on a loss of every score reach every trainable head parameter (after ``prefit``, as in training;
    the scores of each of ``model.loss_parts()``, as the trainer takes them).

    BLIP-2's Q-Former runs a feed-forward on the text positions of every layer; only the queries are read out, so
    the last layer's text feed-forward of a ``QFormer`` cannot influence any score and is exempt.
    """
    head = {n: p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad}
    assert head, f"{type(model).__name__} has no trainable head parameter"
    unused = set()
    for prefix, module in model.named_modules():
        if isinstance(module, QFormer):
            last = f"{prefix}.qformer.encoder.layer.{len(module.qformer.encoder.layer) - 1}."
            unused |= {n for n in head if n.startswith(last) and (".intermediate." in n or ".output." in n)}
    features = {k: v.detach() for k, v in model.forward_features(pixels(model), PROMPTS).items()}
    # what the trainer does first: fit the closed-form parts (most models have none), then train on what they give
    features |= model.prefit(features, torch.ones(len(PROMPTS), dtype=torch.bool), PROMPTS)
    optimiser = torch.optim.SGD(head.values(), lr=0.1)
    for _ in range(2):  # a second step so that parameters behind zero-initialised layers get gradients too
        optimiser.zero_grad()
        loss = torch.zeros(())
        for part in model.loss_parts():  # as the trainer does: each part's own scores (an ensemble's members)
            out = part.forward_head(features)
            loss = loss + sum(
                (s * torch.arange(4.0)).sum() + (s**2).sum() * (k + 1) for k, s in enumerate(out.values())
            )
        loss.backward()
        optimiser.step()
    dead = [n for n, p in head.items() if n not in unused and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead, f"{type(model).__name__}: no gradient reached {dead}"
