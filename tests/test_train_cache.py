"""Feature cache: a second run reads everything from disk and never calls the encoder on the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import _train_tiny as tiny
from agiqa.models.card import ModelCard
from agiqa.train import train
from agiqa.train.augment import hflip_center_crop
from agiqa.train.cache import FeatureStore, cached_image_features, image_namespace, text_namespace


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images", n_prompts=3, per_prompt=3)


def run(tmp_path: Path, data, cache: str = "auto"):
    cfg = tiny.train_config(tmp_path, "t", 0.0, epochs=2, batch_size=4, cache=cache)
    return train(cfg, dataset=data)


def test_second_run_does_not_call_the_encoder(tmp_path: Path, data) -> None:
    first = run(tmp_path, data)
    n = len(data.samples)
    # each namespace encodes one probe image / prompt, then every image and distinct prompt once
    assert first.model.encoder.image_calls == 1 + n
    assert first.model.encoder.text_calls == 1 + len(data.prompts)
    assert first.cache_misses == n + len(data.prompts)
    second = run(tmp_path, data)
    assert second.cache_misses == 0
    assert second.model.encoder.image_calls == 1 and second.model.encoder.text_calls == 1
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(v, second.model.state_dict()[k])


def test_cache_off_encodes_every_step(tmp_path: Path, data) -> None:
    result = run(tmp_path, data, cache="off")
    assert not result.cached and result.model.encoder.image_calls >= 2 * len(data.samples)


def test_views_are_separate_entries_and_keyed_by_content(tmp_path: Path, data) -> None:
    model = tiny.TinyModel(tiny.TinyEncoder(), ModelCard.from_dict({**tiny.tiny_model_section(), "name": "t"}))
    images = [s.image for s in data.samples[:3]]
    orig, store = cached_image_features(model, images, tmp_path)
    flipped, store2 = cached_image_features(model, images, tmp_path, view="hf", transform=hflip_center_crop(0.9))
    assert store.misses == 3 and store2.misses == 3
    assert not torch.allclose(orig["image_pooled"], flipped["image_pooled"])
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(images[0]).read_bytes())  # same bytes, other path: a hit
    again, store3 = cached_image_features(model, [str(copy)], tmp_path)
    assert store3.hits == 1 and store3.misses == 0
    torch.testing.assert_close(again["image_pooled"][0], orig["image_pooled"][0])


def test_namespace_follows_the_features_not_the_head(data) -> None:
    card = ModelCard.from_dict({**tiny.tiny_model_section(), "name": "t"})
    a, b = tiny.TinyModel(tiny.TinyEncoder(seed=0), card), tiny.TinyModel(tiny.TinyEncoder(seed=0), card)
    with torch.no_grad():
        b.heads["quality"][0].weight.add_(1.0)
    assert image_namespace(a) == image_namespace(b) and text_namespace(a) == text_namespace(b)
    other = tiny.TinyModel(tiny.TinyEncoder(seed=1), card)
    assert image_namespace(a) != image_namespace(other)


def test_store_round_trip_is_float16(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "ns")
    x = torch.tensor([1.0 / 3.0, 2.0])
    store.put({"k": {"x": x, "mask": torch.tensor([True, False])}})
    got = FeatureStore(tmp_path, "ns").get(["k", "missing"])
    assert list(got) == ["k"] and got["k"]["mask"].dtype == torch.bool
    torch.testing.assert_close(got["k"]["x"], store.round_trip(x))
