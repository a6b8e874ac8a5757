"""Metrics against scipy (independent reference) through one shared tester, hand-worked cases, degenerate input."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from agiqa.eval import logistic as L
from agiqa.eval import metrics as M
from agiqa.eval.bootstrap import bootstrap_ci
from agiqa.eval.logistic import fit_logistic

RNG = np.random.default_rng(1234)
N = 97
PREDS = RNG.normal(size=N)
TARGET = 2.0 * np.tanh(PREDS) + RNG.normal(scale=0.4, size=N)
GROUPS = np.array([f"p{i % 13}" for i in range(N)])
CHUNKINGS = [[N], [1, N - 1], [40, 40, N - 80], [7] * (N // 7) + [N % 7]]


def _chunks(sizes: list[int], *arrays: np.ndarray) -> list[list[np.ndarray]]:
    edges = np.cumsum([0, *sizes])
    return [[a[lo:hi] for a in arrays] for lo, hi in itertools.pairwise(edges)]


def run_metric_test(
    functional: Callable[..., float],
    metric_cls: Callable[[], M.Metric],
    reference: Callable[..., float],
    inputs: tuple[np.ndarray, ...],
    atol: float = 1e-10,
) -> None:
    """The shared tester: functional == reference for every input type; stateful == functional for every chunking."""
    expected = reference(*inputs)
    numeric = [i for i in inputs if i.dtype.kind == "f"]
    others = inputs[len(numeric) :]
    for convert in (np.asarray, list, torch.as_tensor):
        got = functional(*[convert(x) for x in numeric], *others)
        assert isinstance(got, M.MetricValue)
        assert float(got) == pytest.approx(expected, abs=atol), convert
    for sizes in CHUNKINGS:
        metric = metric_cls()
        for batch in _chunks(sizes, *inputs):
            metric.update(*batch)
        assert float(metric.compute()) == pytest.approx(float(functional(*inputs)), abs=1e-12), sizes
    metric.reset()
    with pytest.warns(M.MetricWarning):
        assert math.isnan(metric.compute())


def _ref_pairwise(preds: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    """Brute-force loop over all pairs, written independently of the implementation."""
    credit = []
    for i, j in itertools.combinations(range(len(preds)), 2):
        if groups[i] != groups[j] or target[i] == target[j]:
            continue
        if preds[i] == preds[j]:
            credit.append(0.5)
        else:
            credit.append(float((preds[i] > preds[j]) == (target[i] > target[j])))
    return float(np.mean(credit))


def _ref_rmse_raw(preds: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((preds - target) ** 2)))


@pytest.mark.parametrize(
    ("functional", "metric_cls", "reference"),
    [
        (M.srcc, M.SRCC, lambda p, t: stats.spearmanr(p, t).statistic),
        (M.krcc, M.KRCC, lambda p, t: stats.kendalltau(p, t).statistic),
        (M.plcc, M.PLCC, lambda p, t: stats.pearsonr(p, t).statistic),
        (partial(M.rmse, mapping=None), partial(M.RMSE, mapping=None), _ref_rmse_raw),
    ],
    ids=["srcc", "krcc", "plcc", "rmse-raw"],
)
def test_correlations_match_scipy(functional, metric_cls, reference) -> None:
    run_metric_test(functional, metric_cls, reference, (PREDS, TARGET))


def test_rank_metrics_with_ties_match_scipy() -> None:
    preds, target = np.round(PREDS, 0), np.round(TARGET, 0)  # many ties on both sides
    run_metric_test(M.srcc, M.SRCC, lambda p, t: stats.spearmanr(p, t).statistic, (preds, target))
    run_metric_test(M.krcc, M.KRCC, lambda p, t: stats.kendalltau(p, t).statistic, (preds, target))


def test_pairwise_accuracy_matches_brute_force() -> None:
    preds, target = np.round(PREDS, 1), np.round(TARGET, 1)  # predicted ties and MOS ties both occur
    run_metric_test(M.pairwise_accuracy, M.PairwiseAccuracy, _ref_pairwise, (preds, target, GROUPS))


def test_mapped_plcc_and_rmse_stateful_equal_functional() -> None:
    for mapping in ("logistic5", "logistic4"):
        run_metric_test(
            partial(M.plcc, mapping=mapping),
            partial(M.PLCC, mapping=mapping),
            lambda p, t, m=mapping: M.plcc(p, t, mapping=m),
            (PREDS, TARGET),
        )
    run_metric_test(M.rmse, M.RMSE, lambda p, t: M.rmse(p, t), (PREDS, TARGET))


def test_hand_worked_cases() -> None:
    # SRCC = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60; KRCC = (5 - 1) / 6.
    assert M.srcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert M.krcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # PLCC of (1, 2, 3) and (1, 2, 4): sum dxdy = 3, sum dx^2 = 2, sum dy^2 = 42 / 9.
    assert M.plcc([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert M.plcc([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert M.rmse([1, 2, 3], [1, 2, 5], mapping=None) == pytest.approx(math.sqrt(4 / 3))
    # Pairs of group a: (0,1) right, (0,2) right, (1,2) predicted tie -> 2.5 / 3; group b is MOS-tied, left out.
    preds, mos, groups = [3, 2, 2, 5, 1], [3, 1, 2, 4, 4], ["a", "a", "a", "b", "b"]
    acc = M.pairwise_accuracy(preds, mos, groups)
    assert acc == pytest.approx(2.5 / 3) and acc.n == 3
    with pytest.warns(M.MetricWarning, match="no untied pairs"):
        per = M.pairwise_accuracy_per_group(preds, mos, groups)
    assert per["a"] == pytest.approx(2.5 / 3)
    assert math.isnan(per["b"]) and "no untied pairs" in per["b"].reason


def test_explicit_pairs_form_equals_group_form() -> None:
    preds, mos, groups = [3, 2, 2, 5, 1, 0], [3, 1, 2, 4, 4, 1], ["a", "a", "a", "b", "b", "b"]
    pa, pb, lab, pg = [], [], [], []
    for i, j in itertools.combinations(range(6), 2):
        if groups[i] == groups[j]:
            pa.append(preds[i])
            pb.append(preds[j])
            lab.append(1.0 if mos[i] > mos[j] else 0.0 if mos[i] < mos[j] else 0.5)
            pg.append(groups[i])
    assert M.preference_accuracy(pa, pb, lab) == pytest.approx(M.pairwise_accuracy(preds, mos, groups))
    assert M.preference_accuracy_per_group(pa, pb, lab, pg) == pytest.approx(
        M.pairwise_accuracy_per_group(preds, mos, groups)
    )
    metric = M.PreferenceAccuracy()
    metric.update(pa[:3], pb[:3], lab[:3], pg[:3]).update(pa[3:], pb[3:], lab[3:], pg[3:])
    assert metric.compute() == pytest.approx(M.preference_accuracy(pa, pb, lab))
    assert metric.compute_per_group()["b"] == pytest.approx(1.0)


def test_preference_labels_and_ties() -> None:
    # Label tie left out; a predicted tie earns half credit; a wrong order earns nothing.
    acc = M.preference_accuracy([0.9, 0.5, 0.1, 0.3], [0.1, 0.5, 0.9, 0.3], [1, 1, 1, 0.5])
    assert acc == pytest.approx(1.5 / 3) and acc.n == 3
    with pytest.raises(M.MetricError, match=r"`label`.*row 1"):
        M.preference_accuracy([1, 2], [2, 1], [1, 2])
    with pytest.warns(M.MetricWarning, match="no untied pairs"):
        assert math.isnan(M.preference_accuracy([1, 2], [2, 1], [0.5, 0.5]))


def test_higher_is_better_declared() -> None:
    assert M.SRCC.higher_is_better and M.KRCC.higher_is_better and M.PLCC.higher_is_better
    assert M.PairwiseAccuracy.higher_is_better and M.PreferenceAccuracy.higher_is_better
    assert not M.RMSE.higher_is_better


# ---------------------------------------------------------------------------------------------- logistic mapping


def _vqeg5(x, b1, b2, b3, b4, b5):
    return b1 * (0.5 - 1 / (1 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def test_logistic_mapping_recovers_a_logistic_relation() -> None:
    x = np.linspace(-3, 3, 200) * 7 + 50  # arbitrary scale and offset
    y = _vqeg5(x, 4.0, 0.3, 50.0, 0.0, 2.0)
    assert M.plcc(x, y) < 0.99
    assert M.plcc(x, y, mapping="logistic5") == pytest.approx(1.0, abs=1e-6)
    assert M.plcc(x, y, mapping="logistic4") == pytest.approx(1.0, abs=1e-6)
    assert M.rmse(x, y) == pytest.approx(0.0, abs=1e-3)
    # A decreasing predictor is mapped just as well.
    assert M.plcc(-x, y, mapping="logistic5") == pytest.approx(1.0, abs=1e-6)


def test_logistic_mapping_agrees_with_direct_curve_fit() -> None:
    """Independent reference: curve_fit of the VQEG form on the raw scores, then scipy's pearsonr."""
    x, y = PREDS * 3 + 10, TARGET
    p0 = [np.ptp(y), 1 / np.std(x), np.mean(x), 0.0, np.mean(y)]
    params, _ = optimize.curve_fit(_vqeg5, x, y, p0=p0, maxfev=20000)
    expected = stats.pearsonr(_vqeg5(x, *params), y).statistic
    assert M.plcc(x, y, mapping="logistic5") == pytest.approx(expected, abs=2e-3)


