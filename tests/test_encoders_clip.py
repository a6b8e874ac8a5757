"""The ``clip`` backend, on a tiny random checkpoint loaded through ``create_encoder`` like a user's download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil

from _tiny_checkpoints import save_tiny_clip
from agiqa.encoders import create_encoder
from agiqa.encoders.clip import CLIPEncoder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> CLIPEncoder:
    return create_encoder(f"clip:{clip_dir}")


def _pixels(encoder: CLIPEncoder, n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.stack(
        [encoder.preprocess(Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8))) for i in range(n)]
    )


def test_shapes_and_matches_transformers_features(clip: CLIPEncoder) -> None:
    pixels = _pixels(clip, 2)
    texts = ["lower", "a cat on a hill"]
    with torch.no_grad():
        img, txt = clip.encode_image(pixels), clip.encode_text(texts)
        ref_img = clip.model.get_image_features(pixel_values=pixels)
        batch = clip.tokenizer(texts, padding=True, return_tensors="pt")
        ref_txt = clip.model.get_text_features(**batch)
    assert clip.image_grid == (4, 4) and clip.image_size == 32 and clip.max_text_tokens == 77
    assert img.tokens.shape == (2, 16, 32) and img.pooled.shape == (2, clip.embed_dim) == (2, 16)
    assert txt.mask is not None and txt.mask.sum(1).tolist() == clip.text_token_counts(texts)
    ref_img = getattr(ref_img, "pooler_output", ref_img)
    ref_txt = getattr(ref_txt, "pooler_output", ref_txt)
    torch.testing.assert_close(img.pooled, ref_img)
    torch.testing.assert_close(txt.pooled, ref_txt)
    projected = clip.project_tokens(img.tokens, "image")
    assert projected.shape == (2, 16, clip.embed_dim)


def test_preprocessing_equals_transformers_image_processor(clip: CLIPEncoder, clip_dir: Path) -> None:
    processor = CLIPImageProcessorPil.from_pretrained(clip_dir)
    rng = np.random.default_rng(2)
    for shape in ((50, 90, 3), (97, 41, 3), (31, 33, 3)):  # wide, tall, smaller than the input size
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        expected = torch.from_numpy(processor(image, return_tensors="np")["pixel_values"][0])
        torch.testing.assert_close(clip.preprocess(image), expected)


def test_batch_size_invariance(clip: CLIPEncoder) -> None:
    pixels = _pixels(clip, 8)
    texts = ["lower", "", "a cat " * 10, "hello", "low", "er", "pig", "dog"]
    with torch.no_grad():
        img8, txt8 = clip.encode_image(pixels), clip.encode_text(texts)
        for i in (0, 1, 2, 7):
            img1, txt1 = clip.encode_image(pixels[i : i + 1]), clip.encode_text(texts[i : i + 1])
            torch.testing.assert_close(img8.pooled[i : i + 1], img1.pooled, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(txt8.pooled[i : i + 1], txt1.pooled, atol=1e-5, rtol=1e-5)


def test_long_text_is_truncated_to_77_tokens(clip: CLIPEncoder) -> None:
    long = "lower " * 100
    with pytest.warns(UserWarning, match="truncated"), torch.no_grad():
        out = clip.encode_text([long])
    assert out.tokens.shape[1] == 77


def test_freeze_fractions(clip_dir: Path) -> None:
    enc = create_encoder(f"clip:{clip_dir}")
    vision, text = enc.model.vision_model, enc.model.text_model
    enc.freeze(0.5, tower="image")  # 1 of 2 layers, with the embeddings
    assert not vision.embeddings.patch_embedding.weight.requires_grad
    assert not any(p.requires_grad for p in vision.encoder.layers[0].parameters())
    assert all(p.requires_grad for p in vision.encoder.layers[1].parameters())
    assert all(p.requires_grad for p in text.parameters())
    enc.freeze(1.0)
    assert not any(p.requires_grad for p in [*vision.parameters(), *text.parameters()])
    assert enc.model.visual_projection.weight.requires_grad and enc.model.text_projection.weight.requires_grad
    enc.train()
    assert not vision.encoder.layers[0].training and enc.model.visual_projection.training


def test_missing_weights_explain_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"hf download openai/clip-vit-base-patch32"):
        create_encoder("clip:openai/clip-vit-base-patch32", allow_download=False)
    with pytest.raises(FileNotFoundError, match="does not hold a loadable clip checkpoint"):
        create_encoder(f"clip:{tmp_path}")
    with pytest.raises(ValueError, match="needs a source"):
        create_encoder("clip")


def test_preprocessor_size_must_fit_the_vision_tower(tmp_path: Path) -> None:
    folder = save_tiny_clip(tmp_path / "clip")
    config = folder / "preprocessor_config.json"
    config.write_text(config.read_text().replace('"height": 32', '"height": 48').replace('"width": 32', '"width": 48'))
    with pytest.raises(ValueError, match="vision tower takes 32 px"):
        create_encoder(f"clip:{folder}")
