"""Zero-shot scores read off a dual encoder's joint space: CLIPScore, CLIP-IQA and TSP-MGS's level prompts.

No trained weights: each compares the pooled image embedding with text embeddings by cosine similarity.
Text work (prompts, anchor and level sentences) happens in ``text_features``, once per unique prompt; the
image work in ``image_features``; the similarity in ``forward_head``. The scores are meaningful only with an
encoder whose joint space was trained (CLIP); over ``lite`` (untrained projections) they are placeholders.

* ``clipscore`` (Hessel et al., 2021): ``weight * max(cos(image, text), 0)`` with ``weight = 2.5`` and the
  text prefixed with "A photo depicts " as in the paper; range [0, 2.5].
* ``clip-iqa`` (Wang et al., 2023): softmax over ``logit_scale * cos`` with the antonym pair
  "Good photo." / "Bad photo."; the quality is the probability of "Good photo.", range [0, 1].
* ``tsp-mgs-zeroshot`` (``002_*``, eq. 3 and 5, image branch only): softmax over the similarities to
  ``L = 5`` level prompts, then ``Q = L / (L - 1) * (sum_j j p_j - 1)``, range [0, 5]. Perception uses
  "A photo of {bad, poor, fair, good, perfect} quality.", alignment "A photo that {badly, ..., perfectly}
  matches {prompt}.". Eq. 3 has no temperature; over raw cosines (within [-1, 1]) the softmax is nearly
  uniform for an untrained model, so the zero-shot form multiplies by CLIP's logit scale (100), like CLIP-IQA.
  The patch branch and the word-level similarity of the full method (``tsp-mgs``) need training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agiqa.encoders.base import DualEncoder
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.heads import cosine, expected_level
from agiqa.models.prompts import ALIGNMENT_DIMENSIONS, ALIGNMENT_LEVELS, PERCEPTION_PROMPTS, alignment_level_prompts
from agiqa.models.registry import register_method

CLIP_LOGIT_SCALE = 100.0


class ZeroShotModel(QualityModel):
    """Base of the zero-shot scores: the image side is the pooled embedding alone."""

    needs_training = False

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled image embedding ``(B, D)``."""
        return {"image_pooled": self.encoder.encode_image(pixel_values).pooled}

    def _anchors(self, texts: Sequence[str], batch: int) -> torch.Tensor:
        """Embeddings of prompt-independent sentences, repeated for each prompt: ``(batch, len(texts), D)``."""
        return self.encoder.encode_text(list(texts)).pooled.unsqueeze(0).expand(batch, -1, -1)


class CLIPScore(ZeroShotModel):
    """CLIPScore: ``weight * max(cos(image, prefix + prompt), 0)`` for every dimension of the card.

    Args:
        encoder: Dual encoder with a trained joint space.
        dimensions: Output dimensions (usually one, ``alignment``).
        weight: Rescaling ``w`` of Hessel et al. (2.5).
        prefix: Text put before the prompt ("A photo depicts " in the paper; "" for the bare prompt).
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        weight: float = 2.5,
        prefix: str = "A photo depicts ",
    ) -> None:
        super().__init__(encoder, dimensions)
        self.weight = weight
        self.prefix = prefix

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pooled embedding of each prefixed prompt."""
        return {"text_pooled": self.encoder.encode_text([self.prefix + p for p in prompts]).pooled}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        score = self.weight * cosine(features["image_pooled"], features["text_pooled"]).clamp_min(0.0)
        return {d.name: score for d in self.dimensions}


class CLIPIQA(ZeroShotModel):
    """CLIP-IQA: probability of the positive prompt of an antonym pair.

    Args:
        encoder: Dual encoder with a trained joint space.
        dimensions: Output dimensions (usually one, ``quality``).
        antonyms: Positive then negative prompt.
        logit_scale: Multiplier of the cosine similarities before the softmax (CLIP's 100).
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        antonyms: Sequence[str] = ("Good photo.", "Bad photo."),
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(encoder, dimensions)
        if len(antonyms) != 2:
            raise ValueError(f"antonyms must be a (positive, negative) pair, got {list(antonyms)}")
        self.antonyms = tuple(antonyms)
        self.logit_scale = logit_scale

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The antonym embeddings ``(B, 2, D)`` (the prompt itself is not used)."""
        return {"antonym_pooled": self._anchors(self.antonyms, len(prompts))}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sims = cosine(features["image_pooled"].unsqueeze(1), features["antonym_pooled"])
        score = (self.logit_scale * sims).softmax(dim=-1)[:, 0]
        return {d.name: score for d in self.dimensions}


class LevelPrompts(ZeroShotModel):
    """Zero-shot TSP-MGS: expected level over ``L`` level prompts (eq. 3 and 5, image branch).

    ``alignment``, ``correspondence`` and ``preference`` dimensions use the alignment prompts (which embed
    the user's prompt); every other dimension the perception prompts.

    Args:
        encoder: Dual encoder with a trained joint space.
        dimensions: Output dimensions.
        perception_form: ``adj`` (5 levels) or ``ant`` (2 levels) perception prompts.
        logit_scale: Multiplier of the cosine similarities before the softmax of eq. 3.
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        perception_form: str = "adj",
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(encoder, dimensions)
        if perception_form not in PERCEPTION_PROMPTS:
            raise ValueError(f"perception_form={perception_form!r}; choose one of {sorted(PERCEPTION_PROMPTS)}")
        self.perception_prompts = PERCEPTION_PROMPTS[perception_form]
        self.logit_scale = logit_scale
        self.kinds = {d.name: "alignment" if d.name in ALIGNMENT_DIMENSIONS else "perception" for d in dimensions}

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Level-prompt embeddings ``(B, L, D)`` for each prompt kind the dimensions use."""
        feats = {}
        if "perception" in self.kinds.values():
            feats["levels_perception"] = self._anchors(self.perception_prompts, len(prompts))
        if "alignment" in self.kinds.values():
            pooled = self.encoder.encode_text(alignment_level_prompts(list(prompts))).pooled
            feats["levels_alignment"] = pooled.view(len(prompts), len(ALIGNMENT_LEVELS), -1)
        return feats

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = features["image_pooled"].unsqueeze(1)
        return {
            name: expected_level(self.logit_scale * cosine(image, features[f"levels_{kind}"]))
            for name, kind in self.kinds.items()
        }


@register_method("clipscore")
def build_clipscore(encoder: DualEncoder, card: ModelCard) -> CLIPScore:
    """Builder for ``method: clipscore`` (method_args: ``weight``, ``prefix``)."""
    return build_from_card(CLIPScore, encoder, card)


@register_method("clip-iqa")
def build_clip_iqa(encoder: DualEncoder, card: ModelCard) -> CLIPIQA:
    """Builder for ``method: clip-iqa`` (method_args: ``antonyms``, ``logit_scale``)."""
    return build_from_card(CLIPIQA, encoder, card)


@register_method("tsp-mgs-zeroshot")
def build_level_prompts(encoder: DualEncoder, card: ModelCard) -> LevelPrompts:
    """Builder for ``method: tsp-mgs-zeroshot`` (method_args: ``perception_form``, ``logit_scale``)."""
    return build_from_card(LevelPrompts, encoder, card)
