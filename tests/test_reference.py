"""Reference distributions: quantiles in the card, percentiles of scores, what the API and `agiqa models` show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from agiqa.api import NoReferenceError, Reference, Scorer, list_models, load, model_info
from agiqa.models.card import ModelCard
from scoring_fixtures import CARD, write_images, write_tiny_model


def add_reference(folder: Path, images: list[Path], prompt: str = "a cat") -> Reference:
    """Give the tiny model folder a reference: the quantiles of its own scores on ``images``."""
    scores = load(str(folder)).score(images, prompt).scores
    reference = Reference.from_scores(scores, source=f"tiny scores of {len(images)} images")
    card = yaml.safe_load((folder / "config.yaml").read_text())
    card["reference"] = reference.to_card_value(digits=12)
    (folder / "config.yaml").write_text(yaml.safe_dump(card))
    return reference


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("imgs"), 12)


@pytest.fixture(scope="module")
def referenced(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> tuple[Scorer, Reference]:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-ref"))
    reference = add_reference(folder, images)
    return load(str(folder)), reference


def test_quantiles_and_percentiles_agree_with_the_empirical_distribution() -> None:
    values = np.random.default_rng(0).normal(2.5, 0.8, 5000)
    ref = Reference.from_scores({"quality": values})
    q = ref.quantiles["quality"]
    assert q.size == 101 and q[0] == values.min() and q[-1] == values.max()
    probe = np.linspace(0.5, 4.5, 41)
    mine = ref.percentile("quality", probe)
    theirs = [stats.percentileofscore(values, x, kind="mean") for x in probe]
    assert np.abs(mine - theirs).max() < 0.6
    assert np.all(np.diff(ref.percentile("quality", np.linspace(-10, 10, 500))) >= 0)
    assert ref.percentile("quality", [-99.0, 99.0]).tolist() == [0.0, 100.0]
    assert np.isnan(ref.percentile("quality", [np.nan])[0])
    assert ref.value("quality", 50) == pytest.approx(np.median(values))
    for p in (5.0, 37.5, 93.0):
        assert ref.percentile("quality", ref.value("quality", p)) == pytest.approx(p)


def test_equal_quantiles_give_the_middle_percentile() -> None:
    ref = Reference.from_scores({"quality": [1.0] * 80 + [2.0] * 20})
    low, at_one, mid, at_two, high = ref.percentile("quality", [0.5, 1.0, 1.5, 2.0, 2.5])
    assert low == 0 and high == 100 and 0 < at_one < mid < at_two < 100
    assert at_one == pytest.approx(40.0, abs=0.6)  # p0..p80 are all 1.0: the middle is p40
    flat = Reference.from_scores({"quality": [3.0] * 10})
    assert flat.percentile("quality", [2.9, 3.0, 3.1]).tolist() == [0.0, 50.0, 100.0]


def test_card_reference_is_checked_and_round_trips(tmp_path: Path) -> None:
    ref = Reference.from_scores({"quality": [0.1, 0.4, 0.9], "alignment": [0.0, 0.5, 1.0]}, source="x")
    card = ModelCard.from_dict({**CARD, "reference": ref.to_card_value()}, source="card.yaml")
    back = Reference.from_card_value(card.reference, "card.yaml")
    assert back.n == 3 and back.source == "x"
    np.testing.assert_allclose(back.quantiles["quality"], ref.quantiles["quality"], atol=1e-5)
    bad = {**ref.to_card_value(), "quantiles": {"quality": [0.5, 0.2, 0.9]}}
    with pytest.raises(ValueError, match=r"card.yaml: reference.quantiles.quality must be non-decreasing"):
        ModelCard.from_dict({**CARD, "reference": bad}, source="card.yaml")
    other = {**ref.to_card_value(), "quantiles": {"sharpness": [0.1, 0.2]}}
    with pytest.raises(ValueError, match=r"dimensions \['sharpness'\] the model lacks"):
        ModelCard.from_dict({**CARD, "reference": other}, source="card.yaml")


def test_score_with_percentiles(referenced: tuple[Scorer, Reference], images: list[Path]) -> None:
    scorer, written = referenced
    reference = scorer.reference
    assert reference is not None
    for dim in ("quality", "alignment"):  # what the card holds is what was written
        np.testing.assert_allclose(reference.quantiles[dim], written.quantiles[dim], atol=1e-11)
    result = scorer.score(images[:5], "a cat", percentiles=True)
    for dim in ("quality", "alignment"):
        expected = reference.percentile(dim, result.scores[dim])
        np.testing.assert_allclose(result.percentiles[dim], expected)
        assert ((result.percentiles[dim] >= 0) & (result.percentiles[dim] <= 100)).all()
    frame = result.to_pandas()
    assert list(frame.columns) == [
        "image", "prompt", "quality", "alignment", "quality_pct", "alignment_pct", "error", "warning"
    ]  # fmt: skip
    assert result[0]["quality_pct"] == pytest.approx(float(result.percentiles["quality"][0]))
    # the scores of the reference images themselves spread over the whole 0-100 range
    everything = scorer.score(images, "a cat", percentiles=True).percentiles["quality"]
    assert everything.min() == pytest.approx(0, abs=1e-6) and everything.max() == pytest.approx(100, abs=1e-6)


def test_percentiles_without_a_reference_are_refused_before_scoring(tmp_path: Path, images: list[Path]) -> None:
    scorer = load(str(write_tiny_model(tmp_path / "plain")))
    assert scorer.reference is None
    calls = []
    scorer.model.forward_head = lambda *a, **k: calls.append(1)  # type: ignore[method-assign]
    with pytest.raises(NoReferenceError, match="has no reference distribution"):
        scorer.score(images[:2], "a cat", percentiles=True)
    assert not calls


def test_model_info_shows_the_default_reference() -> None:
    info = model_info("agiqa-lite")[0]
    assert info["reference"] is not None, (
        "the shipped default card has no reference; run benchmarks/default_reference.py"
    )
    card = list_models("agiqa-lite")[0]
    reference = Reference.from_card_value(card.reference, card.source)
    assert reference.n >= 2000
    for dim in ("quality", "alignment"):
        shown = info["reference"]["quantiles"][dim]
        assert list(shown) == ["p10", "p50", "p90"]
        assert shown["p50"] == pytest.approx(reference.value(dim, 50))
        assert shown["p10"] < shown["p50"] < shown["p90"]
    plain = model_info("tsp-mgs-lite")[0]
    assert plain["reference"] is None


def test_agiqa_models_prints_the_reference_quantiles() -> None:
    from typer.testing import CliRunner

    from agiqa.cli import app

    result = CliRunner().invoke(app, ["models", "--long"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "reference p10/p50/p90" in result.output and "none (no percentiles)" in result.output
    shown = model_info("agiqa-lite")[0]["reference"]["quantiles"]["quality"]
    assert f"quality {shown['p10']:.2f} / {shown['p50']:.2f} / {shown['p90']:.2f}" in result.output
