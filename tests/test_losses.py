"""Losses against hand-computed numbers (math module, not torch, gives the expected values)."""

from __future__ import annotations

import math

import pytest
import torch

from agiqa import losses
from agiqa.losses import stable_preference as sp


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_regression_losses_hand_values() -> None:
    pred, target = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
    assert losses.l1_loss(pred, target).item() == pytest.approx(1.5)
    assert losses.mae_loss(pred, target, reduction="sum").item() == pytest.approx(3.0)
    assert losses.mse_loss(pred, target).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="shape"):
        losses.l1_loss(pred, target[:1])


def test_preference_kl_eq11_hand_values() -> None:
    s_a, s_b = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    out = losses.preference_kl(s_a, s_b, torch.tensor([1.0, 0.5]), reduction="none")
    q1 = math.exp(1) / (math.exp(1) + 1)
    assert out[0].item() == pytest.approx(-math.log(q1), abs=1e-6)  # 1 * (log 1 - log q1)
    tie = 0.5 * (math.log(0.5) - math.log(q1)) + 0.5 * (math.log(0.5) - math.log(1 - q1))
    assert out[1].item() == pytest.approx(tie, abs=1e-6)
    scaled = losses.preference_kl(torch.tensor([0.3]), torch.tensor([0.2]), 1.0, scale=10.0)
    assert scaled.item() == pytest.approx(softplus(-1.0), abs=1e-6)


def test_pairwise_cross_entropy_eq5_and_rankings() -> None:
    s_a, s_b = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    out = losses.pairwise_cross_entropy(s_a, s_b, torch.tensor([1.0, 0.0]), reduction="none")
    assert out[0].item() == pytest.approx(softplus(-1.0), abs=1e-6)  # -log sigmoid(1)
    assert out[1].item() == pytest.approx(softplus(1.0), abs=1e-6)
    assert losses.ranking_pairs([2, 1, 3]) == [(1, 0), (0, 2), (1, 2)]
    assert losses.ranking_pairs([1, 1]) == []
    scores = torch.tensor([0.0, 1.0, 2.0])
    expected = (softplus(-1.0) + softplus(-2.0) + softplus(-1.0)) / 3  # pairs (1,0), (2,0), (2,1)
    assert losses.ranking_cross_entropy(scores, [3, 2, 1]).item() == pytest.approx(expected, abs=1e-6)


def test_anti_interference_eq5_6_hand_values() -> None:
    views_a = torch.tensor([[2.0, 1.8, 2.2]])
    views_b = torch.tensor([[1.0, 1.1, 0.7]])
    # a better: inter = 1.8 - 1.1 = 0.7, intra = (0.4 + 0.4) / 2 = 0.4
    expected = -math.log(math.exp(0.7) / (math.exp(0.7) + math.exp(0.4)))
    assert sp.anti_interference_loss(views_a, views_b, 1.0).item() == pytest.approx(expected, abs=1e-6)
    # b better: inter = min(b) - max(a) = 0.7 - 2.2 = -1.5
    expected_b = -math.log(math.exp(-1.5) / (math.exp(-1.5) + math.exp(0.4)))
    assert sp.anti_interference_loss(views_a, views_b, 0.0).item() == pytest.approx(expected_b, abs=1e-5)
    assert sp.score_gap(views_a, views_b, 0.0).item() == pytest.approx(-1.0)
    # a tie takes the order of the original scores
    assert sp.score_gap(views_a, views_b, 0.5).item() == pytest.approx(1.0)


def test_step1_gate_eq7_hand_values() -> None:
    gap = torch.tensor([0.3, 0.3 + 0.2 * math.log(3), -1.0])
    gate = sp.step1_weight(gap, b=0.3, tau=0.2)
    assert gate.tolist() == pytest.approx([0.5, 0.25, 1 / (1 + math.exp(-6.5))], abs=1e-6)


def test_stable_preference_loss_steps() -> None:
    views_a = torch.tensor([[2.0, 1.8, 2.2], [0.0, 0.1, -0.1]], requires_grad=True)
    views_b = torch.tensor([[1.0, 1.1, 0.7], [0.5, 0.5, 0.5]])
    label = torch.tensor([1.0, 1.0])
    per_pair = losses.preference_kl(views_a[:, 0], views_b[:, 0], label, reduction="none")
    l_ai = [softplus(0.4 - 0.7), softplus(0.1 - (-0.1 - 0.5))]  # pair 2: inter = -0.1 - 0.5, intra = 0.1
    total = [per_pair[i].item() + l_ai[i] for i in range(2)]
    gaps = [1.0, -0.5]
    gates = [1 / (1 + math.exp((g - 0.3) / 0.2)) for g in gaps]
    step1 = sp.stable_preference_loss(per_pair, views_a, views_b, label, step=0, switch_step=10)
    assert step1.item() == pytest.approx((gates[0] * total[0] + gates[1] * total[1]) / 2, abs=1e-5)
    weights = [math.exp(g) / sum(math.exp(x) for x in gaps) for g in gaps]
    step2 = sp.stable_preference_loss(per_pair, views_a, views_b, label, step=10, switch_step=10)
    assert step2.item() == pytest.approx(weights[0] * total[0] + weights[1] * total[1], abs=1e-5)
    # the gate is a constant weight: the gradient is gate * d(total)
    step1.backward(retain_graph=True)
    grad_gated = views_a.grad.clone()
    views_a.grad = None
    total_t = per_pair + sp.anti_interference_loss(views_a, views_b, label)
    (torch.tensor(gates) * total_t).mean().backward()
    assert torch.allclose(grad_gated, views_a.grad, atol=1e-6)
