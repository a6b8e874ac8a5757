"""Evaluation: metrics (functional and accumulating), logistic mapping, bootstrap intervals, evaluating prediction
tables against datasets, report tables and plots."""

from agiqa.eval.bootstrap import ConfidenceInterval, bootstrap_ci
from agiqa.eval.logistic import LogisticMapping, fit_logistic
from agiqa.eval.metrics import (
    KRCC,
    PLCC,
    RMSE,
    SRCC,
    PairwiseAccuracy,
    PreferenceAccuracy,
    krcc,
    pairwise_accuracy,
    pairwise_accuracy_per_group,
    plcc,
    preference_accuracy,
    preference_accuracy_per_group,
    rmse,
    srcc,
)
from agiqa.eval.values import MetricError, MetricValue, MetricWarning

__all__ = [
    "KRCC",
    "PLCC",
    "RMSE",
    "SRCC",
    "ConfidenceInterval",
    "LogisticMapping",
    "MetricError",
    "MetricValue",
    "MetricWarning",
    "PairwiseAccuracy",
    "PreferenceAccuracy",
    "bootstrap_ci",
    "fit_logistic",
    "krcc",
    "pairwise_accuracy",
    "pairwise_accuracy_per_group",
    "plcc",
    "preference_accuracy",
    "preference_accuracy_per_group",
    "rmse",
    "srcc",
]