def test_logistic_mapping_is_monotonic() -> None:
    fitted = fit_logistic(PREDS, TARGET, "logistic5")
    grid = np.linspace(PREDS.min() - 1, PREDS.max() + 1, 500)
    assert np.all(np.diff(fitted(grid)) >= -1e-12)
    assert fitted.fallback_reason is None and fitted.kind == "logistic5"


def test_logistic_fallback_to_linear_is_reported() -> None:
    fitted = fit_logistic([1, 2, 3, 4], [1, 2, 2, 5], "logistic5")
    assert fitted.kind == "linear" and "cannot determine 5 parameters" in fitted.fallback_reason
    with pytest.warns(M.MetricWarning, match="linear fit"):
        value = M.plcc([1, 2, 3, 4], [1, 2, 2, 5], mapping="logistic5")
    assert value == pytest.approx(M.plcc([1, 2, 3, 4], [1, 2, 2, 5]))
    with pytest.raises(M.MetricError, match="constant"):
        fit_logistic([1, 1, 1, 1], [1, 2, 3, 4])


# ---------------------------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("fn", [M.srcc, M.krcc, M.plcc, M.rmse, partial(M.plcc, mapping="logistic4")])
def test_length_mismatch_names_the_arguments(fn) -> None:
    with pytest.raises(M.MetricError, match=r"`preds` has 3 values but `target` has 2"):
        fn([1, 2, 3], [1, 2])


