"""Ensemble (ours, not from the papers): the mean of several methods' scores over one encoder.

Two recipes that make different errors average into a better score: on AGIQA-3K the mean of two TSP-MGS recipes
beat each of them in quality and alignment (``benchmarks/results/ensemble_probe*.md``). Members cost a second
head, not a second encoder:

* every member reads the card's encoder, whose towers run once per input (within ``image_features`` /
  ``text_features`` the encoder answers a repeated input from memory, whichever member asks) and one member's
  features serve every member that names the same feature; members must agree on them (same encoder, views and
  words), else building features is an error;
* each member projects into the joint space with projections of its own (``agiqa.encoders.shared``), trained on
  its own loss; the encoder's own projections are frozen and unused;
* scores: per dimension, the mean of the members that give it: every member by default, those whose
  ``dimensions`` name it when members list theirs (a member whose alignment would dilute another's reading of the
  prompt can give quality alone); each member still computes, and trains, every dimension of the card;
* training: each member's objective on its own scores, summed (``loss_parts``), and each member keeps its own best
  epoch by its own validation scores (``agiqa.train.loop``), so each member ends as it would alone;
* ``prefit``: each member's closed-form parts, on the same rows.

A card::

    method: ensemble
    method_args:
      members:
        - {method: tsp-mgs, method_args: {...}, dimensions: [quality]}   # optional: the scores it gives
        - {method: tsp-mgs, method_args: {...}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.encoders.shared import SharedTowers
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.registry import METHODS, register_method


class Ensemble(QualityModel):
    """The mean of ``members``' scores (see module docstring).

    Args:
        encoder: The shared encoder.
        dimensions: Output scores (every member gives each of them).
        members: ``[{method: NAME, method_args: {...}, dimensions: [...]}, ...]``, two or more; ``dimensions``
            (optional, default all) names the scores a member gives.
        source: Where the members were described, for error messages.
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        members: Sequence[Mapping[str, Any]],
        source: str = "ensemble",
    ) -> None:
        super().__init__(encoder, dimensions)
        if len(members) < 2:
            raise ValueError(f"{source}: method_args.members lists {len(members)} member(s); an ensemble needs two")
        for module in encoder.projection_modules():
            module.requires_grad_(False)  # each member projects with its own copy
        built = []
        for i, spec in enumerate(members):
            unknown = set(spec) - {"method", "method_args", "dimensions"}
            if "method" not in spec or unknown:
                raise ValueError(
                    f"{source}: member {i} is {dict(spec)}; give each member `method`, optional `method_args` "
                    "and `dimensions`"
                )
            card = ModelCard(
                name=f"{source} member {i}",
                method=spec["method"],
                encoder=encoder.name,
                dimensions=tuple(dimensions),
                method_args=dict(spec.get("method_args") or {}),
                source=f"{source} member {i}",
            )
            member = METHODS.get(spec["method"])(SharedTowers(encoder), card)
            member.card = card
            built.append(member)
        self.members = nn.ModuleList(built)
        names = [d.name for d in dimensions]
        self.given = [list(spec.get("dimensions") or names) for spec in members]
        for i, given in enumerate(self.given):
            if set(given) - set(names):
                raise ValueError(f"{source}: member {i} dimensions {given}: names must be among {names}")
        lacking = [n for n in names if not any(n in g for g in self.given)]
        if lacking:
            raise ValueError(f"{source}: no member gives {lacking}; list them in some member's dimensions")
        losses = {m.default_loss for m in built}
        if len(losses) > 1:
            raise ValueError(f"{source}: members train on different default losses {sorted(losses)}; set train.loss")
        self.default_loss = losses.pop()
        probe = Image.fromarray(np.full((40, 48, 3), 128, dtype=np.uint8))
        first = built[0].preprocess(probe)
        for i, member in enumerate(built[1:], start=1):
            other = member.preprocess(probe)
            if other.shape != first.shape or not torch.equal(other, first):
                raise ValueError(
                    f"{source}: member {i} prepares images differently from member 0 (e.g. another n_patches); "
                    "members share one input"
                )

    def loss_parts(self) -> list[QualityModel]:
        """The members: each trains on its own loss."""
        return list(self.members)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The members' shared input (checked equal when the ensemble was built)."""
        return self.members[0].preprocess(image)

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every member's image features; the encoder runs once per distinct input."""
        with _encode_once(self.encoder):
            return _merged((m.image_features(pixel_values) for m in self.members), "image")

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Every member's text features; the encoder encodes each list of texts once."""
        with _encode_once(self.encoder):
            return _merged((m.text_features(prompts) for m in self.members), "text")

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per dimension, the mean of the scores of the members that give it."""
        outs = [m.forward_head(features) for m in self.members]
        return {
            d.name: torch.stack([o[d.name] for o, given in zip(outs, self.given, strict=True) if d.name in given]).mean(
                0
            )
            for d in self.dimensions
        }

    @property
    def fits_in_closed_form(self) -> bool:
        """Whether any member fits a part in closed form."""
        return any(m.fits_in_closed_form for m in self.members)

    def prefit(self, features: dict[str, torch.Tensor], fit: torch.Tensor, groups: Sequence[str]) -> dict:
        """Each member's closed-form parts (``QualityModel.prefit``), fitted on the same rows."""
        return _merged((m.prefit(features, fit, groups) for m in self.members), "stand-in")


