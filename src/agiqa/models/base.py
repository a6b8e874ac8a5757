"""The contract every agiqa model implements: an encoder trunk and a method head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from agiqa.encoders.base import DualEncoder
from agiqa.models.card import ModelCard, ScoreSpec


class QualityModel(nn.Module):
    """Encoder (trunk) + method head, giving one score per dimension for each (image, prompt) pair.

    ``forward`` is split in two so that training a head over a frozen encoder can cache the first half:
    ``forward_features`` does all encoder work (``image_features`` per image + ``text_features`` per prompt, so
    the scorer can embed each unique prompt once and training can cache both) and returns a dict of tensors whose
    first dimension is the batch; ``forward_head`` maps those tensors to scores. ``forward`` must not depend on
    batch size or order.

    Scores are logits as they are: the pair objectives (``kl``, ``pairwise_ce``, Stable Preference) take the
    softmax over exactly what ``forward_head`` returns for the two images of a pair, and nothing downstream
    rescales them. A method whose scores need a temperature applies it in ``forward_head``, once (PrefIQA returns
    ``logit_scale * cos``).

    Everything below is the whole contract: the trainer, the scorer, the feature cache and the explanations
    read these attributes and nothing else.

    Attributes:
        encoder: The vision-language backbone.
        dimensions: What each output means (name, range, direction).
        card: The card the model was built from, set by ``agiqa.models.registry`` (None for a model built by hand).
        saved_encoder_keys: Encoder parameters saved with the heads in a model folder, set by the trainer to
            what it left trainable, so a checkpoint never depends on how an encoder initialises those parts.
        default_loss: Objective the trainer uses when a config names none: ``l1``, ``mae`` or ``mse`` against
            MOS; ``kl`` or ``pairwise_ce`` over same-prompt pairs.
        projects_in_head: The features stop at encoder summaries and ``forward_head`` applies
            ``encoder.project``, so training keeps ``encoder.projection_modules()`` trainable over cached features.
        feature_config: What identifies this model's features for the feature cache, when the cache should not
            probe ``image_features`` / ``text_features`` on a test image (None: probe).
        score_warning: A warning the scoring pipeline adds to every score of this model (``agiqa.load`` sets it
            when an untrained model is loaded on request); empty for none.
        needs_training: The method's scores mean nothing until its heads are trained (False for zero-shot
            methods); a card's ``needs_training`` overrides it. ``agiqa.models.state`` reads it from the class a
            builder is annotated to return, without building the model.
    """

    default_loss: ClassVar[str] = "l1"
    feature_config: ClassVar[dict[str, Any] | None] = None
    needs_training: ClassVar[bool] = True
    projects_in_head: bool = False

    def __init__(self, encoder: DualEncoder, dimensions: Sequence[ScoreSpec]) -> None:
        super().__init__()
        self.encoder = encoder
        self.dimensions = tuple(dimensions)
        self.card: ModelCard | None = None
        self.saved_encoder_keys: set[str] = set()
        self.score_warning = ""

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Decoded RGB image -> model input tensor (the encoder's preprocessing unless a method needs views)."""
        return self.encoder.preprocess(image)

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """All image-tower work for a batch; depends on the image alone, so it may be cached per image."""
        img = self.encoder.encode_image(pixel_values)
        return {"image_tokens": img.tokens, "image_pooled": img.pooled}

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """All text-tower work for a batch of prompts; depends on the prompt alone, so it may be cached per prompt.

        Text-side tensors may have any shape after the batch dimension (e.g. ``(B, n_phrases, D)``).
        """
        txt = self.encoder.encode_text(list(prompts))
        feats = {"text_tokens": txt.tokens, "text_pooled": txt.pooled}
        if txt.mask is not None:
            feats["text_mask"] = txt.mask
        return feats

    def forward_features(self, pixel_values: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """All encoder work: ``image_features`` and ``text_features`` merged (their keys must not clash)."""
        return {**self.image_features(pixel_values), **self.text_features(prompts)}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map encoder features to ``{dimension: (B,) scores}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_head")

    def prefit(self, features: dict[str, torch.Tensor], fit: torch.Tensor, groups: Sequence[str]) -> dict:
        """Fit the parts solved in closed form, before the gradient steps; most methods have none.

        Args:
            features: Cached features of every row of the run (``FeatureBank.batch`` of all rows).
            fit: ``(N,)`` bool, the rows to fit on (the training rows).
            groups: Group (prompt) of every row, for grouped out-of-fold fits.

        Returns:
            ``{feature: (N, ...)}`` image-side features that stand in for the model's own while the gradient
            steps run: out-of-fold values on the fitted rows (what a new image would get), the fitted part's
            output elsewhere. The trainer removes them after training; the model then computes them itself.
        """
        return {}

    @property
    def fits_in_closed_form(self) -> bool:
        """Whether ``prefit`` fits anything for this model: true for a class that overrides it, unless the class
        says which of its instances have no closed-form part (they train live and with extra views)."""
        return type(self).prefit is not QualityModel.prefit

    def loss_parts(self) -> list[QualityModel]:
        """The models whose scores the training objective is taken over, each on its own and summed: ``[self]``;
        an ensemble returns its members, so each learns from its own scores as it would alone."""
        return [self]

    def forward(self, pixel_values: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Scores for a batch: ``{dimension: (B,) tensor}``."""
        return self.forward_head(self.forward_features(pixel_values, prompts))

    @property
    def name(self) -> str:
        """Name of the card the model was built from, else its class name."""
        return self.card.name if self.card is not None else type(self).__name__
