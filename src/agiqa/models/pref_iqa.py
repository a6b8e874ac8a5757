"""PrefIQA (000): prompt segmentation + modality fusion + cosine score.

Feature Extraction Unit
    eq. 1-2  the prompt is cut into exactly ``n`` phrases at commas and periods (``segment_prompt``);
    eq. 3    ``f_t = Concat(Phi_text(p_1), ..., Phi_text(p_n))``: each phrase is encoded on its own and its
             joint-space embedding kept, giving ``(B, n, D)`` (``text_features``: depends on the prompt only);
    eq. 4    ``f_i = Phi_img(I)``: the image tokens (``image_features``).
Feature Fusion Unit
    eq. 5-8  ``BiCrossAttention``: one attention map between image tokens and phrases read both ways;
    eq. 9    ``f'_t = pooling(f_t + f_i2t)``, ``f'_i = pooling(f_i + f_t2i)``;
    eq. 10   ``s = cos(f'_t, f'_i)``, returned as ``logit_scale * s``.
Loss: eq. 11 (``agiqa.losses.preference_kl``) over a pair's softmaxed scores (``default_loss = "kl"``).

Choices where the paper is vague (see docs/methods.md):
* Pooling "the same as CLIP": the text side is the mean over the ``n`` phrases (each phrase is already pooled
  by the text tower); the image side is the encoder's own pooling of ``f_i`` plus a projection of the mean of
  ``f_t2i`` (pooling is applied to each term of the residual sum, which is exact for a linear pooling).
* ``W^out`` maps fused features back to the joint space and is zero-initialised, so the untrained head scores
  exactly the encoder's cosine of the mean phrase embedding with the image embedding.
* Several score dimensions share the fusion attention and each has its own ``W^out`` pair, so e.g. quality and
  alignment can differ; a card with one ``preference`` dimension is the paper's model.
* The score is ``logit_scale * cos`` (default 100, CLIP's logit scale, as PickScore / HPS report it): eq. 11
  applied to raw cosines in [-1, 1] gives softmax probabilities near 1/2 and almost no gradient, and Stable
  Preference's ``b = 0.3`` is set on this scale. ``logit_scale: 1`` is eq. 10 literally.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agiqa.encoders.base import DualEncoder
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.fusion import BiCrossAttention
from agiqa.models.layers.heads import cosine, zero_linear
from agiqa.models.prompts import segment_prompt
from agiqa.models.registry import register_method


class PrefIQA(QualityModel):
    """PrefIQA over any ``DualEncoder`` (see module docstring).

    Attributes:
        default_loss: ``kl``, the pair loss of eq. 11 (the trainer's default for this method).

    Args:
        encoder: The backbone (CLIP-H in the paper).
        dimensions: Output scores.
        n_phrases: ``n`` of eq. 2 (11 in the paper).
        fusion_dim: Width ``d`` of the fusion attention (default: ``encoder.embed_dim``).
        num_heads: Heads of the fusion attention.
        logit_scale: Multiplier of the cosine score, applied here and nowhere else: the pair loss of eq. 11
            softmaxes exactly the scores ``forward_head`` returns.
    """

    default_loss = "kl"

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        n_phrases: int = 11,
        fusion_dim: int | None = None,
        num_heads: int = 1,
        logit_scale: float = 100.0,
    ) -> None:
        super().__init__(encoder, dimensions)
        if n_phrases < 1:
            raise ValueError(f"prefiqa: n_phrases={n_phrases} must be at least 1")
        self.n_phrases = n_phrases
        self.logit_scale = logit_scale
        dim = fusion_dim or encoder.embed_dim
        self.fusion = BiCrossAttention(encoder.image_token_dim, encoder.embed_dim, dim, num_heads)
        names = [d.name for d in self.dimensions]
        self.image_out = nn.ModuleDict({n: zero_linear(dim, encoder.embed_dim) for n in names})
        self.text_out = nn.ModuleDict({n: zero_linear(dim, encoder.embed_dim) for n in names})

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Eq. 1-3: ``{"phrases": (B, n, D)}`` joint-space embeddings of the ``n`` phrases of each prompt."""
        phrases = [p for prompt in prompts for p in segment_prompt(prompt, self.n_phrases)]
        pooled = self.encoder.encode_text(phrases).pooled
        return {"phrases": pooled.view(len(prompts), self.n_phrases, -1)}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 5-10 for every dimension."""
        f_i, f_t = features["image_tokens"], features["phrases"]
        t2i, i2t = self.fusion(f_i, f_t)
        t2i_mean, image_pooled = t2i.mean(dim=1), features["image_pooled"]
        scores = {}
        for name in self.image_out:
            text = (f_t + self.text_out[name](i2t)).mean(dim=1)
            image = image_pooled + self.image_out[name](t2i_mean)
            scores[name] = self.logit_scale * cosine(text, image)
        return scores


@register_method("prefiqa")
def build_prefiqa(encoder: DualEncoder, card: ModelCard) -> PrefIQA:
    """Builder for ``method: prefiqa`` cards (method_args: the keyword arguments of ``PrefIQA``)."""
    return build_from_card(PrefIQA, encoder, card)
