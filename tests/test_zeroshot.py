"""Zero-shot scores (CLIPScore, CLIP-IQA, TSP-MGS level prompts) over a tiny CLIP checkpoint and over lite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.nn.functional import cosine_similarity

from _tiny_checkpoints import save_tiny_clip
from agiqa.encoders.lite import LiteEncoder
from agiqa.models.registry import METHODS, create_model, list_models

PROMPTS = ["a cat", "lower low", "a dog on a hill", "pig"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=3)


def _model_over(card_name: str, encoder: str, folder: Path):
    """The packaged card ``card_name`` with its encoder swapped, loaded from a model folder like a user's."""
    data = next(c for c in list_models() if c.name == card_name).to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({**data, "encoder": encoder}))
    return create_model(str(folder))


def _pixels(model, n: int) -> torch.Tensor:
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (40, 36 + i, 3), dtype=np.uint8)) for i in range(n)]
    return torch.stack([model.preprocess(im) for im in images])


def _embed(model, texts: list[str]) -> torch.Tensor:
    return model.encoder.encode_text(texts).pooled


def test_clipscore_is_hessel_formula(clip_dir: Path, tmp_path: Path) -> None:
    model = _model_over("clipscore-lite", f"clip:{clip_dir}", tmp_path / "m")
    pixels = _pixels(model, 4)
    with torch.no_grad():
        scores = model(pixels, PROMPTS)["alignment"]
        image = model.encoder.encode_image(pixels).pooled
        cos = cosine_similarity(image, _embed(model, ["A photo depicts " + p for p in PROMPTS]), dim=-1)
    torch.testing.assert_close(scores, 2.5 * cos.clamp_min(0))
    assert (scores >= 0).all() and (scores <= 2.5).all()


def test_clip_iqa_is_antonym_softmax(clip_dir: Path, tmp_path: Path) -> None:
    model = _model_over("clip-iqa-lite", f"clip:{clip_dir}", tmp_path / "m")
    pixels = _pixels(model, 4)
    with torch.no_grad():
        scores = model(pixels, PROMPTS)["quality"]
        image = model.encoder.encode_image(pixels).pooled
        anchors = _embed(model, ["Good photo.", "Bad photo."])
        logits = 100 * cosine_similarity(image[:, None], anchors[None], dim=-1)
    torch.testing.assert_close(scores, logits.softmax(-1)[:, 0])
    assert ((scores >= 0) & (scores <= 1)).all()
    with torch.no_grad():  # the prompt plays no part in CLIP-IQA
        torch.testing.assert_close(model(pixels, ["x", "y", "z", "w"])["quality"], scores)


def test_level_prompts_are_tsp_mgs_eq_3_and_5(clip_dir: Path, tmp_path: Path) -> None:
    model = _model_over("tsp-mgs-zeroshot-lite", f"clip:{clip_dir}", tmp_path / "m")
    pixels = _pixels(model, 2)
    prompts = ["a cat", "pig"]
    with torch.no_grad():
        scores = model(pixels, prompts)
        image = model.encoder.encode_image(pixels).pooled
        quality_texts = [f"A photo of {a} quality." for a in ("bad", "poor", "fair", "good", "perfect")]
        levels = _embed(model, quality_texts)
        adverbs = ("badly", "poorly", "fairly", "well", "perfectly")
        align = torch.stack([_embed(model, [f"A photo that {a} matches {p}." for a in adverbs]) for p in prompts])
    grades = torch.arange(1, 6, dtype=torch.float32)
    for name, table in (("quality", levels[None].expand(2, -1, -1)), ("alignment", align)):
        p = (100 * cosine_similarity(image[:, None], table, dim=-1)).softmax(-1)
        torch.testing.assert_close(scores[name], 5 / 4 * ((p * grades).sum(-1) - 1))
        assert ((scores[name] >= 0) & (scores[name] <= 5)).all()


def test_lite_cards_build_and_are_batch_invariant() -> None:
    encoder = LiteEncoder(image_size=64)  # the lite weights at a small input size, to stay fast
    for name in ("clipscore-lite", "clip-iqa-lite", "tsp-mgs-zeroshot-lite"):
        card = next(c for c in list_models() if c.name == name)
        assert card.encoder == "lite" and "untrained" in card.description and card.weights is None
        model = METHODS.get(card.method)(encoder, card).eval()
        pixels = _pixels(model, 3)
        with torch.no_grad():
            full = model(pixels, PROMPTS[:3])
            single = model(pixels[2:3], PROMPTS[2:3])
        assert set(full) == set(card.dimension_names)
        for dim in full:
            assert full[dim].shape == (3,) and torch.isfinite(full[dim]).all()
            torch.testing.assert_close(full[dim][2:3], single[dim], atol=1e-5, rtol=1e-5)


def test_create_model_builds_a_lite_card() -> None:
    model = create_model("clip-iqa-lite")
    assert type(model.encoder).__name__ == "LiteEncoder" and not model.training
    assert [d.name for d in model.dimensions] == ["quality"]


def test_clip_cards_name_the_download() -> None:
    for name in ("clipscore-clip-b32", "clip-iqa-clip-b32", "tsp-mgs-zeroshot-clip-b32"):
        card = next(c for c in list_models() if c.name == name)
        assert card.encoder == "clip:openai/clip-vit-base-patch32" and "hf download" in card.description
    with pytest.raises(FileNotFoundError, match="hf download openai/clip-vit-base-patch32"):
        create_model("clipscore-clip-b32")


def test_bad_method_args_name_the_card(tmp_path: Path, clip_dir: Path) -> None:
    data = next(c for c in list_models() if c.name == "clip-iqa-lite").to_dict()
    data["method_args"] = {"antonyms": ["Good photo."]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**data, "encoder": f"clip:{clip_dir}"}))
    with pytest.raises(ValueError, match="antonyms"):
        create_model(str(tmp_path))
