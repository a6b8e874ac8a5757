"""``agiqa evaluate`` on a synthetic AGIQA-3K-layout folder and on the real shared AGIQA-3K images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from agiqa.cli import app

runner = CliRunner()


def _agiqa3k_layout(root: Path, n_prompts: int = 12, per_prompt: int = 5) -> pd.DataFrame:
    """A data.csv in the official AGIQA-3K columns (no images: evaluation only needs the labels)."""
    rng = np.random.default_rng(0)
    n = n_prompts * per_prompt
    df = pd.DataFrame(
        {
            "name": [f"SD_{i:03d}.jpg" for i in range(n)],
            "prompt": [f"prompt {i // per_prompt}" for i in range(n)],
            "adj1": "",
            "adj2": "",
            "style": "",
            "mos_quality": rng.uniform(0, 5, n),
            "std_quality": 0.5,
            "mos_align": rng.uniform(0, 5, n),
            "std_align": 0.5,
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data.csv", index=False)
    return df


def _predictions(labels: pd.DataFrame, path: Path, noise: float = 0.4, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "image": labels["name"],
            "quality": labels["mos_quality"] + rng.normal(scale=noise, size=len(labels)),
            "alignment": labels["mos_align"] + rng.normal(scale=noise, size=len(labels)),
        }
    ).to_csv(path, index=False)
    return path


def _text(result) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.verify()


def test_evaluate_prints_table_and_writes_outputs(tmp_path: Path) -> None:
    labels = _agiqa3k_layout(tmp_path / "ds")
    pred = _predictions(labels, tmp_path / "pred.csv")
    with pred.open("a") as fh:
        fh.write("not_there.jpg,1.0,2.0\n")
    out = tmp_path / "out"
    args = ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", "--root", str(tmp_path / "ds")]
    result = runner.invoke(app, [*args, "--out", str(out), "--n-boot", "30"])
    assert result.exit_code == 0, result.output
    assert "60 of 61 rows matched" in _text(result) and "not_there.jpg" in _text(result)
    for word in ("srcc", "plcc", "krcc", "rmse", "quality", "alignment", "95% bootstrap"):
        assert word in _text(result)
    table = pd.read_csv(out / "metrics.csv")
    assert {"srcc", "krcc", "plcc", "plcc_logistic", "rmse", "pairwise_acc"} <= set(table["metric"])
    srcc_q = table[(table["dimension"] == "quality") & (table["metric"] == "srcc")].iloc[0]
    assert 0.5 < srcc_q["mean"] <= 1 and srcc_q["ci_low"] <= srcc_q["mean"] <= srcc_q["ci_high"]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["unmatched"] == ["not_there.jpg"] and doc["n_matched"] == 60
    _assert_png(out / "scatter_quality.png")
    _assert_png(out / "scatter_alignment.png")


def test_evaluate_on_stored_splits(tmp_path: Path) -> None:
    labels = _agiqa3k_layout(tmp_path / "ds", n_prompts=20)
    pred = _predictions(labels, tmp_path / "pred.csv")
    splits = tmp_path / "splits.json"
    root = ["--root", str(tmp_path / "ds")]
    made = runner.invoke(app, ["splits", "make", "agiqa3k", *root, "--out", str(splits), "--n-splits", "3"])
    assert made.exit_code == 0, made.output
    args = ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", *root, "--splits", str(splits)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out"), "-d", "quality"])
    assert result.exit_code == 0, result.output
    assert "±" in _text(result) and "over 3 splits" in _text(result)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(doc["per_split"]) == 3 and set(doc["per_split"][0]["metrics"]) == {"quality"}


def test_evaluate_errors_name_the_culprit(tmp_path: Path) -> None:
    labels = _agiqa3k_layout(tmp_path / "ds")
    root = ["--root", str(tmp_path / "ds")]
    missing = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "nope.csv"), "--dataset", "agiqa3k", *root])
    assert missing.exit_code == 2 and "nope.csv: no such file" in _text(missing)
    pred = _predictions(labels, tmp_path / "pred.csv")
    typo = runner.invoke(app, ["evaluate", "--pred", str(pred), "--dataset", "agiqa3", *root])
    assert typo.exit_code == 2 and "agiqa3k" in _text(typo)
    pd.DataFrame({"file": ["SD_000.jpg"], "quality": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "bad.csv"), "--dataset", "agiqa3k", *root])
    assert bad.exit_code == 2 and "no `image` column" in _text(bad)
    stale = tmp_path / "stale.json"
    runner.invoke(app, ["splits", "make", "agiqa3k", *root, "--out", str(stale), "--n", "2"])
    _agiqa3k_layout(tmp_path / "ds", n_prompts=6)  # the dataset shrank: the split file is stale
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", *root, "--splits", str(stale)])
    assert res.exit_code == 2 and "stale" in _text(res) and "stale.json" in _text(res)


def test_evaluate_real_agiqa3k(agiqa3k_root: Path, tmp_path: Path) -> None:
    labels = pd.read_csv(agiqa3k_root / "data.csv")
    pred = _predictions(labels, tmp_path / "pred.csv", noise=0.5)
    out = tmp_path / "out"
    args = ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", "--root", str(agiqa3k_root)]
    result = runner.invoke(app, [*args, "--out", str(out), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    assert "2386 of 2386 rows matched" in _text(result)
    for word in ("srcc", "plcc", "krcc", "quality", "alignment"):
        assert word in _text(result)
    table = pd.read_csv(out / "metrics.csv").set_index(["dimension", "metric"])["mean"]
    # MOS plus N(0, 0.5) noise on a 0-4.5 scale: strongly but not perfectly correlated.
    for dim in ("quality", "alignment"):
        assert 0.7 < table[(dim, "srcc")] < 0.99
        assert 0.7 < table[(dim, "plcc")] < 0.99
    _assert_png(out / "scatter_quality.png")
    _assert_png(out / "scatter_alignment.png")


def test_real_agiqa3k_matches_paths(agiqa3k_root: Path, tmp_path: Path) -> None:
    """Absolute image paths (what `agiqa score` writes) match as well as bare file names."""
    labels = pd.read_csv(agiqa3k_root / "data.csv").head(50)
    pred = tmp_path / "pred.csv"
    pd.DataFrame({"image": [str(agiqa3k_root / "images" / n) for n in labels["name"]], "quality": range(50)}).to_csv(
        pred, index=False
    )
    args = ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", "--root", str(agiqa3k_root), "--n-boot", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "50 of 50 rows matched" in _text(result)


def _scored_layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tiny AGIQA-3K layout with real images, a model folder, and an ``--input`` table with an extra column."""
    from scoring_fixtures import write_images, write_tiny_model

    root = tmp_path / "ds"
    labels = _agiqa3k_layout(root, n_prompts=10, per_prompt=3)
    for path, name in zip(write_images(root / "images", len(labels)), labels["name"], strict=True):
        path.rename(root / "images" / name)
    table = tmp_path / "items.csv"
    pd.DataFrame({"image": labels["name"], "prompt": labels["prompt"], "seed": range(len(labels))}).to_csv(
        table, index=False
    )
    return root, write_tiny_model(tmp_path / "model"), table


