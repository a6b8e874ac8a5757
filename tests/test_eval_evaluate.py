"""Matching predictions to a dataset and evaluating them (all of it, or the test sides of splits)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agiqa.data.sample import Dataset, PreferencePair, Sample
from agiqa.data.splits import make_splits
from agiqa.eval import evaluate, report
from agiqa.eval import metrics as M

ROOT = Path("/data/toy")


def toy(n_groups: int = 12, per_group: int = 5) -> Dataset:
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            str(ROOT / "images" / f"g{g}" / f"img{i}.jpg"),
            f"prompt {g}",
            f"g{g}/img{i}.jpg",
            labels={"quality": float(rng.uniform(0, 5)), "alignment": float(rng.uniform(0, 5))},
        )
        for g in range(n_groups)
        for i in range(per_group)
    ]
    return Dataset("toy", ROOT, samples, dimensions=("quality", "alignment"))


def predictions(ds: Dataset, noise: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "image": [s.image_id for s in ds.samples],
            "quality": [s.labels["quality"] + rng.normal(scale=noise) for s in ds.samples],
            "alignment": [s.labels["alignment"] + rng.normal(scale=noise) for s in ds.samples],
        }
    )


def test_metrics_equal_the_functional_metrics() -> None:
    ds = toy()
    pred = predictions(ds)
    res = evaluate.evaluate_predictions(pred, ds)
    q = res["metrics"]["quality"]
    mos = [s.labels["quality"] for s in ds.samples]
    assert q["srcc"] == pytest.approx(stats.spearmanr(pred["quality"], mos).statistic)
    assert q["krcc"] == pytest.approx(stats.kendalltau(pred["quality"], mos).statistic)
    assert q["plcc"] == pytest.approx(stats.pearsonr(pred["quality"], mos).statistic)
    assert q["plcc_logistic"] == pytest.approx(M.plcc(pred["quality"], mos, mapping="logistic5"))
    assert q["pairwise_acc"] == pytest.approx(M.pairwise_accuracy(pred["quality"], mos, [s.prompt for s in ds.samples]))
    assert (res["n_matched"], res["unmatched"], q["n"]) == (60, [], 60)


def test_matching_by_path_file_name_and_the_reported_leftovers() -> None:
    ds = toy(n_groups=3)
    pred = predictions(ds)
    ids = pred["image"].tolist()
    ids[0] = str(ROOT / "images" / ids[0])  # absolute path
    ids[1] = "images\\" + ids[1].replace("/", "\\")  # Windows-style relative path
    ids[2] = "img2.jpg"  # file name shared by three groups: ambiguous
    ids[3] = "nowhere.jpg"
    ids[4] = ids[5]  # duplicate
    pred["image"] = ids
    matched = evaluate.match_predictions(pred, ds)
    assert matched.unmatched == ["nowhere.jpg"] and matched.ambiguous == ["img2.jpg"]
    assert matched.duplicates == ["g1/img0.jpg"]
    assert {"g0/img0.jpg", "g0/img1.jpg"} <= set(matched.frame.index)
    assert matched.n_matched == 15 - 3  # ambiguous, unmatched, and the row turned into a duplicate

    unique = Dataset("u", ROOT, [Sample(str(ROOT / "a" / f"{i}.jpg"), "p", f"a/{i}.jpg") for i in range(3)])
    by_name = evaluate.match_predictions(pd.DataFrame({"image": ["0.jpg", "x/1.jpg"], "s": [1, 2]}), unique)
    assert by_name.by_name == 2 and set(by_name.frame.index) == {"a/0.jpg", "a/1.jpg"}


def test_bad_prediction_tables() -> None:
    ds = toy(n_groups=2)
    with pytest.raises(evaluate.EvaluationError, match="no `image` column"):
        evaluate.evaluate_predictions(pd.DataFrame({"name": ["x"], "quality": [1]}), ds)
    with pytest.raises(evaluate.EvaluationError, match="'score'.*not dimensions of 'toy' \\(quality, alignment\\)"):
        evaluate.evaluate_predictions(pd.DataFrame({"image": ["g0/img0.jpg"], "score": [1]}), ds)
    with pytest.raises(evaluate.EvaluationError, match="no prediction matches"):
        evaluate.evaluate_predictions(pd.DataFrame({"image": ["zzz.png"], "quality": [1]}), ds)
    with pytest.raises(evaluate.EvaluationError, match="'quality' hold no numbers"):
        evaluate.evaluate_predictions(pd.DataFrame({"image": ["g0/img0.jpg"], "quality": ["good"]}), ds)


def test_degenerate_dimension_is_explained_in_notes() -> None:
    ds = toy(n_groups=2)
    pred = predictions(ds).assign(alignment=1.0)
    res = evaluate.evaluate_predictions(pred, ds)
    assert math.isnan(res["metrics"]["alignment"]["srcc"])
    assert any(n.startswith("alignment:") and "constant" in n for n in res["notes"])
    assert not math.isnan(res["metrics"]["quality"]["srcc"])


def test_bootstrap_intervals_in_results() -> None:
    ds = toy()
    res = evaluate.evaluate_predictions(predictions(ds), ds, ["quality"], n_boot=50)
    ci = res["metrics"]["quality"]["ci"]
    assert set(ci) == {"srcc", "krcc", "plcc", "pairwise_acc"}
    assert (
        ci["srcc"]["unit"] == "groups" and ci["srcc"]["low"] <= res["metrics"]["quality"]["srcc"] <= ci["srcc"]["high"]
    )


def test_pair_dataset_gets_preference_accuracy() -> None:
    pairs = [
        PreferencePair("p", "a.png", "b.png", 1.0, "a.png", "b.png"),
        PreferencePair("p", "a.png", "c.png", 0.0, "a.png", "c.png"),
        PreferencePair("q", "d.png", "e.png", 0.5, "d.png", "e.png"),
        PreferencePair("q", "d.png", "f.png", 1.0, "d.png", "f.png"),
    ]
    ds = Dataset("prefs", ROOT, pairs=pairs)
    pred = pd.DataFrame({"image": ["a.png", "b.png", "c.png", "d.png", "e.png"], "preference": [2, 1, 3, 0, 0]})
    res = evaluate.evaluate_predictions(pred, ds)
    row = res["metrics"]["preference"]
    # a>b right, c>a right; the tie is left out; d-f has no prediction for f.
    assert row["preference_acc"] == pytest.approx(1.0)
    assert (row["n_pairs"], row["n_pairs_unscored"]) == (3, 1)
    with_ci = evaluate.evaluate_predictions(pred, ds, n_boot=20)["metrics"]["preference"]["ci"]["preference_acc"]
    assert with_ci["unit"] == "groups" and with_ci["value"] == pytest.approx(1.0)
    # an `agiqa score` table: its text columns (and a copied text column) are not scores
    scored = pred.assign(prompt="p", model="m", error="", warning="", batch=["x", "y", "z", "x", "y"])
    assert evaluate.prediction_dimensions(scored, ds) == ["preference"]
    assert evaluate.evaluate_predictions(scored, ds)["metrics"].keys() == {"preference"}


def test_evaluate_on_splits_aggregates() -> None:
    ds = toy(n_groups=20)
    splits = make_splits(ds, n=3, seed=0)
    results = evaluate.evaluate_on_splits(predictions(ds), ds, splits)
    assert [r["repeat"] for r in results] == [0, 1, 2]
    assert all(r["n_matched"] == len(s.test) and r["unmatched"] == [] for r, s in zip(results, splits, strict=True))
    table = report.aggregate([evaluate.metric_table(r) for r in results])
    srcc_row = table[(table["dimension"] == "quality") & (table["metric"] == "srcc")].iloc[0]
    expected = [r["metrics"]["quality"]["srcc"] for r in results]
    assert srcc_row["mean"] == pytest.approx(np.mean(expected)) and srcc_row["n"] == 3
    with pytest.raises(evaluate.EvaluationError, match="2 prediction tables for 3 splits"):
        evaluate.evaluate_on_splits([predictions(ds)] * 2, ds, splits)


def test_cross_dataset_matrix() -> None:
    a, b = toy(n_groups=4), toy(n_groups=6)
    results = {
        ("a", "a"): evaluate.evaluate_predictions(predictions(a), a),
        ("a", "b"): evaluate.evaluate_predictions(predictions(b, noise=2.0), b),
        ("b", "a"): evaluate.evaluate_predictions(predictions(a, noise=2.0), a),
    }
    matrix = evaluate.cross_dataset_matrix(results, "quality", "srcc")
    assert list(matrix.index) == ["a", "b"] and list(matrix.columns) == ["a", "b"]
    assert matrix.loc["a", "b"] == pytest.approx(results[("a", "b")]["metrics"]["quality"]["srcc"])
    assert math.isnan(matrix.loc["b", "b"])
