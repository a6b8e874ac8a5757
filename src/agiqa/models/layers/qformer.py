"""Q-Former: learnable queries that read image tokens (cross-attention) next to text tokens (self-attention).

A thin wrapper over transformers' ``Blip2QFormerModel`` (BLIP-2's querying transformer) that adds what a
method needs around it: the learnable query vectors, a projection of the encoder's text tokens into the
Q-Former width, and masks. As in MINT-IQA (001, sec. "Multimodal Representation Learning") the queries
"interact with each other as well as the text tokens through self-attention layers and interact with the image
embeddings through cross-attention layers"; the text tokens do not cross-attend to the image.

Example:
    >>> import torch
    >>> qf = QFormer(image_dim=32, text_dim=24, hidden_size=64, num_layers=1, num_heads=4, num_queries=8)
    >>> qf(torch.randn(2, 10, 32), torch.randn(2, 5, 24)).shape
    torch.Size([2, 8, 64])
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel


class QFormer(nn.Module):
    """Learnable queries + ``Blip2QFormerModel``; returns the query outputs ``(B, num_queries, hidden_size)``.

    Args:
        image_dim: Width of the image tokens (``encoder.image_token_dim``), read by the cross-attention.
        text_dim: Width of the text tokens (``encoder.text_token_dim``), projected to ``hidden_size``;
            None for a Q-Former over image tokens only.
        hidden_size: Width of the queries and of every Q-Former layer.
        num_layers: Transformer layers.
        num_heads: Attention heads (must divide ``hidden_size``).
        num_queries: Number of learnable query vectors.
        intermediate_size: Feed-forward width (default ``4 * hidden_size``).
        cross_attention_frequency: A cross-attention to the image every this many layers (1 = every layer;
            BLIP-2 uses 2).
        dropout: Hidden and attention dropout (inactive in ``eval()``).
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int | None = None,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        num_queries: int = 32,
        intermediate_size: int | None = None,
        cross_attention_frequency: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"QFormer: hidden_size={hidden_size} must be a multiple of num_heads={num_heads}")
        self.config = Blip2QFormerConfig(
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size or 4 * hidden_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            cross_attention_frequency=cross_attention_frequency,
            encoder_hidden_size=image_dim,
            use_qformer_text_input=text_dim is not None,
        )
        self.qformer = Blip2QFormerModel(self.config)
        self.query_tokens = nn.Parameter(torch.randn(1, num_queries, hidden_size) * self.config.initializer_range)
        self.text_proj = nn.Linear(text_dim, hidden_size) if text_dim is not None else None

    @classmethod
    def tiny(cls, image_dim: int, text_dim: int | None = None, **overrides: int | float) -> QFormer:
        """A 2-layer, 256-wide Q-Former with 16 queries, sized for CPU training over the lite encoder."""
        args: dict = dict(hidden_size=256, num_layers=2, num_heads=4, num_queries=16, cross_attention_frequency=1)
        return cls(image_dim, text_dim, **{**args, **overrides})

    @property
    def hidden_size(self) -> int:
        """Width of the returned query outputs."""
        return self.config.hidden_size

    @property
    def num_queries(self) -> int:
        """Number of learnable queries (rows of the output)."""
        return self.query_tokens.shape[1]

    def forward(
        self,
        image_tokens: torch.Tensor,
        text_tokens: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        query_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Query outputs for a batch.

        Args:
            image_tokens: ``(B, L_img, image_dim)`` keys/values of the cross-attention.
            text_tokens: ``(B, L_txt, text_dim)`` tokens sharing the self-attention with the queries, or None.
            image_mask: ``(B, L_img)`` bool, True for real image tokens (None: all real).
            text_mask: ``(B, L_txt)`` bool, True for real text tokens (None: all real).
            query_offset: ``(B, num_queries, hidden_size)`` added to the learnable queries (MINT-IQA's
                instruction branch feeds the scoring branch's queries in this way), or None.

        Returns:
            ``(B, num_queries, hidden_size)``.
        """
        batch = image_tokens.shape[0]
        queries = self.query_tokens.expand(batch, -1, -1)
        if query_offset is not None:
            queries = queries + query_offset.to(queries.dtype)
        hidden, mask = queries, None
        if text_tokens is not None:
            if self.text_proj is None:
                raise ValueError("QFormer was built with text_dim=None; build it with text_dim to pass text tokens")
            hidden = torch.cat([queries, self.text_proj(text_tokens).to(queries.dtype)], dim=1)
            if text_mask is not None:
                query_mask = torch.ones(batch, self.num_queries, dtype=torch.long, device=text_mask.device)
                mask = torch.cat([query_mask, text_mask.long()], dim=1)
        out = self.qformer(
            query_embeds=hidden,
            query_length=self.num_queries,
            attention_mask=mask,
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=_additive_mask(image_mask, queries.dtype) if image_mask is not None else None,
        )
        return out.last_hidden_state[:, : self.num_queries]


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, L)`` keep-mask -> ``(B, 1, 1, L)`` additive bias, passed through transformers' mask helpers as-is.

    (Given a 2-D image mask together with text tokens, transformers 5 sizes the cross-attention mask for the
    queries and the text, not for the queries alone.)
    """
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~mask.bool(), torch.finfo(dtype).min)[:, None, None, :]