def test_score_output_feeds_evaluate_in_every_mode(tmp_path: Path) -> None:
    root, model, table = _scored_layout(tmp_path)
    scores = tmp_path / "scores.csv"
    scored = runner.invoke(
        app, ["score", str(root / "images"), "--input", str(table), "--model", str(model)] + ["--out", str(scores)]
    )
    assert scored.exit_code == 0, scored.output
    assert {"prompt", "seed", "model", "error", "warning"} <= set(pd.read_csv(scores).columns)
    splits = tmp_path / "splits.json"
    assert runner.invoke(app, ["splits", "make", "agiqa3k", "--root", str(root), "--out", str(splits)]).exit_code == 0
    args = ["evaluate", "--pred", str(scores), "--dataset", "agiqa3k", "--root", str(root), "--n-boot", "0"]
    for extra in ([], ["--splits", str(splits)], ["-d", "quality", "--splits", str(splits)]):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, (extra, result.output)
        assert "30 of 30 rows matched" in _text(result) and "warning" not in _text(result)


def test_evaluate_warns_when_the_model_was_trained_on_the_images(tmp_path: Path) -> None:
    from agiqa.models.training_set import TrainingSet

    root, model, table = _scored_layout(tmp_path)
    names = pd.read_csv(root / "data.csv")["name"].tolist()
    TrainingSet("agiqa3k", str(root), "all images (no split file)", 8, names[:24], names[24:]).save(
        model / "model.training.json"
    )
    scores = tmp_path / "scores.jsonl"
    scored = runner.invoke(
        app, ["score", str(root / "images"), "--input", str(table), "--model", str(model), "--out", str(scores)]
    )
    assert scored.exit_code == 0, scored.output
    args = ["evaluate", "--pred", str(scores), "--dataset", "agiqa3k", "--root", str(root), "--n-boot", "0"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "trained on 24 and validated on 6 of the 30 images evaluated here" in text and "in-sample" in text
    assert "in-sample" in json.loads((tmp_path / "out" / "metrics.json").read_text())["warnings"][0]
    other = pd.read_json(scores, lines=True).assign(model="test-tiny-elsewhere")  # a model this machine lacks
    other.to_csv(tmp_path / "other.csv", index=False)
    result = runner.invoke(app, [*args[:2], str(tmp_path / "other.csv"), *args[3:]])
    assert result.exit_code == 0 and "training set could not be checked" in _text(result)


def test_the_shipped_default_knows_it_was_trained_on_agiqa3k(agiqa3k_root: Path, tmp_path: Path) -> None:
    names = pd.read_csv(agiqa3k_root / "data.csv")["name"].head(40)
    pred = tmp_path / "pred.csv"
    pd.DataFrame({"image": names, "model": "agiqa-lite", "quality": np.arange(40.0)}).to_csv(pred, index=False)
    args = ["evaluate", "--pred", str(pred), "--dataset", "agiqa3k", "--root", str(agiqa3k_root), "--n-boot", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model agiqa-lite was trained on" in _text(result) and "of the 40 images evaluated here" in _text(result)
