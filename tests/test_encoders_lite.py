"""The offline ``lite`` encoder: shapes, batch invariance, freezing, preprocessing, truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from agiqa.encoders import create_encoder
from agiqa.encoders.lite import LiteEncoder


@pytest.fixture(scope="module")
def lite() -> LiteEncoder:
    return create_encoder("lite")


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (180 + 7 * i, 240, 3), dtype=np.uint8)) for i in range(n)]


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_shapes_grid_and_mask(lite: LiteEncoder) -> None:
    pixels = torch.stack([lite.preprocess(im) for im in _images(2)])
    assert pixels.shape == (2, 3, 224, 224)
    with torch.no_grad():
        img = lite.encode_image(pixels)
        txt = lite.encode_text(["a cat", "a red bicycle leaning on a wall"])
    assert lite.image_grid == (7, 7)
    assert img.tokens.shape == (2, 49, lite.image_token_dim) and img.pooled.shape == (2, lite.embed_dim)
    assert txt.tokens.shape[-1] == lite.text_token_dim and txt.pooled.shape == (2, lite.embed_dim)
    assert txt.mask is not None and txt.mask.dtype == torch.bool
    assert txt.mask.sum(1).tolist() == lite.text_token_counts(["a cat", "a red bicycle leaning on a wall"])


def test_batch_size_invariance(lite: LiteEncoder) -> None:
    small = LiteEncoder(image_size=64)  # same weights and code path, 12x less compute than 224 px
    pixels = torch.stack([small.preprocess(im) for im in _images(8)])
    texts = ["a cat", "", "an oil painting of a lighthouse in a storm at night, highly detailed"] + ["dog"] * 5
    with torch.no_grad():
        img8, txt8 = small.encode_image(pixels), lite.encode_text(texts)
        for i in (0, 2, 7):
            img1, txt1 = small.encode_image(pixels[i : i + 1]), lite.encode_text(texts[i : i + 1])
            torch.testing.assert_close(img8.pooled[i : i + 1], img1.pooled, atol=1e-5, rtol=1e-5)
            # feature-map values reach 6 (ReLU6): conv kernels chosen per batch size differ by ~1e-5 there
            torch.testing.assert_close(img8.tokens[i : i + 1], img1.tokens, atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(txt8.pooled[i : i + 1], txt1.pooled, atol=1e-5, rtol=1e-5)
            n = txt1.tokens.shape[1]
            torch.testing.assert_close(txt8.tokens[i : i + 1, :n], txt1.tokens, atol=1e-5, rtol=1e-5)


def test_text_tower_is_the_pretrained_minilm(lite: LiteEncoder) -> None:
    # Mean-pooled MiniLM embeddings of paraphrases are close, of unrelated texts far (random weights fail).
    with torch.no_grad():
        out = lite.encode_text(["a photo of a cat", "a picture of a kitten", "quarterly stock market report"])
    mean = (out.tokens * out.mask.unsqueeze(-1)).sum(1) / out.mask.sum(1, keepdim=True)
    sim = torch.nn.functional.cosine_similarity(mean[0:1], mean[1:], dim=-1)
    assert sim[0] > 0.6 and sim[1] < 0.3


def test_projections_are_seeded(lite: LiteEncoder) -> None:
    again = LiteEncoder()
    assert again.fingerprint == lite.fingerprint
    assert LiteEncoder(seed=1).fingerprint != lite.fingerprint


def test_long_text_truncated_with_warning(lite: LiteEncoder) -> None:
    long = "word " * 400
    assert lite.text_token_counts([long])[0] > lite.max_text_tokens
    with pytest.warns(UserWarning, match="truncated"), torch.no_grad():
        out = lite.encode_text([long])
    assert out.tokens.shape[1] == lite.max_text_tokens


def test_freeze_fractions() -> None:
    enc = LiteEncoder()
    image_total, text_total = _trainable(enc.image_tower), _trainable(enc.text_tower)
    enc.freeze(1.0, tower="image")
    assert _trainable(enc.image_tower) == 0 and _trainable(enc.text_tower) == text_total
    assert enc.image_projection.weight.requires_grad
    enc.freeze(0.5, tower="text")  # 3 of 6 BERT layers + embeddings
    layers = enc.text_tower.encoder.layer
    assert not any(p.requires_grad for p in enc.text_tower.embeddings.parameters())
    assert (
        not layers[2].attention.self.query.weight.requires_grad and layers[3].attention.self.query.weight.requires_grad
    )
    enc.freeze(0.0)
    assert _trainable(enc.image_tower) == image_total and _trainable(enc.text_tower) == text_total
    enc.freeze(0.5, tower="image")
    enc.train()
    assert not enc.image_tower._bn0.training and enc.image_tower._blocks[-1].training  # frozen BN stays eval
    with pytest.raises(ValueError, match="fraction"):
        enc.freeze(1.5)
    with pytest.raises(ValueError, match="tower"):
        enc.freeze(0.5, tower="vision")


def test_preprocess_modes_and_aspect(lite: LiteEncoder) -> None:
    wide = Image.new("RGBA", (640, 100), (255, 0, 0, 128))
    gray = Image.new("L", (50, 80), 128)
    for image in (wide, gray):
        assert lite.preprocess(image).shape == (3, 224, 224)
    red = lite.preprocess(wide)
    assert red[0].mean() > 2.0 and red[1].mean() < -1.5  # red channel high, green low after normalisation


def test_lite_rejects_a_source() -> None:
    with pytest.raises(ValueError, match="takes no source"):
        create_encoder("lite:/some/dir")


@pytest.fixture(scope="module")
def lite_multilevel() -> LiteEncoder:
    return create_encoder("lite", pooling="multilevel", imagenet_bridge=True)


def test_multilevel_summary_is_what_pooled_projects(lite_multilevel: LiteEncoder) -> None:
    enc = lite_multilevel
    pixels = torch.stack([enc.preprocess(im) for im in _images(3)])
    with torch.no_grad():
        out = enc.encode_image(pixels)
        text = enc.encode_text(["a cat on a mat"])
    assert out.summary is not None and out.summary.shape == (3, enc.stats_dim + enc.text_token_dim)
    assert enc.stats_dim == 2 * (24 + 40 + 80 + 112 + 192 + 320 + 1280)
    torch.testing.assert_close(enc.project(out.summary, "image"), out.pooled)
    torch.testing.assert_close(enc.project(text.summary, "text"), text.pooled)
    # 14 layer-normalised blocks of unit norm, then the unit-norm semantic part
    torch.testing.assert_close(
        out.summary[:, : enc.stats_dim].norm(dim=-1), torch.full((3,), 14**0.5), rtol=1e-3, atol=0
    )
    torch.testing.assert_close(out.summary[:, enc.stats_dim :].norm(dim=-1), torch.ones(3))


def test_bridge_starts_in_the_text_space(lite_multilevel: LiteEncoder) -> None:
    """Untrained, an image's embedding is the text projection of its class-name mixture: stats weigh nothing."""
    weight = lite_multilevel.image_projection.weight
    assert torch.count_nonzero(weight[:, : lite_multilevel.stats_dim]) == 0
    torch.testing.assert_close(weight[:, lite_multilevel.stats_dim :], lite_multilevel.text_projection.weight)
    assert lite_multilevel.class_text.shape == (1000, lite_multilevel.text_token_dim)