@pytest.mark.parametrize("fn", [M.srcc, M.krcc, M.plcc, M.rmse])
def test_constant_predictions_give_nan_with_reason(fn) -> None:
    with pytest.warns(M.MetricWarning, match="`preds` is constant"):
        value = fn([0.5] * 5, [1, 2, 3, 4, 5])
    assert math.isnan(value) and "constant" in value.reason and value.n == 5


def test_constant_target_and_too_few_samples() -> None:
    with pytest.warns(M.MetricWarning, match="`target` is constant"):
        assert math.isnan(M.srcc([1, 2, 3], [2, 2, 2]))
    for fn in (M.srcc, M.krcc, M.plcc, partial(M.rmse, mapping=None)):
        with pytest.warns(M.MetricWarning, match="at least 3"):
            value = fn([1, 2], [2, 1])
        assert math.isnan(value) and "at least 3" in value.reason


def test_nan_rows_are_dropped_and_counted() -> None:
    preds = np.array([1.0, np.nan, 3.0, 4.0, 5.0, np.inf])
    target = np.array([1.0, 2.0, 2.5, np.nan, 6.0, 1.0])
    with pytest.warns(M.MetricWarning, match="dropped 3 of 6 rows"):
        value = M.srcc(preds, target)
    assert value == pytest.approx(stats.spearmanr([1, 3, 5], [1, 2.5, 6]).statistic)
    assert value.n == 3 and value.n_dropped == 3 and value.reason is None
    with pytest.warns(M.MetricWarning, match="dropped 4 of 4"), pytest.warns(M.MetricWarning, match="at least 3"):
        assert math.isnan(M.plcc([np.nan] * 4, [1, 2, 3, 4]))


def test_bad_shapes_and_types() -> None:
    with pytest.raises(M.MetricError, match="`preds` must be one-dimensional"):
        M.srcc(np.ones((3, 2)), np.ones(6))
    with pytest.raises(M.MetricError, match="`target` must hold numbers"):
        M.srcc([1, 2, 3], ["a", "b", "c"])
    with pytest.raises(M.MetricError, match="`groups` has 2 values"):
        M.pairwise_accuracy([1, 2, 3], [1, 2, 3], ["a", "b"])
    with pytest.raises(M.MetricError, match="different lengths"):
        M.SRCC().update([1, 2], [1])


