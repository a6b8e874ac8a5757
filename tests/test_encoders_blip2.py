"""The ``blip2`` backend, on a tiny random BLIP-2 ITM checkpoint loaded through ``create_encoder``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.functional import normalize
from transformers import BlipImageProcessorPil

from _tiny_checkpoints import save_tiny_blip2
from agiqa.encoders import create_encoder
from agiqa.encoders.blip2 import Blip2Encoder


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_blip2(tmp_path_factory.mktemp("tiny-blip2"))


@pytest.fixture(scope="module")
def blip2(blip2_dir: Path) -> Blip2Encoder:
    return create_encoder(f"blip2:{blip2_dir}")


def _pixels(encoder: Blip2Encoder, n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.stack(
        [encoder.preprocess(Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8))) for i in range(n)]
    )


def test_shapes_and_qformer_exposed(blip2: Blip2Encoder) -> None:
    with torch.no_grad():
        img = blip2.encode_image(_pixels(blip2, 2))
        txt = blip2.encode_text(["a cat", "a photo of two dogs"])
    assert img.tokens.shape == (2, 1 + 16, 32) and blip2.image_grid is None  # class token + 4x4 patches
    assert img.pooled.shape == (2, 16) and txt.pooled.shape == (2, 16)
    assert txt.mask is not None and txt.mask.sum(1).tolist() == blip2.text_token_counts(
        ["a cat", "a photo of two dogs"]
    )
    assert blip2.qformer_config.hidden_size == 32 and blip2.query_tokens.shape == (1, 4, 32)


def test_features_match_transformers_itc(blip2: Blip2Encoder) -> None:
    pixels = _pixels(blip2, 1)
    batch = blip2.tokenizer(["a red bicycle"], return_tensors="pt")
    with torch.no_grad():
        ref = blip2.model(pixel_values=pixels, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        txt = blip2.encode_text(["a red bicycle"])
        img = blip2.encode_image(pixels)
        queries = normalize(blip2.encode_queries(img.tokens), dim=-1)
    torch.testing.assert_close(normalize(txt.pooled, dim=-1), ref.text_embeds)
    torch.testing.assert_close(queries, ref.image_embeds)
    torch.testing.assert_close(img.pooled, queries.mean(dim=1))


def test_preprocessing_squashes_without_crop(blip2: Blip2Encoder, blip2_dir: Path) -> None:
    half = Image.new("RGB", (100, 40), (0, 0, 0))
    half.paste((255, 255, 255), (50, 0, 100, 40))  # right half white
    pixels = blip2.preprocess(half)
    assert pixels.shape == (3, 32, 32) and not blip2.transform.center_crop
    assert pixels[0, :, :14].max() < 0 < pixels[0, :, 18:].min()  # both halves survive: nothing was cropped
    expected = BlipImageProcessorPil.from_pretrained(blip2_dir)(half, return_tensors="np")["pixel_values"][0]
    torch.testing.assert_close(pixels, torch.from_numpy(expected))


def test_batch_size_invariance(blip2: Blip2Encoder) -> None:
    pixels = _pixels(blip2, 8)
    texts = ["a cat", "", "a very long sentence " * 4, "dog", "x", "y", "z", "w"]
    with torch.no_grad():
        img8, txt8 = blip2.encode_image(pixels), blip2.encode_text(texts)
        for i in (0, 1, 2):
            img1, txt1 = blip2.encode_image(pixels[i : i + 1]), blip2.encode_text(texts[i : i + 1])
            torch.testing.assert_close(img8.pooled[i : i + 1], img1.pooled, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(txt8.pooled[i : i + 1], txt1.pooled, atol=1e-5, rtol=1e-5)


def test_freeze_fractions(blip2_dir: Path) -> None:
    enc = create_encoder(f"blip2:{blip2_dir}")
    enc.freeze(1.0, tower="image")
    assert not any(p.requires_grad for p in enc.model.vision_model.parameters())
    assert all(p.requires_grad for p in enc.model.qformer.parameters())
    enc.freeze(0.5, tower="text")
    layers = enc.model.qformer.encoder.layer
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    assert enc.query_tokens.requires_grad and enc.model.text_projection.weight.requires_grad


def test_wrong_or_missing_checkpoint(tmp_path: Path, blip2_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hf download Salesforce/blip2-itm-vit-g"):
        create_encoder("blip2:Salesforce/blip2-itm-vit-g", allow_download=False)
    from _tiny_checkpoints import save_tiny_clip

    clip_dir = save_tiny_clip(tmp_path / "clip")
    with pytest.raises(ValueError, match="Blip2ForImageTextRetrieval"):
        create_encoder(f"blip2:{clip_dir}")
