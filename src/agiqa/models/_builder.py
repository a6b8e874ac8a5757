"""Turning a card's ``method_args`` into constructor keywords, with errors that name the card."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from agiqa.encoders.base import DualEncoder
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard

M = TypeVar("M", bound=QualityModel)


def build_from_card(cls: type[M], encoder: DualEncoder, card: ModelCard) -> M:
    """``cls(encoder, card.dimensions, **card.method_args)``; unknown argument names are a ``ValueError``."""
    params = inspect.signature(cls.__init__).parameters
    allowed = [name for name in params if name not in ("self", "encoder", "dimensions")]
    unknown = sorted(set(card.method_args) - set(allowed))
    if unknown:
        where = card.source or card.name
        raise ValueError(
            f"{where}: method_args {unknown} are not arguments of method {card.method!r}; allowed: {allowed}"
        )
    args: dict[str, Any] = dict(card.method_args)
    return cls(encoder, card.dimensions, **args)
