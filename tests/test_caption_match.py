"""TSP-MGS's caption match: the closed-form map, what the trainer hands the head while training, and what is saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import _train_tiny as tiny
from _tiny import TinyDualEncoder, tiny_images
from agiqa.models.card import ScoreSpec
from agiqa.models.layers.caption import RidgeCaption
from agiqa.models.registry import create_model
from agiqa.models.tsp_mgs import MATCH_MIXES, TSPMGS
from agiqa.train import train
from agiqa.train.features import FeatureBank
from agiqa.train.setup import prepare


def _groups(n_groups: int = 40, per_group: int = 3, seed: int = 0):
    """Rows near their group's centre ``z_g``; each group's target is ``z_g @ A``: a map that carries to new groups."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 10))
    a = rng.normal(size=(10, 8))
    x = np.repeat(centres, per_group, axis=0) + 0.1 * rng.normal(size=(n_groups * per_group, 10))
    y = np.repeat(centres @ a, per_group, axis=0)
    groups = np.repeat([f"p{g}" for g in range(n_groups)], per_group)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), groups


def test_ridge_caption_fits_and_its_held_out_predictions_never_see_their_group() -> None:
    x, y, groups = _groups()
    cap = RidgeCaption()
    assert not cap.fitted and cap.weight.shape == (0, 0)
    oof = cap.fit(x, y, groups, alphas=(0.01,))
    assert cap.fitted and cap.weight.shape == (10, 8) and oof.shape == y.shape
    cosine = torch.nn.functional.cosine_similarity(oof, y, dim=-1)
    assert cosine.mean() > 0.9, cosine.mean()  # a linear map learnt on other groups carries to a new one
    y2 = y.clone()
    y2[groups == "p0"] += 5.0  # another target for group p0 only
    oof2 = RidgeCaption().fit(x, y2, groups, alphas=(0.01,))
    mine = torch.as_tensor(groups == "p0")
    torch.testing.assert_close(oof2[mine], oof[mine])  # p0's rows were predicted by maps fitted without p0
    assert not torch.allclose(oof2[~mine], oof[~mine])


def test_ridge_caption_picks_the_penalty_by_held_out_ranking_and_reloads_with_its_shapes() -> None:
    x, y, groups = _groups(seed=1)
    noisy = x + 3.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    alphas = (1e-4, 1.0, 1e4)
    targets = torch.stack([y[groups == g][0] for g in np.unique(groups)])
    own = torch.as_tensor(np.unique(groups, return_inverse=True)[1])

    def held_out_share(alpha: float) -> float:  # how often a row's own prompt beats another, by hand
        sim = torch.nn.functional.normalize(RidgeCaption().fit(noisy, y, groups, alphas=(alpha,)), dim=-1)
        sim = sim @ torch.nn.functional.normalize(targets, dim=-1).T
        return float((sim < sim[torch.arange(len(own)), own].unsqueeze(1)).float().sum(1).mean() / (len(targets) - 1))

    shares = [held_out_share(a) for a in alphas]
    assert len(set(shares)) > 1, shares
    cap = RidgeCaption()
    cap.fit(noisy, y, groups, alphas=alphas)
    assert float(cap.penalty) == pytest.approx(alphas[int(np.argmax(shares))] * 10)
    fresh = RidgeCaption()
    fresh.load_state_dict(cap.state_dict())
    torch.testing.assert_close(fresh(noisy), cap(noisy))
    with pytest.raises(ValueError, match="at least 2"):
        RidgeCaption().fit(x[:3], y[:3], groups[:3])  # one prompt


def _noisy_targets(n_groups: int, seed: int, noise_dims: int = 24, per_group: int = 3):
    """Rows near their group's centre; targets = a part the centre predicts (the same map for every seed) and
    louder per-group noise that no image shows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 10))
    seen = centres @ np.random.default_rng(99).normal(size=(10, 3))
    y = np.concatenate([seen, 4.0 * rng.normal(size=(n_groups, noise_dims))], axis=1)
    x = np.repeat(centres, per_group, axis=0) + 0.1 * rng.normal(size=(n_groups * per_group, 10))
    groups = np.repeat([f"p{g}" for g in range(n_groups)], per_group)
    y = np.repeat(y, per_group, axis=0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), groups


def _own_prompt_share(cap: RidgeCaption, captions: torch.Tensor, y: torch.Tensor, groups: np.ndarray) -> float:
    """Mean share of the other groups' prompts that ``cap.match`` ranks below a row's own."""
    names, group_of = np.unique(groups, return_inverse=True)
    targets = cap.embed_target(torch.stack([y[group_of == g][0] for g in range(len(names))]))
    sim = cap.match(captions.unsqueeze(1), targets.unsqueeze(0))  # (rows, groups)
    own = sim[torch.arange(len(y)), torch.as_tensor(group_of)].unsqueeze(1)
    return float((sim < own).float().sum(1).mean() / (len(names) - 1))


def test_text_basis_keeps_the_text_directions_the_image_features_predict() -> None:
    """Cosines in the full text space are swamped by the noise no image shows; in a 3-dimensional CCA basis the
    held-out captions find their own group again. ``match`` is the cosine of the basis coordinates."""
    x, y, groups = _noisy_targets(n_groups=60, seed=2)
    plain, based = RidgeCaption(), RidgeCaption(text_basis=3)
    with pytest.raises(RuntimeError, match="fit"):
        based.embed_target(y)
    share_plain = _own_prompt_share(plain, plain.fit(x, y, groups, alphas=(0.01,)), y, groups)
    share_based = _own_prompt_share(based, based.fit(x, y, groups, alphas=(0.01,)), y, groups)
    assert share_based > 0.7 > share_plain + 0.05, (share_plain, share_based)
    assert based.basis.shape == (27, 3) and based(x).shape == y.shape
    coords = ((x - based.mean) / based.scale) @ based.weight + based.bias  # by hand from the saved buffers
    text = ((y - based.text_mean) / based.text_scale) @ based.basis
    torch.testing.assert_close(
        based.match(based(x), based.embed_target(y)), torch.nn.functional.cosine_similarity(coords, text, dim=-1)
    )
    assert set(based.state_dict()) - set(plain.state_dict()) == {"text_mean", "text_scale", "basis"}
    torch.testing.assert_close(plain.embed_target(y), y)  # no basis: the text space itself
    fresh = RidgeCaption(text_basis=3)
    fresh.load_state_dict(based.state_dict())
    torch.testing.assert_close(fresh(x), based(x))
    torch.testing.assert_close(fresh.embed_target(y), based.embed_target(y))
    with pytest.raises(ValueError, match="text_basis=40"):
        RidgeCaption(text_basis=40).fit(x, y, groups)


def test_held_out_captions_in_a_basis_are_no_better_than_a_new_prompts() -> None:
    """The basis is fitted to the rows too: an out-of-fold caption compared in the basis fitted on every row would
    meet its own prompt in directions chosen with that prompt, and look better than a new prompt's caption does
    (by about 0.1 of the share here). Each fold's captions come from a basis fitted without the fold."""
    gaps = []
    for seed in range(3):
        x, y, groups = _noisy_targets(n_groups=40, seed=seed)
        new_x, new_y, new_groups = _noisy_targets(n_groups=40, seed=100 + seed)
        cap = RidgeCaption(text_basis=3)
        held_out = _own_prompt_share(cap, cap.fit(x, y, groups, alphas=(0.01,)), y, groups)
        gaps.append(held_out - _own_prompt_share(cap, cap(new_x), new_y, new_groups))
    assert np.mean(gaps) < 0.02, gaps


def test_the_basis_size_and_ridge_are_chosen_by_the_grouped_cross_validation() -> None:
    """Three target directions carry to new groups: a 1-dimensional basis drops two of them, a 12-dimensional one
    adds noise directions fitted to the training groups. Among candidates the fit keeps the size the held-out folds
    rank best, and the map it keeps is the one a fit with that size alone gives."""
    x, y, groups = _noisy_targets(n_groups=60, seed=4)
    cap = RidgeCaption(text_basis=[1, 3, 12], basis_penalty=[0.3, 3.0])
    cap.fit(x, y, groups)
    assert cap.chosen["text_basis"] == 3 and cap.basis.shape == (27, 3), cap.chosen
    alone = RidgeCaption(text_basis=3, basis_penalty=cap.chosen["basis_penalty"])
    alone.fit(x, y, groups, alphas=(cap.chosen["alpha"],))
    torch.testing.assert_close(cap(x), alone(x))
    with pytest.raises(ValueError, match="must be 0 or sizes > 0"):
        RidgeCaption(text_basis=[0, 3])
    few = RidgeCaption(text_basis=[2, 64])  # 64 is more than 12 rows give: cut to fit, as a small --limit run needs
    few.fit(x[:12], y[:12], groups[:12])
    assert few.basis.shape[1] <= 11 and few.chosen["text_basis"] == few.basis.shape[1] and few(x).shape == y.shape
    with pytest.raises(ValueError, match="text_basis=64 exceeds .* or a list of candidates"):
        RidgeCaption(text_basis=64).fit(x[:12], y[:12], groups[:12])


def test_the_basis_fits_on_as_few_prompts_as_its_folds_allow() -> None:
    """Rows of one prompt share a target, so the canonical directions a fold gives are its prompts less one, not its
    rows less one (counting rows, a fold of one prompt standardised a constant target into NaN). Three prompts is
    the least a basis fits on (each fold's basis comes from the other two); two are refused with the fix named."""
    x, y, groups = _noisy_targets(n_groups=3, seed=5, per_group=4)
    cap = RidgeCaption(text_basis=[1, 16], basis_penalty=[1.0, 3.0])
    captions = cap.fit(x, y, groups)
    assert torch.isfinite(captions).all() and torch.isfinite(cap(x)).all()
    assert 1 <= cap.chosen["text_basis"] <= 2 and cap.basis.shape[1] == cap.chosen["text_basis"]
    two = np.isin(groups, np.unique(groups)[:2])
    with pytest.raises(ValueError, match="3 with a text basis.*caption_basis: 0"):
        RidgeCaption(text_basis=[1, 16]).fit(x[two], y[two], groups[two])
    assert torch.isfinite(RidgeCaption().fit(x[two], y[two], groups[two])).all()  # no basis: two prompts do


def test_pmi_form_of_the_concept_match_by_hand() -> None:
    concepts = torch.tensor([[0.5, 0.5, 0.0]])
    words = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    mask = torch.tensor([[True, True]])
    prior = torch.tensor([0.25, 0.5, 0.25])
    got = TSPMGS.concept_log_match(concepts, words, mask, prior)
    want = (np.log(0.5 / 0.25) + np.log(0.5 / 0.5)) / 2  # word 1 is twice as probable here as on average
    assert got.item() == pytest.approx(want, rel=1e-5)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register_concepts()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny-caption") / "images", n_prompts=12, per_prompt=5)


@pytest.mark.parametrize("basis", [0, 2, [1, 2]])
def test_the_head_trains_on_held_out_captions_and_scores_with_its_own_map_after(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch, basis: int | list[int]
) -> None:
    """While the gradient steps run, a training row's caption must be the out-of-fold one (what a new prompt gets),
    not the in-sample one; after training the bank serves none and the model computes it with its fitted map.
    With ``caption_basis``, captions and prompts meet through ``RidgeCaption.match`` (a cosine in the basis)."""
    seen: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    real_batch = FeatureBank.batch

    def spy(self, rows, view=0, prompt_rows=None):
        out = real_batch(self, rows, view, prompt_rows)
        if self.model.training:
            seen.append((rows.cpu().clone(), out.get("caption")))
        return out

    monkeypatch.setattr(FeatureBank, "batch", spy)
    config = tiny.tsp_caption_config(tmp_path, caption_basis=basis)
    result = train(config, out_dir=tmp_path / "model", dataset=data)
    model = result.model
    (first_rows, first_caption), seen = seen[0], seen[1:]
    assert first_caption is None and len(first_rows) == len(data)  # prefit reads every row's own features first
    assert model.caption.fitted and seen and all(c is not None for _, c in seen)

    monkeypatch.setattr(FeatureBank, "batch", real_batch)
    setup = prepare(config, data)
    bank = setup.bank
    everything = torch.arange(len(setup.table.images))
    feats = bank.batch(everything)
    in_sample = model.caption(model.caption_input(feats))
    trained_rows = torch.unique(torch.cat([r for r, _ in seen]))
    fit = torch.zeros(len(everything), dtype=torch.bool)
    fit[trained_rows] = True
    stand_in = model.prefit(feats, fit, list(setup.table.groups))["caption"]  # deterministic: the same fit again
    for rows, caption in seen:
        torch.testing.assert_close(caption, stand_in[rows])
    assert not torch.allclose(stand_in[fit], in_sample[fit], atol=1e-3)  # held out, not fitted to those rows
    torch.testing.assert_close(stand_in[~fit], in_sample[~fit])
    assert "caption" not in bank.image[0]

    target = model.caption_target(feats)
    width = model.caption_text(feats).shape[1]
    assert stand_in.shape[1] == target.shape[1] == width and all(c.shape[1] == width for _, c in seen)
    assert model.caption.chosen["text_basis"] == (model.caption.basis.shape[1] if basis else 0)
    stats = model.match_stats[1]
    match = model.caption.match(stand_in[fit], target[fit])
    torch.testing.assert_close(stats, torch.stack([match.mean(), match.std()]))  # the scale the term arrives in

    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert saved["caption.weight"].shape == model.caption.weight.shape and "concept_prior" in saved
    loaded = create_model(str(tmp_path / "model"))
    with torch.no_grad():
        want = model.eval().forward_head(feats)
        got = loaded.forward_head(feats)
    for dim in want:
        torch.testing.assert_close(got[dim], want[dim])


def test_alignment_moves_by_the_caption_term_in_level_units(tmp_path: Path, data) -> None:
    """``caption_gamma`` scales ``L (cos - centre) / spread``: alignment changes by exactly that, quality not at all."""
    model = train(tiny.tsp_caption_config(tmp_path), dataset=data).model
    feats = prepare(tiny.tsp_caption_config(tmp_path), data).bank.batch(torch.arange(6))
    with torch.no_grad():
        before = model.forward_head(feats)
        model.caption_gamma["alignment"] += 0.5
        after = model.forward_head(feats)
        centre, spread = model.match_stats[1]
        caption = model.caption(model.caption_input(feats))
        cos = model.caption.match(caption, model.caption_target(feats))
    torch.testing.assert_close(after["alignment"] - before["alignment"], 0.5 * 5 * (cos - centre) / spread)
    torch.testing.assert_close(after["quality"], before["quality"])


@pytest.mark.parametrize("run", ["weak views", "live"])
def test_tsp_mgs_without_closed_form_parts_trains_with_views_and_live(tmp_path: Path, data, run: str) -> None:
    """Only the instances that fit a part in closed form are refused below: the paper's TSP-MGS (no concept prior,
    no caption map; ``lite/tsp-mgs-sp``, the CLIP configs that fine-tune the encoder) trains as before."""
    cfg = tiny.tsp_caption_config(tmp_path, concept_pmi=False, caption_match=False)
    if run == "weak views":
        cfg = cfg.replace(train={"loss": "pairwise_ce", "stable_preference": {"enabled": True, "views": 1}})
    else:
        cfg = cfg.replace(train={"cache": "off"})
    result = train(cfg, dataset=data)
    assert not result.model.fits_in_closed_form and result.history


def test_caption_match_refuses_runs_it_cannot_serve(tmp_path: Path, data) -> None:
    sp = {"enabled": True, "views": 1, "switch_step": 2}
    cfg = tiny.tsp_caption_config(tmp_path).replace(train={"loss": "kl", "stable_preference": sp})
    with pytest.raises(ValueError, match="closed form.*extra views"):
        train(cfg, dataset=data)
    with pytest.raises(ValueError, match="closed form on cached features; this run encodes live"):
        train(tiny.tsp_caption_config(tmp_path / "live").replace(train={"cache": "off"}), dataset=data)
    with pytest.raises(ValueError, match="concept_pmi corrects the concept match"):
        train(tiny.tsp_caption_config(tmp_path / "b", concept_match=False), dataset=data)
    with pytest.raises(ValueError, match="caption_basis shapes the caption match"):
        train(tiny.tsp_caption_config(tmp_path / "c", caption_match=False, caption_basis=2), dataset=data)


