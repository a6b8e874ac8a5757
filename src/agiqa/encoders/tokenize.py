"""Tokenizing for the text towers: truncation is announced, and token counts let callers warn before it happens."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch


def tokenize(tokenizer, texts: Sequence[str], max_length: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad to the longest text and truncate to ``max_length`` tokens, warning when a text was cut.

    Args:
        tokenizer: A transformers tokenizer.
        texts: The texts of the batch.
        max_length: Longest sequence the text tower takes, special tokens included.
        device: Where the returned tensors go.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got one str; wrap it in a list")
    full = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    cut = sum(len(ids) > max_length for ids in full)
    if cut:
        warnings.warn(
            f"{cut} of {len(full)} texts are longer than the text tower's {max_length} tokens; truncated",
            stacklevel=3,
        )
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def token_counts(tokenizer, texts: Sequence[str]) -> list[int]:
    """Number of tokens (special tokens included) of each text before truncation."""
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
