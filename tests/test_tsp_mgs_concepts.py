"""TSP-MGS's concept-level match term and the ``fine_grained`` switch: what each part receives and gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from agiqa.encoders import create_encoder
from agiqa.models.card import ScoreSpec
from agiqa.models.tsp_mgs import TSPMGS
from agiqa.train.cache import EncoderMemo

DIMS = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]


@pytest.fixture(scope="module")
def model() -> TSPMGS:
    encoder = create_encoder("lite", pooling="multilevel", imagenet_bridge=True)
    return TSPMGS(encoder, DIMS, n_patches=1, project_in_head=True, concept_match=True, alpha="learned").eval()


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (240, 300, 3), dtype=np.uint8))


def test_log_match_by_hand() -> None:
    concepts = torch.tensor([[0.5, 0.5, 0.0]])
    words = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    got = TSPMGS.concept_log_match(concepts, words, mask)
    want = (np.log(0.5) + np.log(1e-6)) / 2  # the third word is padding; an impossible word is floored at 1e-6
    assert got.shape == (1,) and got.item() == pytest.approx(want, rel=1e-5)


def test_features_are_distributions_per_image_and_word(model: TSPMGS) -> None:
    with torch.no_grad():
        image = model.image_features(torch.stack([model.preprocess(_image(i)) for i in range(2)]))
        text = model.text_features(["a red apple on a table", "dog"])
    assert image["concepts"].shape == (2, 1000)
    torch.testing.assert_close(image["concepts"].sum(-1), torch.ones(2))
    assert text["word_concepts"].shape == (2, model.max_words, 1000)
    sums = text["word_concepts"].sum(-1)
    torch.testing.assert_close(sums[text["words_mask"]], torch.ones(7))
    assert (sums[~text["words_mask"]] == 0).all()


def test_a_word_lands_on_its_imagenet_class(model: TSPMGS) -> None:
    """The text tower maps a class's own name onto that class: the mapping the term relies on."""
    with torch.no_grad():
        q = model.text_features(["goldfish", "volcano"])["word_concepts"][:, 0]
    assert q.argmax(-1).tolist() == [1, 980]  # ImageNet indices of goldfish and volcano


def test_untrained_term_leaves_eq7_and_gamma_moves_only_alignment(model: TSPMGS) -> None:
    pixels = torch.stack([model.preprocess(_image(i)) for i in range(3)])
    with torch.no_grad():
        feats = {**model.image_features(pixels), **model.text_features(["a cat", "a volcano", "a car"])}
        before = model.forward_head(feats)
        model.concept_gamma["alignment"].fill_(2.0)
        after = model.forward_head(feats)
        model.concept_gamma["alignment"].zero_()
        match = TSPMGS.concept_log_match(feats["concepts"], feats["word_concepts"], feats["words_mask"])
    torch.testing.assert_close(after["quality"], before["quality"])
    torch.testing.assert_close(after["alignment"] - before["alignment"], 2.0 * match)
    assert set(model.concept_gamma) == {"alignment"}


def test_the_feature_cache_keeps_the_concepts(model: TSPMGS, tmp_path) -> None:
    """Training reads concepts back from the encoder cache: they must arrive as the encoder computed them."""
    pixels = torch.stack([model.preprocess(_image(i)) for i in range(2)])
    with torch.no_grad():
        direct = model.image_features(pixels)["concepts"]
        with EncoderMemo(model.encoder, tmp_path):
            first = model.image_features(pixels)["concepts"]
        with EncoderMemo(model.encoder, tmp_path) as memo:
            again = model.image_features(pixels)["concepts"]
    assert memo.store.hits == 4 and memo.store.misses == 0
    torch.testing.assert_close(first, direct, atol=1e-3, rtol=0)
    torch.testing.assert_close(again, first)


def test_fine_grained_off_makes_quality_prompt_free(model: TSPMGS) -> None:
    free = TSPMGS(model.encoder, DIMS, n_patches=1, project_in_head=True, fine_grained={"quality": False}).eval()
    pixels = torch.stack([model.preprocess(_image(0))] * 2)
    with torch.no_grad():
        image = free.image_features(pixels)
        a = free.forward_head({**image, **free.text_features(["a cat", "a sunset over the sea, oil painting"])})
    # two rows of one batch may take other float32 kernel paths (last-bit differences on some CPUs): a quality that
    # read the prompt would move as much as the alignment does
    torch.testing.assert_close(a["quality"][0], a["quality"][1], atol=1e-5, rtol=0)
    assert abs(float(a["alignment"][0] - a["alignment"][1])) > 1e-3
    with pytest.raises(ValueError, match=r"fine_grained names \['style'\]"):
        TSPMGS(model.encoder, DIMS, fine_grained={"style": False})


def test_concept_match_needs_a_concept_vocabulary() -> None:
    with pytest.raises(ValueError, match="concept vocabulary"):
        TSPMGS(create_encoder("lite"), DIMS, concept_match=True)
