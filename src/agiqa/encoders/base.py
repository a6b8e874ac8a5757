"""The one interface every vision-language backbone implements.

A dual encoder has an image tower and a text tower. Each gives token-level features (the methods need
them: PrefIQA fuses tokens, TSP-MGS compares words and patches, MINT-IQA feeds tokens to a Q-Former)
and a pooled embedding projected into a joint space where image and text embeddings are comparable
by cosine similarity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn


@dataclass
class EncoderOutput:
    """Features of one tower for a batch.

    Attributes:
        tokens: ``(B, L, D_tok)`` token features (patch tokens for images, word tokens for text).
        pooled: ``(B, D_embed)`` embedding in the joint image-text space (not normalised).
        mask: ``(B, L)`` bool, True where a token is real (text padding is False); None when all are real.
        summary: ``(B, D_summary)`` the features ``pooled`` is projected from (``pooled == encoder.project(summary,
            tower)``), for heads that train the projection over cached features; None when the encoder has none.
        concepts: ``(B, C)`` probabilities of the image over the encoder's concept vocabulary (``concept_text``),
            e.g. the ImageNet classes of the lite encoder's classifier; None when the encoder has none.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor
    mask: torch.Tensor | None = None
    summary: torch.Tensor | None = None
    concepts: torch.Tensor | None = None


class DualEncoder(nn.Module, ABC):
    """Image tower + text tower with their own preprocessing and tokenizer.

    Attributes:
        name: Spec string the encoder was built from (``lite``, ``clip:openai/clip-vit-base-patch32`` ...).
        embed_dim: Size of the joint space of ``pooled``.
        image_token_dim: Size of image ``tokens``.
        text_token_dim: Size of text ``tokens``.
        image_size: Side of the square input ``preprocess`` produces.
        max_text_tokens: Longest text the text tower takes; longer text is truncated (see ``encode_text``).
        image_grid: ``(h, w)`` of the image token grid (``h * w`` image tokens, row-major), so heads can
            reshape tokens into a map; None when image tokens do not form a grid.
    """

    name: str
    embed_dim: int
    image_token_dim: int
    text_token_dim: int
    image_size: int
    max_text_tokens: int
    image_grid: tuple[int, int] | None = None

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Turn a decoded RGB image into a normalised ``(3, image_size, image_size)`` float tensor."""

    @abstractmethod
    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """Encode a ``(B, 3, H, W)`` batch made by ``preprocess``."""

    @abstractmethod
    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """Tokenize and encode texts; text longer than ``max_text_tokens`` tokens is truncated."""

    def text_token_counts(self, texts: Sequence[str]) -> list[int] | None:
        """Tokens of each text before truncation (to compare with ``max_text_tokens``); None when not countable."""
        return None

    @abstractmethod
    def freeze(self, fraction: float, tower: str = "both") -> None:
        """Freeze the first ``fraction`` (0..1) of the layers of ``tower`` (``image``, ``text`` or ``both``).

        ``fraction=1`` freezes the tower entirely; projections into the joint space stay trainable.
        """

    def project_tokens(self, tokens: torch.Tensor, tower: str) -> torch.Tensor:
        """Map ``tokens`` of ``tower`` (``image`` or ``text``) into the joint space of ``pooled``, per token.

        Lets methods compare words with patches (TSP-MGS's fine-grained similarity) by cosine.
        """
        raise NotImplementedError(f"{type(self).__name__} does not project tokens into the joint space")

    def project(self, summary: torch.Tensor, tower: str) -> torch.Tensor:
        """Map an ``EncoderOutput.summary`` of ``tower`` (``image`` or ``text``) to its ``pooled`` embedding."""
        raise NotImplementedError(f"{type(self).__name__} gives no summary features to project")

    def concept_text(self) -> torch.Tensor:
        """``(C, D_summary)`` unit text summaries of the concept names behind ``EncoderOutput.concepts``.

        Lets a head map words into the concept vocabulary the image tower predicts (word-to-concept matching).
        """
        raise NotImplementedError(f"{type(self).__name__} has no concept vocabulary")

    def projection_modules(self) -> list[nn.Module]:
        """The modules ``project`` applies (they stay trainable when a head projects cached summaries)."""
        return []

    @property
    def fingerprint(self) -> str:
        """Identifies weights + preprocessing, for keying caches of encoder outputs."""
        return self.name
