"""The issue's target on real data: ``agiqa score AGIQA3K/images --input TABLE --out s.csv`` with the default model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agiqa import api
from agiqa.cli import app
from agiqa.models.registry import resolve_card


@pytest.mark.slow
@pytest.mark.shared_data
def test_score_real_agiqa3k_table_with_the_default_model(agiqa3k_root: Path, tmp_path: Path) -> None:
    labels = pd.read_csv(agiqa3k_root / "data.csv")
    rows = labels.iloc[::120].head(20)  # 20 images across generators and prompts
    table = tmp_path / "table.csv"
    rows.rename(columns={"name": "image"})[["image", "prompt"]].to_csv(table, index=False)
    out = tmp_path / "s.csv"

    result = CliRunner().invoke(
        app, ["score", str(agiqa3k_root / "images"), "--input", str(table), "--out", str(out), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, keep_default_na=False)
    dims = [d.name for d in resolve_card(api.DEFAULT_MODEL).dimensions]
    assert list(scores.columns) == ["image", "prompt", "model", *dims, "error", "warning"]
    assert (scores["model"] == api.DEFAULT_MODEL).all()
    assert scores["image"].tolist() == rows["name"].tolist()
    assert (scores["error"] == "").all()
    values = scores[dims].to_numpy(float)
    assert np.isfinite(values).all()
    assert all(len(np.unique(values[:, k].round(6))) > 1 for k in range(len(dims)))  # not a constant output


@pytest.mark.slow
@pytest.mark.shared_data
def test_default_model_scores_do_not_depend_on_batching(agiqa3k_root: Path) -> None:
    labels = pd.read_csv(agiqa3k_root / "data.csv").iloc[::600].head(4)
    paths = [agiqa3k_root / "images" / n for n in labels["name"]]
    prompts = labels["prompt"].tolist()
    scorer = api.load()
    one = scorer.score(paths, prompts, batch_size=1)
    many = scorer.score(paths[::-1], prompts[::-1], batch_size=4)
    for name, values in one.scores.items():
        np.testing.assert_allclose(values, many.scores[name][::-1], rtol=1e-4, atol=1e-5)
