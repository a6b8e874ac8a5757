"""An encoder that shares another's towers but projects into the joint space with projections of its own.

The members of an ensemble (``agiqa.models.ensemble``) read the same frozen towers, computed once, while each
trains the joint-space projections its head applies (``project_in_head``). ``SharedTowers`` holds copies of the
encoder's ``projection_modules()`` (image, then text) as its only parameters; everything else (``encode_image``,
``encode_text``, ``preprocess``, ``concept_text``, ``image_size`` ...) is the shared encoder's. The shared encoder is
not a sub-module, so its weights are not saved or moved twice: the model that owns it does that. An encoder without
such projections (CLIP, whose projections are part of the model) is shared whole.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from agiqa.encoders.base import DualEncoder


class SharedTowers(nn.Module):
    """``encoder`` with copies of its two joint-space projections (see module docstring).

    Args:
        encoder: The encoder whose towers are shared; its ``projection_modules()`` must be ``[image, text]``
            (whose ``project`` applies them) or empty.

    Raises:
        ValueError: The encoder names projections other than one image and one text projection.
    """

    def __init__(self, encoder: DualEncoder) -> None:
        super().__init__()
        modules = encoder.projection_modules()
        if len(modules) not in (0, 2):
            raise ValueError(
                f"{encoder.name}: an ensemble copies an encoder's image and text projection (projection_modules); "
                f"it names {len(modules)}"
            )
        self.__dict__["shared"] = encoder  # not registered: the owner saves and moves the towers
        self.copies = nn.ModuleList(copy.deepcopy(m).requires_grad_(True) for m in modules)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["shared"], name)

    def project(self, summary: torch.Tensor, tower: str) -> torch.Tensor:
        """``summary`` of ``tower`` (``image`` or ``text``) through this copy's projection."""
        if not self.copies:
            return self.__dict__["shared"].project(summary, tower)
        return self.copies[0 if tower == "image" else 1](summary)

    def projection_modules(self) -> list[nn.Module]:
        """This copy's two projections (none when the encoder has none)."""
        return list(self.copies)
