"""IP-IQA (003, ICME 2024 poster): image + integral prompt, a quality token, Image2Prompt pre-training.

The poster names three parts (its Table 3 ablates them) and little else; the authors' code (Coobiw/IP-IQA)
shows the fusion: a CLIP ResNet-50 image feature map, the prompt's CLIP text embedding as the query of an
attention pool over that map ("image-prompt fusion"), the pooled image embedding and the fused vector
concatenated into a linear head with one output per score (quality, alignment). Over any ``DualEncoder``:

* **Integral prompt**: the whole generation prompt, subject + adjectives + style (AGIQA-3K's ``prompt``
  column already holds it, e.g. "cat, using laptop, city, anime style"). ``integral: false`` keeps only the
  subject (the text before the first comma), the ablation's other arm.
* **Quality token** ("/Q4/", a learnable token on the text side): a learnable vector prepended to the text
  tokens of the prompt, read out after one transformer layer over ``[QA; tokens]``; its output is the query
  of the image-prompt fusion. (The paper learns a new token embedding inside the CLIP text tower; a generic
  encoder has no hook for that, so the token lives in the head.) ``qa_token: false`` uses the mean token.
* **Image-prompt fusion**: ``CrossAttentionPool``: the query attends over the image tokens and their mean.
* **Head**: ``[image_pooled, fused]`` -> one linear regressor per dimension (``regressor_hidden``: an MLP).
* **Image2Prompt**: an incremental pre-training task that teaches the image tower to predict the prompt's
  text embedding with a cosine embedding loss (``image2prompt_loss``); it trains the encoder, so it matters
  only when the encoder is not frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agiqa.encoders.base import DualEncoder
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.fusion import CrossAttentionPool
from agiqa.models.layers.heads import PerDimensionHeads, cosine, masked_mean, pad_tokens
from agiqa.models.registry import register_method


def subject_of(prompt: str) -> str:
    """The prompt up to its first comma (the non-integral prompt of the ablation)."""
    return prompt.split(",", 1)[0].strip() or prompt.strip()


class IPIQA(QualityModel):
    """IP-IQA over any ``DualEncoder`` (see module docstring).

    Args:
        encoder: The backbone (CLIP RN50 in the paper).
        dimensions: Output scores.
        integral: Encode the whole prompt (True) or only its subject.
        qa_token: Use the learnable quality token as the fusion query.
        fusion_dim: Width of the fusion attention (default ``encoder.embed_dim``).
        num_heads: Heads of the fusion attention and of the quality-token layer.
        text_length: Text tokens kept per prompt (padding or cutting).
        regressor_hidden: Hidden width of the regressors (None: linear, as in the paper).
        dropout: Dropout of the regressors.
    """

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        integral: bool = True,
        qa_token: bool = True,
        fusion_dim: int | None = None,
        num_heads: int = 4,
        text_length: int = 64,
        regressor_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(encoder, dimensions)
        width = encoder.text_token_dim
        if width % num_heads or (fusion_dim or encoder.embed_dim) % num_heads:
            raise ValueError(
                f"ip-iqa: num_heads={num_heads} must divide text_token_dim={width} and fusion_dim="
                f"{fusion_dim or encoder.embed_dim}"
            )
        self.integral, self.text_length = integral, text_length
        self.qa_embedding = nn.Parameter(torch.randn(width) * 0.02) if qa_token else None
        self.qa_layer = (
            nn.TransformerEncoderLayer(width, num_heads, 2 * width, dropout=0.0, batch_first=True) if qa_token else None
        )
        dim = fusion_dim or encoder.embed_dim
        self.fusion = CrossAttentionPool(width, encoder.image_token_dim, dim, num_heads, out_dim=dim)
        self.regressors = PerDimensionHeads(
            encoder.embed_dim + dim, [d.name for d in self.dimensions], regressor_hidden, dropout
        )

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokens ``(B, text_length, D_txt)`` + mask and the embedding of the (integral) prompt."""
        texts = [p if self.integral else subject_of(p) for p in prompts]
        out = self.encoder.encode_text(texts)
        tokens, mask = pad_tokens(out.tokens, out.mask, self.text_length)
        return {"text_tokens": tokens, "text_mask": mask, "text_pooled": out.pooled}

    def query(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The fusion query ``(B, 1, D_txt)``: the quality token's output, or the mean text token."""
        if self.qa_embedding is None or self.qa_layer is None:
            return masked_mean(tokens, mask).unsqueeze(1)
        qa = self.qa_embedding.expand(tokens.shape[0], 1, -1)
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return self.qa_layer(torch.cat([qa, tokens], dim=1), src_key_padding_mask=~keep)[:, :1]

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Quality-token query -> attention pool over image tokens -> concat with image embedding -> scores."""
        query = self.query(features["text_tokens"], features["text_mask"])
        fused = self.fusion(query, features["image_tokens"]).squeeze(1)
        return self.regressors(torch.cat([features["image_pooled"], fused], dim=-1))

    def image2prompt_loss(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Image2Prompt pre-training: ``1 - cos(image embedding, prompt embedding)``, mean over the batch.

        The prompt embedding is the target (no gradient), as in a cosine embedding loss with target 1.
        """
        return (1 - cosine(features["image_pooled"], features["text_pooled"].detach())).mean()


@register_method("ip-iqa")
def build_ip_iqa(encoder: DualEncoder, card: ModelCard) -> IPIQA:
    """Builder for ``method: ip-iqa`` cards (method_args: the keyword arguments of ``IPIQA``)."""
    return build_from_card(IPIQA, encoder, card)
