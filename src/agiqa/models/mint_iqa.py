"""MINT-IQA, scoring branch (001, sec. "Multi-perspective Preference Evaluation").

1. Prompt refinement: "raw prompt + LLM-refined prompt": the prompt followed by its *style*, *content* and
   *atmosphere* (``agiqa.models.prompts.refine_prompt``; ``refiner: llm`` uses SmolLM2, ``rules`` the
   deterministic fallback). Part of ``text_features``, so it runs once per prompt.
2. Feature extraction: image tokens from the image encoder, text tokens of the refined prompt from the text
   encoder (padded/cut to ``text_length`` so per-prompt features stack).
3. Multimodal representation: a Q-Former whose learnable queries share self-attention with the text tokens and
   cross-attend to the image tokens (``QFormer``, transformers' ``Blip2QFormerModel``).
4. Score regression: one regressor per dimension ("the number of the regressors can be increased or
   decreased according to the number of evaluation dimensions"), all with the same structure.
Training: L1 for MOS (eq. 4), pairwise cross-entropy for pairs and rankings (eq. 5) in ``agiqa.losses``;
joint training = one model with every dimension, single = one card per dimension. ``fix_rate`` freezes that
fraction of the image encoder's layers (0.7 best in Table XII); ``lora`` adds peft LoRA adapters (r = 16).

Choices where the paper is vague (see docs/methods.md): the Q-Former output is the mean of the query outputs
(as BLIP-2's image-text matching head averages over queries); each regressor is ``Linear-GELU-Linear`` with
``regressor_hidden`` units; the Q-Former size is a card argument (BLIP-2's 12 layers x 768 with 32 queries in
the clip cards, ``QFormer.tiny`` for the lite cards).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from agiqa.encoders.base import DualEncoder
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.heads import PerDimensionHeads, pad_tokens
from agiqa.models.layers.lora import apply_lora
from agiqa.models.layers.qformer import QFormer
from agiqa.models.prompts import refine_prompt
from agiqa.models.registry import register_method


class MINTIQA(QualityModel):
    """MINT-IQA's scoring branch over any ``DualEncoder`` (see module docstring).

    Args:
        encoder: The backbone (EVA-CLIP ViT-G/14 image + BLIP text encoder in the paper).
        dimensions: Output scores, one regressor each.
        refiner: ``rules`` or ``llm`` prompt refinement; ``none`` encodes the raw prompt (the ablation).
        qformer: Keyword arguments of ``QFormer`` (default ``QFormer.tiny``'s).
        text_length: Text tokens kept per prompt (padding or cutting).
        regressor_hidden: Hidden width of each regressor (None: linear).
        dropout: Dropout of the regressors.
        fix_rate: Fraction of image-encoder layers frozen at build time (None: leave the encoder as given).
        lora: ``apply_lora`` arguments (``r``, ``alpha``, ``target_modules``) to add LoRA to the encoder.
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        refiner: str = "rules",
        qformer: Mapping[str, Any] | None = None,
        text_length: int = 64,
        regressor_hidden: int | None = 256,
        dropout: float = 0.1,
        fix_rate: float | None = None,
        lora: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encoder, dimensions)
        if refiner not in ("rules", "llm", "none"):
            raise ValueError(f"mint-iqa: refiner={refiner!r}; use 'rules', 'llm' or 'none'")
        self.refiner, self.text_length = refiner, text_length
        if qformer is None:
            self.qformer = QFormer.tiny(encoder.image_token_dim, encoder.text_token_dim)
        else:
            self.qformer = QFormer(encoder.image_token_dim, encoder.text_token_dim, **qformer)
        self.regressors = PerDimensionHeads(
            self.qformer.hidden_size, [d.name for d in self.dimensions], regressor_hidden, dropout
        )
        if fix_rate is not None:
            encoder.freeze(fix_rate, tower="image")
        if lora is not None:
            apply_lora(encoder, **lora)

    def refine(self, prompt: str) -> str:
        """The text this model encodes for ``prompt``."""
        return prompt if self.refiner == "none" else refine_prompt(prompt, self.refiner)

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"image_tokens": (B, L, D_img)}``."""
        return {"image_tokens": self.encoder.encode_image(pixel_values).tokens}

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokens of the refined prompts, ``(B, text_length, D_txt)``, and their mask."""
        out = self.encoder.encode_text([self.refine(p) for p in prompts])
        tokens, mask = pad_tokens(out.tokens, out.mask, self.text_length)
        return {"text_tokens": tokens, "text_mask": mask}

    def queries(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, Q, D_q)`` Q-Former queries over image and text tokens (the explanation branch reads them too)."""
        return self.qformer(features["image_tokens"], features["text_tokens"], text_mask=features["text_mask"])

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Q-Former queries, their mean, one regressor per dimension."""
        return self.regressors(self.queries(features).mean(dim=1))


@register_method("mint-iqa")
def build_mint_iqa(encoder: DualEncoder, card: ModelCard) -> MINTIQA:
    """Builder for ``method: mint-iqa`` cards (method_args: the keyword arguments of ``MINTIQA``)."""
    return build_from_card(MINTIQA, encoder, card)
