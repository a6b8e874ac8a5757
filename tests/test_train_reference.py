"""`agiqa train` writes the reference distribution into the run folder's card: the trained model's own scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import _train_tiny as tiny
from agiqa.api import Reference, load
from agiqa.models.card import ModelCard
from agiqa.models.registry import register_card
from agiqa.train import train
from agiqa.train.selection import split_rows
from agiqa.train.setup import model_card
from agiqa.train.table import image_table


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images", n_prompts=9)


def test_run_folder_card_holds_the_training_rows_reference(tmp_path: Path, data) -> None:
    config = tiny.train_config(tmp_path, "tiny-ref", 0.34, epochs=5, batch_size=8, lr=0.02)
    result = train(config, out_dir=tmp_path / "run", dataset=data)
    card = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    train_rows, val_rows = split_rows(config, data, image_table(data))
    assert val_rows and card["reference"]["n"] == len(train_rows)
    assert f"{len(train_rows)} training images of tiny" in card["reference"]["source"]
    # what arrives in the card: the quantiles of the scores the loaded model gives its training images
    scorer = load(str(result.out_dir))
    table = image_table(data)
    scores = scorer.score([table.images[r] for r in train_rows], [table.prompts[r] for r in train_rows]).scores
    for dim in ("quality", "alignment"):
        written = np.array(card["reference"]["quantiles"][dim])
        assert written.size == 101
        spread = float(np.ptp(scores[dim]))
        # the card's quantiles come from cached (float16) features, the scorer's from the image: close, not equal
        np.testing.assert_allclose(written, np.quantile(scores[dim], np.linspace(0, 1, 101)), atol=0.01 * spread)
    assert scorer.reference is not None
    pct = scorer.score([table.images[r] for r in train_rows], [table.prompts[r] for r in train_rows], percentiles=True)
    assert abs(float(np.median(pct.percentiles["quality"])) - 50) < 5


def test_a_base_cards_reference_is_not_inherited(tmp_path: Path, data) -> None:
    base = {"name": "tiny-with-reference", **tiny.tiny_model_section()}
    base["reference"] = Reference.from_scores({"quality": [1.0, 2.0], "alignment": [0.0, 1.0]}).to_card_value()
    register_card(ModelCard.from_dict(base, source="test"))
    config = tiny.train_config(tmp_path, "tiny-child", 0.34, epochs=1).replace(model={"card": "tiny-with-reference"})
    assert model_card(config).reference is None
    result = train(config, dataset=data)  # in memory: no folder, no reference computed
    assert result.out_dir is None and result.model.card.reference is None


def test_out_of_fold_predictions_never_see_their_prompt(tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch) -> None:
    from agiqa.api import cross_val_predict
    from agiqa.train import crossval

    seen: list[set[str]] = []
    real_train = crossval.train

    def spy(config, setup, rows):
        seen.append({setup.table.groups[r] for r in rows[0] + rows[1]})
        return real_train(config, setup=setup, rows=rows)

    monkeypatch.setattr(crossval, "train", spy)
    config = tiny.train_config(tmp_path, "tiny-cv", 0.2, epochs=3, batch_size=8)
    preds = cross_val_predict(config, data, n_folds=3)
    assert preds["image"].tolist() == [s.image_id for s in data.samples]
    assert sorted(preds["fold"].unique()) == [0, 1, 2] and preds[["quality", "alignment"]].notna().all().all()
    prompt = {s.image_id: s.prompt for s in data.samples}
    for k, groups in enumerate(seen):
        held_out = {prompt[i] for i in preds.loc[preds["fold"] == k, "image"]}
        assert held_out and not held_out & groups  # no prompt of the fold was trained or validated on
    by_prompt = preds.assign(prompt=preds["image"].map(prompt)).groupby("prompt")["fold"].nunique()
    assert (by_prompt == 1).all()  # a prompt's images are all in one fold
