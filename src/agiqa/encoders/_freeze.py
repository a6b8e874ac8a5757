"""Freezing a fraction of layers, written once for every backend.

Each backend lists its towers as *layer groups*: one group per transformer layer / EfficientNet block, in
input order, with the embedding (stem) folded into the first group and the final norm (head conv) into
the last.
``freeze(fraction)`` freezes the first ``floor(fraction * n_groups)`` groups of a tower and makes the rest
trainable, so MINT-IQA's "fix rate", PrefIQA's 50% and Stable Preference's "train the last N layers"
(``fraction = 1 - N / n_groups``) are one call. Projections into the joint space are never frozen.
Frozen groups stay in eval mode when the encoder is put in training mode, so their BatchNorm statistics and
dropout do not change and their outputs can be cached.
"""

from __future__ import annotations

import math
from abc import abstractmethod

from torch import nn

from agiqa.encoders.base import DualEncoder

TOWERS = ("image", "text")


def parse_tower(tower: str) -> tuple[str, ...]:
    """``image``, ``text`` or ``both`` -> the towers it names."""
    if tower == "both":
        return TOWERS
    if tower in TOWERS:
        return (tower,)
    raise ValueError(f"tower={tower!r} is not one of 'image', 'text', 'both'")


def freeze_groups(groups: list[list[nn.Module]], fraction: float) -> int:
    """Freeze the first ``floor(fraction * len(groups))`` groups, unfreeze the rest; return how many froze."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must lie in [0, 1] (0 = all trainable, 1 = tower frozen)")
    n_frozen = math.floor(fraction * len(groups) + 1e-9)
    for index, group in enumerate(groups):
        for module in group:
            module.requires_grad_(index >= n_frozen)
    return n_frozen


class LayerGroupEncoder(DualEncoder):
    """A ``DualEncoder`` whose ``freeze`` works on the layer groups it lists in ``layer_groups``."""

    @abstractmethod
    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """The modules of ``tower`` (``image`` or ``text``) grouped by layer, input side first."""

    def freeze(self, fraction: float, tower: str = "both") -> None:
        """Freeze the first ``fraction`` of the layer groups of ``tower`` (see module docstring)."""
        for name in parse_tower(tower):
            freeze_groups(self.layer_groups(name), fraction)
        self.train(self.training)

    def train(self, mode: bool = True) -> LayerGroupEncoder:
        """Set training mode, keeping fully frozen layer groups in eval mode."""
        super().train(mode)
        if mode:
            for name in TOWERS:
                for group in self.layer_groups(name):
                    if not any(p.requires_grad for module in group for p in module.parameters()):
                        for module in group:
                            module.eval()
        return self
