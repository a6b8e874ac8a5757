"""Mismatched-prompt negatives: what is drawn, what reaches the loss, and that alignment learns to read the prompt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import _train_tiny as tiny
from agiqa.train import train
from agiqa.train.config import MismatchConfig, TrainConfig
from agiqa.train.mismatch import Mismatch, content_words, mismatch_dimensions, prompt_swap_share
from agiqa.train.setup import prepare


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images", n_prompts=9, per_prompt=6)


def config(tmp_path: Path, **train: object):
    base = {"epochs": 30, "batch_size": 8, "lr": 0.02, "keep_best": False}
    return tiny.train_config(tmp_path, "tiny-mismatch", 0.0, **{**base, **train})


def test_negatives_are_other_training_prompts_and_seeded(tmp_path: Path, data) -> None:
    setup = prepare(config(tmp_path), data)
    table, bank = setup.table, setup.bank
    train_rows = [r for r in range(len(table)) if table.prompts[r] != table.prompts[0]]
    held_out = int(bank.prompt_row[0])
    mismatch = Mismatch(MismatchConfig(enabled=True, per_item=3), bank, train_rows, ["alignment"], seed=0)
    rows = torch.as_tensor(train_rows[:10] + [0])  # row 0's prompt is not a training prompt: no negatives for it
    images, prompts = mismatch.negatives(rows, step=5)
    assert len(images) == 3 * 10 and 0 not in images.tolist()
    assert (prompts != bank.prompt_row[images]).all()
    assert held_out not in prompts.tolist()
    again = mismatch.negatives(rows, step=5)
    assert torch.equal(again[1], prompts) and not torch.equal(mismatch.negatives(rows, step=6)[1], prompts)


def test_hard_negatives_share_a_content_word() -> None:
    class Bank:
        prompts = ["a red car on a road", "a red apple", "a blue whale", "green fields", "a car park at night"]
        prompt_row = torch.arange(5)

    mismatch = Mismatch(MismatchConfig(enabled=True, per_item=20, hard=1.0), Bank(), range(5), ["alignment"], 0)
    _, prompts = mismatch.negatives(torch.tensor([0]), step=0)
    assert set(prompts.tolist()) == {1, 4}  # "red" and "car"; prompts sharing nothing are never drawn
    _, prompts = mismatch.negatives(torch.tensor([3]), step=0)  # no neighbour: falls back to uniform
    assert 3 not in prompts.tolist() and len(set(prompts.tolist())) > 1
    assert content_words("The cat AND the hat") == {"cat", "hat"}


def test_the_loss_sees_the_other_prompts_features(tmp_path: Path, data, monkeypatch) -> None:
    setup = prepare(config(tmp_path), data)
    bank, model = setup.bank, setup.model
    seen = []
    real = model.forward_head

    def spy(features):
        seen.append(features)
        return real(features)

    monkeypatch.setattr(model, "forward_head", spy)
    rows = torch.arange(8)
    own = real(bank.batch(rows))
    mismatch = Mismatch(MismatchConfig(enabled=True, margin=100.0), bank, range(len(bank.table)), ["alignment"], 0)
    loss = mismatch.loss(model, rows, own, step=3, pair_loss=None)
    images, prompts = mismatch.negatives(rows, step=3)
    (features,) = seen
    assert torch.equal(features["text_pooled"], bank.text["text_pooled"][prompts])
    assert torch.equal(features["image_pooled"], bank.image[0]["image_pooled"][images])
    other = real(features)["alignment"]
    expected = torch.relu(100.0 - (own["alignment"][images] - other)).mean()
    assert torch.allclose(loss, expected)


def test_pair_objectives_get_mismatched_pairs_with_the_own_prompt_preferred(tmp_path: Path, data, monkeypatch) -> None:
    import agiqa.train.mismatch as module

    labels = []
    real = module.pairwise_cross_entropy

    def spy(s_a, s_b, label, *args, **kwargs):
        labels.append(label)
        return real(s_a, s_b, label, *args, **kwargs)

    monkeypatch.setattr(module, "pairwise_cross_entropy", spy)
    train(config(tmp_path, loss="pairwise_ce", steps=2, mismatch={"enabled": True}), dataset=data)
    assert labels == [1.0, 1.0]


def test_alignment_learns_to_read_the_prompt(tmp_path: Path) -> None:
    """Every image shows its prompt's colour: only the negatives can teach that a prompt asking another colour fits
    worse, so the share of images scored lower under such a prompt must rise from about a coin toss."""
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=9, per_prompt=6, aligned=True)
    setup = prepare(config(tmp_path / "probe"), data)
    bank = setup.bank
    asked = [next(c for c in tiny.COLOURS if f" {c} " in p) for p in bank.prompts]
    rows = list(range(len(setup.table)))
    rng = np.random.default_rng(0)
    donors = [rng.choice([p for p in range(len(asked)) if asked[p] != asked[int(bank.prompt_row[r])]]) for r in rows]

    def share(**extra: object) -> float:
        result = train(config(tmp_path / str(len(extra)), **extra), dataset=data)
        setup.model.load_state_dict(result.model.state_dict())
        own = bank.predict(rows)["alignment"]
        other = bank.predict(rows, prompt_rows=donors)["alignment"]
        return prompt_swap_share(own, other)

    plain = share(epochs=60)
    with_negatives = share(epochs=60, mismatch={"enabled": True, "margin": 1.0, "per_item": 4, "weight": 5.0})
    assert with_negatives >= 0.9 and with_negatives > plain + 0.2, (plain, with_negatives)


def test_mint_iqa_reads_the_prompt_through_its_q_former(tmp_path: Path) -> None:
    """MINT-IQA reads the prompt only as text tokens beside the Q-Former's queries (no pooled text, no cosine):
    the mismatch loss must reach that path (a gradient on ``text_proj``) and teach it the colour task above."""
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=9, per_prompt=6, aligned=True)
    qformer = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "num_queries": 4, "cross_attention_frequency": 1}
    section = {
        **tiny.tiny_model_section(),
        "method": "mint-iqa",
        "method_args": {"refiner": "none", "text_length": 8, "qformer": qformer, "dropout": 0.0},
    }

    def mint_config(root: Path, **extra: object) -> TrainConfig:
        cfg = config(root, **extra).to_dict()
        return TrainConfig.from_dict({**cfg, "model": section})

    setup = prepare(mint_config(tmp_path / "probe"), data)
    bank, model = setup.bank, setup.model
    rows = torch.arange(len(setup.table))
    mismatch = Mismatch(MismatchConfig(enabled=True, margin=10.0), bank, rows.tolist(), ["alignment"], 0)
    model.train()
    mismatch.loss(model, rows, model.forward_head(bank.batch(rows)), step=0, pair_loss=None).backward()
    grad = model.qformer.text_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0, "the mismatch loss does not reach MINT-IQA's text tokens"

    asked = [next(c for c in tiny.COLOURS if f" {c} " in p) for p in bank.prompts]
    rng = np.random.default_rng(0)
    donors = [rng.choice([p for p in range(len(asked)) if asked[p] != asked[int(bank.prompt_row[r])]]) for r in rows]

    def share(**extra: object) -> float:
        result = train(mint_config(tmp_path / str(len(extra)), epochs=60, lr=0.003, **extra), dataset=data)
        model.load_state_dict(result.model.state_dict())
        own = bank.predict(rows.tolist())["alignment"]
        return prompt_swap_share(own, bank.predict(rows.tolist(), prompt_rows=donors)["alignment"])

    plain = share()
    with_negatives = share(mismatch={"enabled": True, "margin": 1.0, "per_item": 4, "weight": 5.0})
    assert with_negatives >= 0.9 and with_negatives > plain + 0.2, (plain, with_negatives)


def test_keep_best_by_swap_keeps_the_epoch_best_by_srcc_plus_the_validation_swap_share(tmp_path: Path) -> None:
    """``keep_best_by: srcc+swap`` (MINT-IQA's best-SRCC epoch came before it read the prompt): each validation
    entry's ``val`` is its mean SRCC plus the share of validation images scored lower under another validation
    group's prompt, and the kept weights give the share of the entry with the highest ``val``."""
    from agiqa.train.probes import swap_donors
    from agiqa.train.selection import carve_validation

    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=12, per_prompt=6, aligned=True)
    mismatch = {"enabled": True, "margin": 1.0, "per_item": 2, "weight": 2.0}
    cfg = config(tmp_path / "run", epochs=12, keep_best=True, keep_best_by="srcc+swap", mismatch=mismatch)
    setup = prepare(cfg, data)
    fit, val = carve_validation(setup.table, list(range(len(setup.table))), 0.34, 0)
    result = train(cfg, setup=setup, rows=(fit, val))
    history = result.history
    for entry in history:
        srcc = np.mean([entry["val_srcc_quality"], entry["val_srcc_alignment"]])
        assert entry["val"] == pytest.approx(srcc + entry["val_swap_alignment"], abs=1e-9), entry
        assert "val_swap_quality" not in entry  # only the alignment-kind dimensions are asked to read the prompt
    best = max(history, key=lambda e: e["val"])
    bank = setup.bank
    donors = bank.prompt_row[torch.as_tensor(swap_donors(setup.table.groups, val, seed=0))].tolist()
    own, other = bank.predict(val)["alignment"], bank.predict(val, prompt_rows=donors)["alignment"]
    assert prompt_swap_share(own, other) == pytest.approx(best["val_swap_alignment"])
    assert len({round(e["val_swap_alignment"], 6) for e in history}) > 1, "the share must move while training"


def test_keep_best_by_names_the_config_key_when_unknown() -> None:
    with pytest.raises(ValueError, match=r"train\.keep_best_by='swap'.*srcc\+swap"):
        tiny.train_config(Path("/tmp"), "bad", 0.2, keep_best_by="swap").validate()


def test_mismatch_dimensions_name_the_config() -> None:
    assert mismatch_dimensions(MismatchConfig(enabled=True), ["quality", "alignment"], "c.yaml") == ["alignment"]
    with pytest.raises(ValueError, match=r"c\.yaml: .*\['style'\]"):
        mismatch_dimensions(MismatchConfig(enabled=True, dimensions=["style"]), ["quality"], "c.yaml")
    with pytest.raises(ValueError, match="no trained dimension reads the prompt"):
        mismatch_dimensions(MismatchConfig(enabled=True), ["quality"], "c.yaml")
