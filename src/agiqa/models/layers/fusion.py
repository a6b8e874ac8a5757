"""Cross-attention blocks that mix image and text features."""

from __future__ import annotations

import math

import torch
from torch import nn

from agiqa.models.layers.heads import masked_mean


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, width = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * width)


class BiCrossAttention(nn.Module):
    """PrefIQA's modality-fusion module (000, eq. 5-8): one attention map read both ways.

    With image tokens ``f_i`` and text tokens ``f_t``::

        I^q = f_i W_i^q, I^v = f_i W_i^v, T^q = f_t W_t^q, T^v = f_t W_t^v    (5)
        Attn = I^q (T^q)^T / sqrt(d)                                          (6)
        f_t2i = Softmax(Attn) T^v       (7)  (one row per image token)
        f_i2t = Softmax(Attn^T) I^v     (8)  (one row per text token)

    The output projections ``W^out`` are left to the caller (PrefIQA keeps one per score dimension), so this
    returns both fused sequences in width ``dim``. Several heads split ``dim`` as in multi-head attention.

    Args:
        image_dim: Width of ``f_i``.
        text_dim: Width of ``f_t``.
        dim: Width ``d`` of queries and values.
        num_heads: Heads (must divide ``dim``).
    """

    def __init__(self, image_dim: int, text_dim: int, dim: int, num_heads: int = 1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"BiCrossAttention: dim={dim} must be a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.image_q = nn.Linear(image_dim, dim)
        self.image_v = nn.Linear(image_dim, dim)
        self.text_q = nn.Linear(text_dim, dim)
        self.text_v = nn.Linear(text_dim, dim)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse ``(B, L_i, image_dim)`` image and ``(B, L_t, text_dim)`` text tokens.

        Returns:
            ``f_t2i`` ``(B, L_i, dim)`` (text read by each image token) and ``f_i2t`` ``(B, L_t, dim)``.
        """
        iq, iv = _heads(self.image_q(image), self.num_heads), _heads(self.image_v(image), self.num_heads)
        tq, tv = _heads(self.text_q(text), self.num_heads), _heads(self.text_v(text), self.num_heads)
        attn = iq @ tq.transpose(-1, -2) / math.sqrt(iq.shape[-1])  # (B, H, L_i, L_t)
        neg = torch.finfo(attn.dtype).min
        to_text = attn if text_mask is None else attn.masked_fill(~text_mask[:, None, None, :].bool(), neg)
        to_image = attn if image_mask is None else attn.masked_fill(~image_mask[:, None, :, None].bool(), neg)
        t2i = to_text.softmax(dim=-1) @ tv
        i2t = to_image.transpose(-1, -2).softmax(dim=-1) @ iv
        return _merge(t2i), _merge(i2t)


class CrossAttentionPool(nn.Module):
    """Query vector(s) attending over tokens: ``softmax(q K^T / sqrt(d)) V``, projected to ``out_dim``.

    A mean token is prepended to the keys, as in CLIP's attention pooling (and IP-IQA's text-attention pool).

    Args:
        query_dim: Width of the queries.
        kv_dim: Width of the tokens.
        dim: Attention width.
        num_heads: Heads (must divide ``dim``).
        out_dim: Output width (default ``dim``).
    """

    def __init__(self, query_dim: int, kv_dim: int, dim: int, num_heads: int = 8, out_dim: int | None = None):
        super().__init__()
        self.query = nn.Linear(query_dim, dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, kdim=kv_dim, vdim=kv_dim, batch_first=True)
        self.out = nn.Linear(dim, out_dim or dim)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, Q, query_dim)`` queries over ``(B, L, kv_dim)`` tokens -> ``(B, Q, out_dim)``."""
        keys = torch.cat([masked_mean(tokens, mask).unsqueeze(1), tokens], dim=1)
        padding = None
        if mask is not None:
            padding = ~torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1).bool()
        fused, _ = self.attention(self.query(query), keys, keys, key_padding_mask=padding, need_weights=False)
        return self.out(fused)