def test_variants_have_their_own_fingerprint(lite: LiteEncoder, lite_multilevel: LiteEncoder) -> None:
    assert lite.fingerprint.startswith("lite@224/proj-")
    assert lite_multilevel.fingerprint.startswith("lite@224/multilevel+imagenet/proj-")


def test_bad_pooling_and_token_projection_errors(lite_multilevel: LiteEncoder) -> None:
    with pytest.raises(ValueError, match="pooling='max'"):
        create_encoder("lite", pooling="max")
    with pytest.raises(NotImplementedError, match="pooling='multilevel'"):
        lite_multilevel.project_tokens(torch.zeros(1, 4, 1280), "image")


def test_bridge_matches_real_images_to_their_own_prompts(lite_multilevel: LiteEncoder, agiqa3k_root) -> None:
    """Zero-shot, on real AGIQA-3K images: an image is closer to its own prompt than to another image's."""
    import pandas as pd

    table = pd.read_csv(agiqa3k_root / "data.csv")
    rows = table[table["name"].str.startswith(("midjourney", "sd1.5", "DALLE"))].groupby("prompt").head(1)
    rows = rows.sample(n=24, random_state=0)
    with torch.no_grad():
        pixels = torch.stack(
            [lite_multilevel.preprocess(Image.open(agiqa3k_root / "images" / n)) for n in rows["name"]]
        )
        images = torch.nn.functional.normalize(lite_multilevel.encode_image(pixels).pooled, dim=-1)
        texts = torch.nn.functional.normalize(lite_multilevel.encode_text(list(rows["prompt"])).pooled, dim=-1)
    sims = images @ texts.T
    own, other = sims.diag(), (sims.sum(1) - sims.diag()) / (len(rows) - 1)
    assert float((own > other).float().mean()) >= 0.6, (own, other)


def test_freezing_the_tower_freezes_the_bridge_classifier(lite_multilevel: LiteEncoder) -> None:
    lite_multilevel.freeze(1.0, "both")
    trainable = {n for n, p in lite_multilevel.named_parameters() if p.requires_grad}
    assert trainable == {"image_projection.weight", "text_projection.weight"}