def test_metric_value_is_a_float_that_survives_pickle_and_json() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        value = M.srcc([1, 1, 1], [1, 2, 3])
    clone = pickle.loads(pickle.dumps(value))
    assert math.isnan(clone) and clone.reason == value.reason
    assert json.loads(json.dumps({"v": M.srcc([1, 2, 3], [1, 2, 3])}))["v"] == 1.0


# ---------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_seeded_and_brackets_the_value() -> None:
    a = bootstrap_ci(M.srcc, PREDS, TARGET, n_resamples=300, seed=3)
    b = bootstrap_ci(M.srcc, PREDS, TARGET, n_resamples=300, seed=3)
    c = bootstrap_ci(M.srcc, PREDS, TARGET, n_resamples=300, seed=4)
    assert a == b and a != c
    assert a.low < a.value < a.high and a.unit == "rows" and a.n_failed == 0
    assert a.value == pytest.approx(M.srcc(PREDS, TARGET))


def test_bootstrap_matches_scipy_percentile_interval() -> None:
    """Sample-level resampling agrees with scipy.stats.bootstrap (paired, percentile) within Monte-Carlo error."""
    ours = bootstrap_ci(M.plcc, PREDS, TARGET, n_resamples=1000, seed=0)
    ref = stats.bootstrap(
        (PREDS, TARGET),
        lambda p, t: np.corrcoef(p, t)[0, 1],
        paired=True,
        vectorized=False,
        n_resamples=1000,
        method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.03)
    assert ours.high == pytest.approx(ref.high, abs=0.03)


def test_bootstrap_over_groups_and_pairwise() -> None:
    ci = bootstrap_ci(M.pairwise_accuracy, PREDS, TARGET, groups=GROUPS, n_resamples=200, pass_groups=True)
    assert ci.unit == "groups" and ci.low <= ci.value <= ci.high
    assert ci.value == pytest.approx(M.pairwise_accuracy(PREDS, TARGET, GROUPS))
    wide = bootstrap_ci(M.srcc, PREDS[:20], TARGET[:20], n_resamples=300)
    narrow = bootstrap_ci(M.srcc, PREDS, TARGET, n_resamples=300)
    assert (wide.high - wide.low) > (narrow.high - narrow.low)


def test_bootstrap_preference_pairs_over_groups() -> None:
    score_a, score_b = PREDS[:60], TARGET[:60]
    label = (RNG.uniform(size=60) < 0.7).astype(float)
    groups = np.repeat(np.arange(12), 5)
    ci = bootstrap_ci(M.preference_accuracy, score_a, score_b, label, groups=groups, n_resamples=100, pass_groups=True)
    assert ci.value == pytest.approx(M.preference_accuracy(score_a, score_b, label))
    assert ci.low < ci.value < ci.high and ci.unit == "groups"
    with pytest.raises(M.MetricError, match="differ in length"):
        bootstrap_ci(M.preference_accuracy, score_a, score_b, label[:5])


def test_bootstrap_degenerate() -> None:
    with pytest.warns(M.MetricWarning, match="interval is undefined"):
        ci = bootstrap_ci(M.srcc, [1, 1, 1, 1, 1], [1, 2, 3, 4, 5], n_resamples=50)
    assert math.isnan(ci.low) and ci.n_failed == 50
    with pytest.raises(M.MetricError, match="`confidence`"):
        bootstrap_ci(M.srcc, PREDS, TARGET, confidence=95)


def test_docstring_examples_run() -> None:
    import doctest

    assert doctest.testmod(M, raise_on_error=False).failed == 0


def test_logistic5_jacobian_matches_finite_differences() -> None:
    x = np.linspace(-2, 2, 9)
    params = np.array([3.0, 1.7, 0.2, 0.4, 1.1])
    numeric = np.stack(
        [optimize.approx_fprime(params, lambda b, xi=xi: L._logistic5(np.array([xi]), *b)[0], 1e-7) for xi in x]
    )
    assert L._logistic5_jac(x, *params) == pytest.approx(numeric, abs=1e-5)


def test_group_bootstrap_keeps_copies_of_a_group_apart() -> None:
    """A prompt drawn twice must count as two prompts, else pairs would form across its copies."""
    groups = np.repeat(["a", "b", "c", "d", "e"], 4)
    n_groups = bootstrap_ci(
        lambda p, t, g: float(len(set(g))), PREDS[:20], TARGET[:20], groups=groups, n_resamples=50, pass_groups=True
    )
    assert n_groups.low == n_groups.high == 5.0
