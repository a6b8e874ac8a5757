"""Small pieces the method heads share: regressors, expected level over level prompts, token helpers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MLPHead(nn.Module):
    """Regressor ``in_dim -> out_dim``: one linear layer, or ``Linear-GELU-Dropout-Linear`` with ``hidden``.

    Args:
        in_dim: Input width.
        out_dim: Output width.
        hidden: Hidden width; None (or 0) for a single linear layer.
        dropout: Dropout before each linear layer (inactive in ``eval()``).
    """

    def __init__(self, in_dim: int, out_dim: int = 1, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
            in_dim = hidden
        layers.append(nn.Linear(in_dim, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_dim) -> (..., out_dim)``."""
        return self.net(x)


class PerDimensionHeads(nn.Module):
    """One ``MLPHead`` per score dimension (MINT-IQA's "one regressor per perspective").

    Args:
        in_dim: Input width of every regressor.
        dimensions: Names of the outputs.
        hidden: Hidden width of each regressor (None: linear).
        dropout: Dropout of each regressor.
    """

    def __init__(self, in_dim: int, dimensions: Sequence[str], hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: MLPHead(in_dim, 1, hidden, dropout) for name in dimensions})

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``(B, in_dim)`` (or ``{dimension: (B, in_dim)}``) -> ``{dimension: (B,)}``."""
        if isinstance(x, dict):
            return {name: head(x[name]).squeeze(-1) for name, head in self.heads.items()}
        return {name: head(x).squeeze(-1) for name, head in self.heads.items()}


def expected_level(logits: torch.Tensor) -> torch.Tensor:
    """TSP-MGS eq. 3 + 5: softmax over ``L`` quality levels, then ``L / (L - 1) * (sum_j j p_j - 1)``.

    Args:
        logits: ``(..., L)`` similarities to the level prompts, worst level first.

    Returns:
        ``(...)`` scores in ``[0, L]`` (0 when all mass is on the worst level, ``L`` on the best).
    """
    levels = logits.shape[-1]
    if levels < 2:
        raise ValueError(f"expected_level needs at least 2 levels, got logits of shape {tuple(logits.shape)}")
    grades = torch.arange(1, levels + 1, dtype=logits.dtype, device=logits.device)
    expectation = (logits.softmax(dim=-1) * grades).sum(dim=-1)
    return levels / (levels - 1) * (expectation - 1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last dimension (broadcasting), eq. 2 of TSP-MGS / eq. 10 of PrefIQA."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-6)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over dim 1 of ``(B, L, D)`` tokens, counting only positions where ``mask`` is True."""
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def pad_tokens(tokens: torch.Tensor, mask: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (with zeros, mask False) or cut ``(B, L, D)`` tokens to exactly ``length`` positions.

    Text towers pad to the longest text of a batch; a fixed length, with masked positions zeroed, makes a
    prompt's features the same alone or in any batch, so they can be cached one prompt at a time.

    Returns:
        ``(B, length, D)`` tokens and their ``(B, length)`` bool mask.
    """
    batch, current, _ = tokens.shape
    if mask is None:
        mask = torch.ones(batch, current, dtype=torch.bool, device=tokens.device)
    mask = mask.bool()
    tokens = tokens * mask.unsqueeze(-1).to(tokens.dtype)
    if current >= length:
        return tokens[:, :length], mask[:, :length]
    pad = length - current
    tokens = F.pad(tokens, (0, 0, 0, pad))
    mask = F.pad(mask, (0, pad), value=False)
    return tokens, mask


def zero_linear(in_dim: int, out_dim: int, bias: bool = True) -> nn.Linear:
    """A linear layer initialised to output zeros, for residual branches that must start as the identity."""
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    nn.init.zeros_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer
