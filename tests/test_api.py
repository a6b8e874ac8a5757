"""``agiqa.load`` and ``Scorer``: inputs of every kind, invariance to batching, prompts, the differentiable path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import agiqa
from agiqa.api import Scorer, ScoreResult, load, scoring
from scoring_fixtures import write_images, write_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return load(str(model_dir))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("imgs"), 20)


def test_load_default_goes_through_the_constant(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setattr(scoring, "DEFAULT_MODEL", str(model_dir))
    scorer = agiqa.load()
    assert scorer.name == "test-tiny"
    assert not scorer.model.training


def test_load_unknown_name_says_what_is_known() -> None:
    with pytest.raises(KeyError, match="unknown model"):
        load("no-such-model-xyz")


def test_dimensions_carry_range_and_direction(scorer: Scorer) -> None:
    dims = {d.name: d for d in scorer.dimensions}
    assert set(dims) == {"quality", "alignment"}
    assert dims["alignment"].needs_prompt and not dims["quality"].needs_prompt
    assert (dims["alignment"].low, dims["alignment"].high, dims["alignment"].higher_is_better) == (-1.0, 1.0, True)


def test_scores_do_not_depend_on_batch_size_order_or_workers(scorer: Scorer, images: list[Path]) -> None:
    prompts = [f"prompt number {k % 3}" for k in range(len(images))]
    one = scorer.score(images, prompts, batch_size=1)
    many = scorer.score(images, prompts, batch_size=16)
    rev = scorer.score(images[::-1], prompts[::-1], batch_size=7, workers=1)
    for name in ("quality", "alignment"):
        np.testing.assert_allclose(one.scores[name], many.scores[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(one.scores[name], rev.scores[name][::-1], rtol=1e-5, atol=1e-6)
    assert all(one.ok) and len(one) == len(images)
    assert len(set(np.round(one.scores["quality"], 6))) > 1  # distinct images get distinct scores


def test_every_input_kind_gives_the_same_score(scorer: Scorer, tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    tensor = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    refs = [path, str(path), path.read_bytes(), Image.fromarray(arr), arr, tensor]
    result = scorer.score(refs, "a red fox")
    assert all(result.ok), result.errors
    for name in ("quality", "alignment"):
        np.testing.assert_allclose(result.scores[name], result.scores[name][0], rtol=1e-6)
    pixels = torch.stack([scorer.preprocess(path)] * 2)
    pre = scorer.score(pixels, "a red fox")
    np.testing.assert_allclose(pre.scores["quality"], result.scores["quality"][:2], rtol=1e-6)
    single = scorer.score(path, "a red fox")
    assert len(single) == 1 and single.images == [str(path)]


def test_one_bad_image_does_not_stop_the_batch(scorer: Scorer, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    mixed = scorer.score([images[0], bad, images[1]], "a cat", batch_size=3)
    clean = scorer.score([images[0], images[1]], "a cat", batch_size=2)
    assert list(mixed.ok) == [True, False, True]
    assert "not an image" in mixed.errors[1]
    assert np.isnan(mixed.scores["quality"][1])
    np.testing.assert_allclose(mixed.scores["quality"][[0, 2]], clean.scores["quality"], rtol=1e-6)


def test_no_prompt_scores_the_prompt_free_dimensions_and_warns(scorer: Scorer, images: list[Path]) -> None:
    result = scorer.score(images[:3], ["a dog", "", "   "])
    assert result.errors == ["", "", ""] and result.warnings[0] == ""
    for k in (1, 2):
        assert result.warnings[k] == "alignment not scored: no prompt"
        assert np.isnan(result.scores["alignment"][k]) and np.isfinite(result.scores["quality"][k])
    with_prompt = scorer.score(images[1], "a dog")
    np.testing.assert_allclose(result.scores["quality"][1], with_prompt.scores["quality"][0], rtol=1e-6)
    none = scorer.score(images[:2])  # prompts=None: the same as empty prompts
    assert none.ok.all() and np.isnan(none.scores["alignment"]).all() and np.isfinite(none.scores["quality"]).all()
    assert none.warnings == ["alignment not scored: no prompt"] * 2


def test_no_prompt_is_an_error_when_every_dimension_needs_one(model_dir: Path, images: list[Path]) -> None:
    scorer = load(str(model_dir))
    scorer.model.dimensions = tuple(replace(d, needs_prompt=True) for d in scorer.model.dimensions)
    result = scorer.score(images[:1], "")
    assert "no prompt: every dimension of the model (quality, alignment) needs one" in result.errors[0]
    assert np.isnan(result.scores["quality"][0])


def test_long_prompt_is_flagged_not_silent(scorer: Scorer, images: list[Path]) -> None:
    long = "one two three four five six seven eight nine"
    result = scorer.score(images[:2], [long, "short prompt"])
    assert "truncated: 9 tokens" in result.warnings[0] and "takes 6" in result.warnings[0]
    assert result.warnings[1] == "" and all(result.ok)


def test_text_tower_runs_once_per_unique_prompt(scorer: Scorer, images: list[Path], monkeypatch) -> None:
    calls: list[list[str]] = []
    original = scorer.model.text_features
    monkeypatch.setattr(scorer.model, "text_features", lambda p: calls.append(list(p)) or original(p))
    scorer.score(images[:4], ["a", "b", "a", "a"], batch_size=4)
    assert calls == [["a", "b"]]


def test_prompts_must_match_images(scorer: Scorer, images: list[Path]) -> None:
    with pytest.raises(ValueError, match="one per image"):
        scorer.score(images[:3], ["a", "b"])


def test_result_tables(scorer: Scorer, images: list[Path]) -> None:
    result = scorer.score(images[:2], "a cat")
    frame = result.to_pandas()
    assert list(frame.columns) == ["image", "prompt", "quality", "alignment", "error", "warning"]
    assert result.to_records()[1]["image"] == str(images[1])
    assert frame["quality"].tolist() == pytest.approx(result.scores["quality"].tolist())


def test_inference_runs_in_inference_mode(scorer: Scorer, images: list[Path]) -> None:
    seen: list[bool] = []
    hooks = [
        m.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
        for m in scorer.model.modules()
        if not list(m.children())
    ]
    try:
        scorer.score(images[:2], "x")
        scorer.score(torch.zeros(2, 3, 16, 16), "x")
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(seen)


def test_score_tensor_is_differentiable_and_matches_score(scorer: Scorer) -> None:
    x = torch.rand(2, 3, 16, 16)
    x = (x * 255).round() / 255  # exactly representable as uint8, so both paths see the same pixels
    x.requires_grad_(True)
    out = scorer.score_tensor(x, ["a cat", "a dog"])
    (out["quality"].sum() + out["alignment"].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    ref = scorer.score([x[0].detach(), x[1].detach()], ["a cat", "a dog"])
    np.testing.assert_allclose(out["quality"].detach().numpy(), ref.scores["quality"], rtol=1e-4, atol=1e-5)
    big = torch.rand(1, 3, 48, 32, requires_grad=True)  # resized and centre-cropped inside the graph
    scorer.score_tensor(big, "a cat")["quality"].sum().backward()
    assert big.grad.abs().sum() > 0
    assert not scorer.model.training


def test_scores_as_plain_floats(scorer: Scorer, images: list[Path]) -> None:
    result = scorer.score(images[:3], "a cat")
    assert isinstance(result.quality, list) and all(type(v) is float for v in result.quality)
    assert result.quality == result.scores["quality"].tolist() and len(result.alignment) == 3
    with pytest.raises(AttributeError, match="dimensions are quality, alignment"):
        result.sharpness  # noqa: B018
    with pytest.raises(TypeError, match=r"result\.<dimension>"):
        float(result)
    one = ScoreResult((result.dimensions[0],), ["a.png"], ["x"], {"quality": np.array([2.5])}, [""], [""])
    assert float(one) == 2.5
    assert result.to_records()[0]["quality"] == result.quality[0]  # the records are unchanged


def test_rank_unpacks_like_imagereward(scorer: Scorer, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    paths = [*images[:4], bad]
    ranking = scorer.rank(paths, "a cat")
    ranks, scores = ranking  # rank of each image (1 = best) and its score, in input order
    quality = scorer.score(paths, "a cat").quality
    np.testing.assert_allclose(scores, quality, rtol=1e-6)
    assert ranks[-1] == 5 and np.isnan(scores[-1])  # the image that failed comes last
    assert sorted(ranks) == [1, 2, 3, 4, 5]
    by_rank = [scores[ranks.index(k)] for k in range(1, 5)]
    assert by_rank == sorted(by_rank, reverse=True)
    assert ranking.best == str(paths[ranks.index(1)]) == ranking.images[0] and ranking.failed == 1