def _merged(parts: Iterator[dict[str, torch.Tensor]], what: str) -> dict[str, torch.Tensor]:
    """One dict of the members' features; a name two members give must hold the same values."""
    out: dict[str, torch.Tensor] = {}
    for i, feats in enumerate(parts):
        for key, value in feats.items():
            if key in out and (out[key].shape != value.shape or not torch.equal(out[key], value)):
                raise ValueError(
                    f"ensemble: member {i} gives {what} feature {key!r} unlike an earlier member's; members must "
                    "read the same features (same encoder, patches, words and prompt kinds where they share a name)"
                )
            out.setdefault(key, value)
    return out


@contextmanager
def _encode_once(encoder: DualEncoder) -> Iterator[None]:
    """Inside the block, ``encoder.encode_image`` answers a repeated input (equal pixels) from its last call and
    ``encoder.encode_text`` a repeated list of texts from its earlier calls."""
    originals = {name: encoder.__dict__.get(name) for name in ("encode_image", "encode_text")}
    encode_image: Callable[[torch.Tensor], EncoderOutput] = encoder.encode_image
    encode_text: Callable[[Sequence[str]], EncoderOutput] = encoder.encode_text
    last: list[tuple[torch.Tensor, EncoderOutput]] = []
    texts: dict[tuple[str, ...], EncoderOutput] = {}

    def image(pixel_values: torch.Tensor) -> EncoderOutput:
        if last and last[0][0].shape == pixel_values.shape and torch.equal(last[0][0], pixel_values):
            return last[0][1]
        out = encode_image(pixel_values)
        last[:] = [(pixel_values, out)]
        return out

    def text(batch: Sequence[str]) -> EncoderOutput:
        key = tuple(batch)
        if key not in texts:
            texts[key] = encode_text(batch)
        return texts[key]

    encoder.encode_image, encoder.encode_text = image, text  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, original in originals.items():  # an earlier patch (the training cache's EncoderMemo) comes back
            if original is None:
                delattr(encoder, name)
            else:
                setattr(encoder, name, original)


@register_method("ensemble")
def build_ensemble(encoder: DualEncoder, card: ModelCard) -> Ensemble:
    """Builder for cards with ``method: ensemble`` (``method_args.members``: the members' methods and arguments)."""
    args = dict(card.method_args)
    if set(args) != {"members"}:
        raise ValueError(
            f"{card.source or card.name}: method ensemble takes method_args {{members: [...]}}; got {sorted(args)}"
        )
    return Ensemble(encoder, card.dimensions, args["members"], source=card.source or card.name)