@pytest.mark.parametrize("kind", ["perception", "generic"])
def test_alignment_levels_that_do_not_read_the_prompt(kind: str) -> None:
    """With ``prompt_kind: {alignment: perception | generic}`` and eq. 6 off, the learned terms of alignment see no
    prompt: without the match terms its score is the same under any prompt (only ``M`` and ``C`` may read it)."""
    dims = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]
    model = TSPMGS(
        TinyDualEncoder(), dims, n_patches=1, prompt_kind={"alignment": kind}, fine_grained=False, alpha=0.5
    ).eval()
    pixels = torch.stack([model.preprocess(image) for image in tiny_images(3)])
    with torch.no_grad():
        image = model.image_features(pixels)
        a = model.forward_head({**image, **model.text_features(["a red cube", "a cat", "two dogs in the snow"])})
        b = model.forward_head({**image, **model.text_features(["blue sky", "a car on a road", "x"])})
    torch.testing.assert_close(a["alignment"], b["alignment"])
    levels = model.text_features(["a cat"])[f"levels_{kind}"]
    assert levels.shape[1] == 5
    if kind == "generic":  # its own level prompts, not quality's
        assert not torch.allclose(levels, model.text_features(["a cat"])["levels_perception"])


def test_fitted_mix_is_the_best_of_the_mixes_on_the_training_rows(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``match_mix: fitted``: the ``r`` the trainer leaves in ``match_ratio`` is the one whose ``M + r C`` tells the
    training rows' own prompts from random others' best, computed here by hand from what ``fit_mix`` received (the
    out-of-fold captions of the training rows); alignment then moves by exactly ``gamma (M + r C)``; the mix is
    saved and reloaded."""
    calls = []
    real = TSPMGS.fit_mix

    def spy(self, features, fit, groups, captions):
        calls.append(
            (features, fit.clone(), list(groups), captions.clone(), real(self, features, fit, groups, captions))
        )
        return calls[-1][-1]

    monkeypatch.setattr(TSPMGS, "fit_mix", spy)
    cfg = tiny.tsp_caption_config(tmp_path, match_mix="fitted")
    model = train(cfg, out_dir=tmp_path / "model", dataset=data).model
    assert len(calls) == 1 and not model.caption_gamma
    feats, fit, groups, captions, chosen = calls[0]
    assert float(model.match_ratio) == chosen and chosen in MATCH_MIXES
    assert 0 < int(fit.sum()) < len(fit)  # the training rows only

    rows = fit.nonzero().squeeze(1)
    group = np.asarray(groups)[rows.numpy()]
    rng = np.random.default_rng(0)
    donors = rows[[rng.choice(np.flatnonzero(group != g)) for g in group]]
    (m_centre, m_spread), (c_centre, c_spread) = model.match_stats

    def level_units(prompt_rows: torch.Tensor) -> torch.Tensor:
        words, mask = feats["word_concepts"][prompt_rows], feats["words_mask"][prompt_rows]
        m = TSPMGS.concept_log_match(feats["concepts"][rows], words, mask, model.concept_prior)
        c = torch.nn.functional.cosine_similarity(captions, model.caption_target(feats)[prompt_rows], dim=-1)
        return torch.stack([5 * (m - m_centre) / m_spread, 5 * (c - c_centre) / c_spread])

    own, other = level_units(rows), level_units(donors)
    shares = {r: float(((own[0] + r * own[1]) > (other[0] + r * other[1])).float().mean()) for r in MATCH_MIXES}
    assert shares[chosen] == max(shares.values()) and len(set(shares.values())) > 1

    small = prepare(cfg, data).bank.batch(torch.arange(6))
    with torch.no_grad():
        before = model.forward_head(small)
        model.concept_gamma["alignment"] += 0.5
        after = model.forward_head(small)
        model.concept_gamma["alignment"] -= 0.5
        match, caption = model.match_terms(small)
    torch.testing.assert_close(after["alignment"] - before["alignment"], 0.5 * (match + chosen * caption))
    torch.testing.assert_close(after["quality"], before["quality"])
    loaded = create_model(str(tmp_path / "model"))
    assert float(loaded.match_ratio) == chosen
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_head(small)["alignment"], before["alignment"])
