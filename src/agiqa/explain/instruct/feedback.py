"""MINT-IQA's feedback stage (001, sec. IV-C-3, Fig. 10, Table XIII "+ Reward").

The instruction-aware representation of the branch, asked the dimension's own instruction ("How is the quality of
the image?" for the quality regressor), is concatenated with the scoring branch's quality-aware representation
(the mean of its queries), and each dimension's regressor is fine-tuned on that input with the L1 loss (eq. 4).

Choice where the paper is vague: each feedback regressor starts as a copy of the stage-1 regressor of its dimension,
with zero weights on the new (instruction-aware) inputs, so before fine-tuning it predicts exactly the stage-1
score and fine-tuning can only start from there. Dimensions without an instruction (``level_question``) are
skipped with an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agiqa.explain.instruct.branch import InstructionBranch
from agiqa.explain.instruct.qa import level_question
from agiqa.explain.instruct.tuning import BranchInputs
from agiqa.models.layers.heads import PerDimensionHeads


class FeedbackRegressors(nn.Module):
    """One regressor per dimension over ``[quality-aware ; instruction-aware]`` representations.

    Args:
        stage1: The scoring branch's regressors (``PerDimensionHeads``), copied as the starting point.
        instruction_dim: Width of the instruction-aware representation.
        dimensions: Dimensions to fine-tune (each must be in ``stage1``).
    """

    def __init__(self, stage1: PerDimensionHeads, instruction_dim: int, dimensions: Sequence[str]) -> None:
        super().__init__()
        missing = [d for d in dimensions if d not in stage1.heads]
        if missing:
            raise ValueError(f"FeedbackRegressors: the scoring branch has no regressor for {missing}")
        self.heads = nn.ModuleDict()
        for dim in dimensions:
            head = _widened(stage1.heads[dim].net, instruction_dim)
            self.heads[dim] = head

    def forward(self, quality_repr: torch.Tensor, instruction_repr: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``(B, D_q)`` and ``{dimension: (B, D_i)}`` -> ``{dimension: (B,)}``."""
        return {d: h(torch.cat([quality_repr, instruction_repr[d]], dim=-1)).squeeze(-1) for d, h in self.heads.items()}


def _widened(net: nn.Sequential, extra: int) -> nn.Sequential:
    """A copy of a regressor whose first linear layer takes ``extra`` more inputs, with zero weights on them."""
    layers = []
    first = True
    for layer in net:
        if first and isinstance(layer, nn.Linear):
            wide = nn.Linear(layer.in_features + extra, layer.out_features)
            with torch.no_grad():
                wide.weight.zero_()
                wide.weight[:, : layer.in_features] = layer.weight
                wide.bias.copy_(layer.bias)
            layers.append(wide)
            first = False
        else:
            layers.append(_copy(layer))
    return nn.Sequential(*layers)


def _copy(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer)


@torch.no_grad()
def feedback_inputs(
    branch: InstructionBranch,
    inputs: BranchInputs,
    image_ids: Sequence[str],
    dimensions: Sequence[str],
    batch_size: int = 64,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Quality-aware (mean of scoring queries) and per-dimension instruction-aware (mean of branch queries) inputs."""
    branch.eval()
    quality, instruction = [], {d: [] for d in dimensions}
    for start in range(0, len(image_ids), batch_size):
        chunk = list(image_ids[start : start + batch_size])
        image_tokens, queries = inputs.batch(chunk)
        if queries is None:
            raise ValueError("feedback_inputs: the cached inputs have no scoring queries")
        quality.append(queries.mean(dim=1))
        for d in dimensions:
            out = branch.instruction_queries(image_tokens, queries, [level_question(d)] * len(chunk))
            instruction[d].append(out.mean(dim=1))
    return torch.cat(quality), {d: torch.cat(v) for d, v in instruction.items()}


def fit_feedback(
    model: FeedbackRegressors,
    quality_repr: torch.Tensor,
    instruction_repr: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-4,
    seed: int = 0,
) -> list[float]:
    """Fine-tune the regressors with the L1 loss (eq. 4) on cached inputs; returns the mean loss per epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    n, losses = quality_repr.shape[0], []
    model.train()
    for _ in range(epochs):
        order, total = torch.randperm(n, generator=gen), 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            pred = model(quality_repr[idx], {d: v[idx] for d, v in instruction_repr.items()})
            loss = sum((pred[d] - targets[d][idx]).abs().mean() for d in pred) / len(pred)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    model.eval()
    return losses
