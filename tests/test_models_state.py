"""Model states (trained, zero-shot, untrained, weights missing) from cards and files, and what each allows."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import agiqa
from agiqa.api import UntrainedModelError, model_info
from agiqa.cli import app
from agiqa.models.card import ModelCard
from agiqa.models.registry import CARDS, list_models
from agiqa.models.state import STATES, UNTRAINED, ZERO_SHOT, model_state, needs_training
from scoring_fixtures import write_images, write_tiny_model, write_untrained_model

runner = CliRunner()
SPEED = {"images_per_s": 12.34, "how": "tiny pictures [b]1 thread[/b]", "source": "here.json"}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_model(tmp_path_factory.mktemp("untrained"))


def test_every_shipped_card_has_a_state_and_zero_shot_comes_from_the_method() -> None:
    states = {c.name: model_state(c) for c in list_models()}
    assert set(states.values()) <= set(STATES)
    for card in list_models():
        if card.weights is None and card.needs_training is None:
            # the declaration of the method's class, whatever the card is called
            assert needs_training(card) == (card.method not in {"clipscore", "clip-iqa", "tsp-mgs-zeroshot"})
    assert states["agiqa-lite"] == "trained"
    assert states["clipscore-clip-b32"] == ZERO_SHOT and states["tsp-mgs-lite"] == UNTRAINED
    # zero-shot methods over the lite encoder, whose joint space is untrained: the card says so
    assert states["clip-iqa-lite"] == UNTRAINED


def test_descriptions_leave_the_training_state_to_the_state_column() -> None:
    for card in list_models():
        assert "Untrained until" not in card.description and "before use" not in card.description, card.name


def test_load_refuses_an_untrained_model_unless_asked(untrained: Path, tmp_path: Path) -> None:
    with pytest.raises(UntrainedModelError, match=r"untrained.*agiqa train.*agiqa models.*allow_untrained=True"):
        agiqa.load(str(untrained))
    with pytest.raises(UntrainedModelError, match=r"'tsp-mgs-lite' is untrained.*agiqa train lite/tsp-mgs --out"):
        agiqa.load("tsp-mgs-lite")  # refused from its card, before anything is built; the shipped config named
    scorer = agiqa.load(str(untrained), allow_untrained=True)
    images = write_images(tmp_path / "imgs", 3)
    result = scorer.score(images, ["a cat", "", "a dog"])
    assert all("is untrained: this score means nothing" in w for w in result.warnings)
    assert "alignment not scored: no prompt" in result.warnings[1]
    assert result.ok.all() and np.isfinite(result.scores["quality"]).all()


def test_a_missing_model_folder_says_so() -> None:
    with pytest.raises(FileNotFoundError, match="runs/nothing-here: no such model folder"):
        agiqa.load("runs/nothing-here")
    with pytest.raises(KeyError, match="unknown model 'nothing-here'"):
        agiqa.load("nothing-here")


def test_models_shows_every_state_in_a_column_that_is_never_cut(
    untrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    list_models()  # load the package cards first
    trained = ModelCard.from_yaml(write_tiny_model(tmp_path / "trained") / "config.yaml")
    base = trained.to_dict()
    cards = {
        "t-trained": ModelCard.from_dict({**base, "name": "t-trained", "speed": SPEED}, source=trained.source),
        "t-missing": ModelCard.from_dict({**base, "name": "t-missing", "weights": "/nowhere/w.safetensors"}),
        "t-untrained": ModelCard.from_dict({**base, "name": "t-untrained", "weights": None}),
        "t-zero": ModelCard.from_dict({**base, "name": "t-zero", "weights": None, "needs_training": False}),
    }
    for name, card in cards.items():
        monkeypatch.setitem(CARDS._items, name, card)
    rows = {r["name"]: r for r in model_info("t-*")}
    assert {n: r["state"] for n, r in rows.items()} == {
        "t-trained": "trained",
        "t-missing": "weights missing",
        "t-untrained": "untrained",
        "t-zero": "zero-shot",
    }
    assert {n: r["ready"] for n, r in rows.items()} == {
        "t-trained": True,
        "t-missing": False,
        "t-untrained": False,  # its weights are all here, but its scores mean nothing
        "t-zero": True,
    }
    result = runner.invoke(app, ["models", "--json"])
    assert {r["name"]: r["state"] for r in json.loads(result.output)}["t-missing"] == "weights missing"
    assert rows["t-trained"]["speed"] == SPEED and rows["t-untrained"]["speed"] is None
    for width, long in itertools.product(("80", "250"), ([], ["--long"])):
        result = runner.invoke(app, ["models", *long], env={"COLUMNS": width})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        for state in ("weights missing", "untrained", "zero-shot", "trained"):
            assert any(f"│ {state} " in line for line in lines), (width, long, state)
        text = " ".join(result.output.split())
        assert "--allow-untrained" in text
        assert "t-trained: 12.3 images/s (tiny pictures [b]1 thread[/b]; here.json)" in text
        if width == "250":
            row = next(line for line in lines if "│ t-trained " in line)
            assert "12.3 img/s" in row
            if not long:
                assert "missing: head" in next(line for line in lines if "│ t-missing " in line)


def test_a_card_speed_must_be_a_measured_number() -> None:
    base = {"name": "s", "method": "tsp-mgs", "encoder": "lite", "dimensions": [{"name": "quality"}]}
    assert ModelCard.from_dict({**base, "speed": {"images_per_s": 3}}).speed == {"images_per_s": 3}
    for bad in ({"images_per_s": "fast"}, {"how": "measured"}, {"images_per_s": 1.0, "when": "now"}, 7.5):
        with pytest.raises(ValueError, match="card.yaml: speed is .*`images_per_s`"):
            ModelCard.from_dict({**base, "speed": bad}, source="card.yaml")


def test_cli_refuses_an_untrained_model_before_loading_it(
    untrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "imgs"
    write_images(images, 2)
    out = tmp_path / "s.csv"
    for command in (
        ["score", images, "--prompt", "x", "--out", out],
        ["rank", images, "--prompt", "x"],
        ["explain", images / "img_000.jpg", "--prompt", "x"],
    ):
        result = runner.invoke(app, [*map(str, command), "--model", str(untrained)], env={"COLUMNS": "200"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "is untrained" in text and "--allow-untrained" in text, result.output
    code = runner.invoke(
        app, ["score", str(images), "--prompt", "x", "--out", str(out), "--model", str(untrained), "--allow-untrained"]
    )
    assert code.exit_code == 0, code.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 2 and frame["warning"].str.contains("is untrained: this score means nothing").all()
