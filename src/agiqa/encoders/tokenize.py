"""Tokenizing for the text towers: truncation is announced, and token counts let callers warn before it happens.

A text is cut to ``text_char_limit(max_tokens)`` characters before it reaches a tokenizer: a text tower keeps at
most ``max_tokens`` tokens anyway, and tokenizing a 1 MB prompt in full takes seconds each time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

CHARS_PER_TOKEN = 32
"""Characters kept per token the text tower takes (a wordpiece or BPE token of English averages about 4)."""


def text_char_limit(max_tokens: int) -> int:
    """Characters of a text that can matter to a tower taking ``max_tokens`` tokens (at least 1024)."""
    return max(1024, CHARS_PER_TOKEN * max_tokens)


def clip_text(text: str, max_tokens: int) -> str:
    """``text`` cut to ``text_char_limit(max_tokens)`` characters (the tokens a tower keeps are all in there)."""
    limit = text_char_limit(max_tokens)
    return text if len(text) <= limit else text[:limit]


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
    texts = [clip_text(t, max_length) for t in texts]
    full = tokenizer(texts, add_special_tokens=True)["input_ids"]
    cut = sum(len(ids) > max_length for ids in full)
    if cut:
        warnings.warn(
            f"{cut} of {len(full)} texts are longer than the text tower's {max_length} tokens; truncated",
            stacklevel=3,
        )
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def token_counts(tokenizer, texts: Sequence[str]) -> list[int]:
    """Number of tokens (special tokens included) of each text before truncation (cut texts with ``clip_text``
    first: counting a huge text in full is what that avoids)."""
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
