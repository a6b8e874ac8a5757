"""What a run optimises: the loss, the items it is taken over, and the loss of a batch of them.

* ``l1``/``mae``/``mse`` regress the MOS of every trained dimension (missing labels masked).
* ``kl`` (PrefIQA eq. 11) and ``pairwise_ce`` (MINT-IQA eq. 4-5) train on same-prompt pairs: the dataset's own
  pairs (rankings come expanded by the readers) and, for MOS data, every same-prompt pair per dimension.
* **Stable Preference** (paper 004) wraps any pair objective: the anti-interference loss over ``k`` weak views,
  step 1 (gated by ``1 / (1 + exp((dS - b) / tau))``) until ``switch_step``, then step 2 (softmax of ``dS``).
* **Mismatched prompts** (``agiqa.train.mismatch``) add, to any objective, a loss on the same images under other
  training prompts for the dimensions that should read the prompt.

Pair losses take the softmax over exactly the scores ``forward_head`` returns (the ``QualityModel`` contract:
a method's temperature, such as PrefIQA's ``logit_scale``, is already in them). Per-pair losses stay unreduced
until here, so Stable Preference can weight them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agiqa.data.sample import Dataset
from agiqa.models.base import QualityModel
from agiqa.train.config import StablePreferenceConfig, TrainConfig
from agiqa.train.features import FeatureBank
from agiqa.train.mismatch import Mismatch, mismatch_dimensions
from agiqa.train.selection import Pairs, training_pairs
from agiqa.train.table import ImageTable

REGRESSION = ("l1", "mae", "mse")


@dataclass
class Objective:
    """The loss of a run and the items it is taken over.

    Attributes:
        loss: ``l1``, ``mae``, ``mse``, ``kl`` or ``pairwise_ce``.
        dims: Trained dimensions.
        items: Same-prompt pairs (pair losses, Stable Preference), or the table rows with a MOS label.
        targets: ``(N, len(dims))`` MOS of every table row for regression, NaN where missing (empty for pairs).
        val_pairs: Pairs among the validation rows (pair losses only), for the validation accuracy.
        stable_preference: Stable Preference options.
        mismatch: The mismatched-prompt loss, when enabled.
    """

    loss: str
    dims: list[str]
    items: Pairs | list[int]
    targets: torch.Tensor
    val_pairs: Pairs | None
    stable_preference: StablePreferenceConfig
    mismatch: Mismatch | None = None

    def __len__(self) -> int:
        return len(self.items)

    def batch_loss(
        self,
        model: QualityModel,
        bank: FeatureBank,
        idx: torch.Tensor,
        step: int,
        device: str | torch.device,
        part: int | None = None,
    ) -> torch.Tensor:
        """Loss of the items ``idx`` at optimiser step ``step`` (labels sent to ``device``, where the model is);
        for a model of several parts (``QualityModel.loss_parts``), the sum of each part's loss on its own scores.
        ``part`` says which part ``model`` is (it picks the part's own mismatch margin)."""
        parts = model.loss_parts()
        if len(parts) > 1:
            losses = [self.batch_loss(p, bank, idx, step, device, part=i) for i, p in enumerate(parts)]
            return torch.stack(losses).sum()
        if isinstance(self.items, Pairs):
            return self._pair_loss(model, bank, self.items, idx, step, device, part)
        rows = torch.as_tensor([self.items[i] for i in idx.tolist()], dtype=torch.long)
        out = model.forward_head(bank.batch(rows))
        loss = regression_loss(out, self.targets[rows].to(device), self.dims, self.loss)
        if self.mismatch is not None:
            loss = loss + self.mismatch.loss(model, rows, out, step, None, part)
        return loss

    def _pair_loss(
        self,
        model: QualityModel,
        bank: FeatureBank,
        pairs: Pairs,
        idx: torch.Tensor,
        step: int,
        device: str | torch.device,
        part: int | None,
    ) -> torch.Tensor:
        a = torch.as_tensor(pairs.a[idx.numpy()], dtype=torch.long)
        b = torch.as_tensor(pairs.b[idx.numpy()], dtype=torch.long)
        label = torch.as_tensor(pairs.label[idx.numpy()], dtype=torch.float32, device=device)
        index = {d: i for i, d in enumerate(self.dims)}
        which = torch.as_tensor([index[pairs.dim[i]] for i in idx.tolist()], dtype=torch.long)

        rows = torch.cat([a, b])

        def scores(view: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
            out = model.forward_head(bank.batch(rows, view))
            s = torch.stack([out[d] for d in self.dims])  # (D, 2B)
            picked = s.gather(0, torch.cat([which, which]).to(s.device).unsqueeze(0)).squeeze(0)
            return picked[: len(a)], picked[len(a) :], out

        s_a, s_b, out = scores(0)
        per_pair = pair_loss(s_a, s_b, label, self.loss)
        sp = self.stable_preference
        if sp.enabled:
            views = [scores(v)[:2] for v in range(1, sp.views + 1)]
            loss = stable_preference_loss(per_pair, s_a, s_b, label, views, step, sp)
        else:
            loss = per_pair.mean()
        if self.mismatch is not None:
            loss = loss + self.mismatch.loss(model, rows, out, step, self.loss, part)
        return loss


def make_objective(
    config: TrainConfig,
    model: QualityModel,
    dataset: Dataset,
    table: ImageTable,
    train_rows: Sequence[int],
    val_rows: Sequence[int],
    bank: FeatureBank,
) -> Objective:
    """The objective of a run: the configured loss (else the method's ``default_loss``) over its items.

    Raises:
        ValueError: The loss does not fit the data (no MOS for a regression, a regression with Stable
            Preference) or nothing is left to train on; the message names the config.
    """
    t = config.train
    dims = trained_dimensions(config, model, table, bool(dataset.pairs))
    loss = t.loss or model.default_loss
    sp = t.stable_preference
    if loss not in REGRESSION or sp.enabled:
        if loss in REGRESSION:
            raise ValueError(f"{config.source}: stable_preference needs a pair loss (kl or pairwise_ce), not {loss}")
        items: Pairs | list[int] = training_pairs(config, dataset, table, train_rows, dims)
        val_pairs = training_pairs(config, dataset, table, val_rows, dims) if val_rows else None
        targets = torch.empty(0)
    else:
        if not all(d in table.labels for d in dims):
            raise ValueError(f"{config.source}: loss {loss!r} needs MOS labels for {dims}; use kl/pairwise_ce")
        labelled = np.stack([table.labels[d] for d in dims], axis=1)
        items = [r for r in train_rows if np.isfinite(labelled[r]).any()]
        targets, val_pairs = torch.tensor(labelled, dtype=torch.float32), None
    if not items:
        what = "samples" if isinstance(items, list) else "pairs"
        raise ValueError(f"{config.source}: no training {what} in the training data")
    mismatch = None
    if t.mismatch.enabled:
        parts = len(model.loss_parts())
        if t.mismatch.part_margins is not None and len(t.mismatch.part_margins) != parts:
            raise ValueError(
                f"{config.source}: train.mismatch.part_margins has {len(t.mismatch.part_margins)} margins for a "
                f"model trained in {parts} part(s); give one per ensemble member, in order, or leave it out"
            )
        which = mismatch_dimensions(t.mismatch, dims, config.source)
        mismatch = Mismatch(t.mismatch, bank, train_rows, which, t.seed)
    return Objective(loss, dims, items, targets, val_pairs, sp, mismatch)


def trained_dimensions(config: TrainConfig, model: QualityModel, table: ImageTable, has_pairs: bool) -> list[str]:
    """Dimensions to train: configured, else those the model outputs and the data labels."""
    model_dims = [d.name for d in model.dimensions]
    if config.data.dimensions:
        unknown = [d for d in config.data.dimensions if d not in model_dims]
        if unknown:
            raise ValueError(f"{config.source}: data.dimensions {unknown} are not outputs of the model {model_dims}")
        return list(config.data.dimensions)
    dims = [d for d in model_dims if d in table.labels]
    if not dims and has_pairs:
        dims = model_dims[:1]
    if not dims:
        raise ValueError(
            f"{config.source}: the model outputs {model_dims} but the data labels {sorted(table.labels)}; "
            "set data.dimensions or give the model matching dimensions"
        )
    return dims


def regression_loss(
    out: dict[str, torch.Tensor], targets: torch.Tensor, dims: Sequence[str], name: str
) -> torch.Tensor:
    """Mean L1 (``l1``/``mae``) or squared error (``mse``) over the labelled (finite) entries of every dimension.

    Args:
        out: Model scores ``{dimension: (B,)}``.
        targets: ``(B, len(dims))`` MOS, NaN where a label is missing.
        dims: Trained dimensions, in the column order of ``targets``.
        name: ``l1``, ``mae`` or ``mse``.
    """
    from agiqa import losses

    fn = losses.mse_loss if name == "mse" else losses.l1_loss
    terms = []
    for j, dim in enumerate(dims):
        mask = torch.isfinite(targets[:, j])
        if mask.any():
            terms.append(fn(out[dim][mask], targets[mask, j]))
    if not terms:
        return next(iter(out.values())).sum() * 0.0
    return torch.stack(terms).sum()


def pair_loss(s_a: torch.Tensor, s_b: torch.Tensor, label: torch.Tensor, name: str) -> torch.Tensor:
    """Unreduced loss of each pair of scores, as the model gave them.

    ``pairwise_ce`` (MINT-IQA eq. 4-5): cross-entropy of ``softmax(s_a, s_b)`` against the label, i.e.
    ``-log sigmoid(s_better - s_worse)`` for a hard label. ``kl`` (PrefIQA eq. 11): KL divergence between the
    label distribution ``(p, 1 - p)`` and ``softmax(s_a, s_b)``. The two differ by the label entropy (a constant
    for hard labels), so they give the same gradients; both are kept to name the paper's objective.
    """
    from agiqa import losses

    if name == "kl":
        return losses.preference_kl(s_a, s_b, label, reduction="none")
    if name == "pairwise_ce":
        return losses.pairwise_cross_entropy(s_a, s_b, label, reduction="none")
    raise ValueError(f"train.loss={name!r} is not a pair loss; use 'kl' or 'pairwise_ce'")


def stable_preference_loss(
    per_pair: torch.Tensor,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    label: torch.Tensor,
    views: Sequence[tuple[torch.Tensor, torch.Tensor]],
    step: int,
    options: StablePreferenceConfig,
) -> torch.Tensor:
    """Stable Preference (paper 004): preference + anti-interference loss, weighted by step 1 or step 2.

    Args:
        per_pair: Unreduced preference loss of each pair.
        s_a: Scores of the first images on the original view.
        s_b: Scores of the second images.
        label: Probability that ``a`` is preferred; ties (0.5) take the order of the scores.
        views: ``(s_a, s_b)`` on each weak view.
        step: Optimiser steps taken so far; step 2 starts at ``options.switch_step``.
        options: ``StablePreferenceConfig``.
    """
    from agiqa.losses import stable_preference as sp

    views_a = torch.stack([s_a, *[v[0] for v in views]], dim=1)
    views_b = torch.stack([s_b, *[v[1] for v in views]], dim=1)
    return sp.stable_preference_loss(
        per_pair, views_a, views_b, label, step=step, switch_step=options.switch_step, b=options.b, tau=options.tau
    )
