"""Training objectives of the methods, as pure functions of scores.

* ``regression``: L1 / MAE (MINT-IQA eq. 4, TSP-MGS eq. 8), MSE.
* ``preference``: PrefIQA's pair KL (eq. 11), MINT-IQA's pairwise cross-entropy (eq. 5) for pairs and
  rankings.
* ``stable_preference``: Stable Preference's anti-interference loss, step-1 gate, step-2 weights.
"""

from agiqa.losses.preference import (
    pairwise_cross_entropy,
    preference_kl,
    ranking_cross_entropy,
    ranking_pairs,
)
from agiqa.losses.regression import l1_loss, mae_loss, mse_loss
from agiqa.losses.stable_preference import anti_interference_loss, stable_preference_loss

__all__ = [
    "anti_interference_loss",
    "l1_loss",
    "mae_loss",
    "mse_loss",
    "pairwise_cross_entropy",
    "preference_kl",
    "ranking_cross_entropy",
    "ranking_pairs",
    "stable_preference_loss",
]
