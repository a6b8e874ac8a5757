"""The faster inference path: the shipped class-name summaries, the ONNX image tower and choosing the runtime."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TinyDualEncoder
from agiqa.encoders import class_text, onnx_tower
from agiqa.encoders.fast import accelerate
from agiqa.encoders.lite import LiteEncoder, imagenet_class_prompts
from agiqa.encoders.onnx_tower import OnnxTower, tower_key

pytest.importorskip("onnxruntime", reason="the ONNX runtime is an install dependency: pip install onnxruntime")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGIQA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def small() -> LiteEncoder:
    """Every image-tower output (multilevel statistics, ImageNet concepts) at 64 px: the export is the same work."""
    return LiteEncoder(image_size=64, pooling="multilevel", imagenet_bridge=True)


@pytest.fixture(scope="module")
def exported(small: LiteEncoder, tmp_path_factory: pytest.TempPathFactory) -> OnnxTower:
    return OnnxTower.for_encoder(small, threads=1, cache_dir=tmp_path_factory.mktemp("onnx"))


def _pixels(encoder: LiteEncoder, n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (80, 90 + 5 * i, 3), dtype=np.uint8)) for i in range(n)]
    return torch.stack([encoder.preprocess(im) for im in images])


@pytest.mark.slow
def test_shipped_class_summaries_are_those_of_the_installed_minilm(small: LiteEncoder) -> None:
    prompts = imagenet_class_prompts()
    key = class_text.summaries_key(prompts, small.text_weights_digest())
    shipped = class_text._read(class_text.SHIPPED, key)
    assert shipped is not None, "rerun benchmarks/ship_class_text.py: the shipped file is for other MiniLM weights"
    with torch.no_grad():
        fresh = small.encode_text(prompts).summary
    # float32 sums in another order (another CPU, thread count or BLAS path) move single elements by ~1e-6 (1.03e-6
    # seen on a fresh machine); summaries of other MiniLM weights differ by orders of magnitude more
    torch.testing.assert_close(shipped, fresh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(small.class_text, torch.nn.functional.normalize(fresh, dim=-1), atol=1e-5, rtol=1e-5)


def test_summaries_for_other_weights_are_computed_once_then_read(private_cache: Path) -> None:
    calls = []

    def encode(texts: list[str]) -> torch.Tensor:
        calls.append(len(texts))
        return torch.arange(len(texts) * 3, dtype=torch.float32).reshape(len(texts), 3)

    first = class_text.text_summaries(["a", "b"], encode, "other-weights")
    again = class_text.text_summaries(["a", "b"], encode, "other-weights")
    assert calls == [2] and torch.equal(first, again)
    (file,) = (private_cache / "encoders" / "class_text").iterdir()
    file.write_bytes(file.read_bytes()[:50])  # truncated: recomputed, not trusted
    assert torch.equal(class_text.text_summaries(["a", "b"], encode, "other-weights"), first) and calls == [2, 2]
    class_text.text_summaries(["a", "c"], encode, "other-weights")  # other texts, other key
    assert calls == [2, 2, 2]


def test_onnx_tower_gives_the_eager_outputs(small: LiteEncoder, exported: OnnxTower) -> None:
    pixels = _pixels(small, 5)
    with torch.no_grad():
        eager = small._image_tower(pixels)
    fast = exported(pixels)
    assert [e is None for e in eager] == [f is None for f in fast] and all(f is not None for f in fast)
    for e, f in zip(eager, fast, strict=True):
        assert f.shape == e.shape and f.dtype == e.dtype
        # feature-map values reach 6 (ReLU6): fused kernels round differently by ~1e-5 there
        torch.testing.assert_close(f, e, atol=1e-4, rtol=1e-4)
    single = exported(pixels[3:4])
    for s, f in zip(single, fast, strict=True):  # the batch axis is dynamic and changes nothing
        torch.testing.assert_close(s, f[3:4], atol=1e-5, rtol=1e-5)


def test_encoder_uses_the_tower_for_inference_only(small: LiteEncoder, exported: OnnxTower) -> None:
    pixels = _pixels(small, 6)  # more than cpu_micro_batch: the micro-batches go through the fast tower too
    with torch.no_grad():
        eager = small.encode_image(pixels)
    small.fast_tower = exported
    try:
        calls = []
        original = exported.session().run
        exported._session.run = lambda *a, **k: calls.append(1) or original(*a, **k)
        with torch.inference_mode():
            fast = small.encode_image(pixels)
        assert len(calls) == 2
        torch.testing.assert_close(fast.pooled, eager.pooled, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast.concepts, eager.concepts, atol=1e-6, rtol=1e-4)
        grad = small.encode_image(pixels[:2].requires_grad_())  # autograd on: the eager tower, gradients flow
        assert len(calls) == 2 and grad.pooled.requires_grad
    finally:
        small.fast_tower = None
        exported._session = None


def test_the_graph_is_cached_by_what_it_depends_on(
    small: LiteEncoder, exported: OnnxTower, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = exported.path.parent
    monkeypatch.setattr(onnx_tower, "export_tower", lambda *a: pytest.fail("exported again though cached"))
    again = OnnxTower.for_encoder(small, threads=1, cache_dir=folder)
    assert again.path == exported.path
    key = tower_key(small)
    mean = small.image_tower._bn1.running_mean
    kept = mean.clone()
    mean.add_(1.0)
    try:
        assert tower_key(small) != key  # other weights, another graph
    finally:
        mean.copy_(kept)
    assert tower_key(small) == key
    assert tower_key(LiteEncoder(image_size=96)) != tower_key(LiteEncoder(image_size=64))


def test_tower_pickles_without_its_session(exported: OnnxTower) -> None:
    exported.session()
    copy = pickle.loads(pickle.dumps(exported))
    assert copy._session is None and copy.path == exported.path
    out = copy(torch.zeros(1, 3, 64, 64))
    assert copy._session is not None and len(out) == 3


@pytest.mark.slow
def test_a_damaged_graph_is_exported_again(small: LiteEncoder, tmp_path: Path) -> None:
    path = tmp_path / f"liteencoder-{tower_key(small)}.onnx"
    path.write_bytes(b"not an onnx graph")
    tower = OnnxTower.for_encoder(small, threads=1, cache_dir=tmp_path)
    assert tower.path == path and path.stat().st_size > 1_000_000
    assert len(tower(torch.zeros(1, 3, 64, 64))) == 3


def test_choosing_the_runtime() -> None:
    tiny = TinyDualEncoder()
    assert accelerate(tiny, "auto") == "eager" and accelerate(tiny, "eager") == "eager"
    with pytest.raises(ValueError, match="no exportable image tower"):
        accelerate(tiny, "onnx")
    with pytest.raises(ValueError, match="use one of"):
        accelerate(tiny, "tensorrt")
    lite = LiteEncoder(image_size=64)
    assert accelerate(lite, "auto", device="cuda:0") == "eager" and lite.fast_tower is None
    with pytest.raises(ValueError, match="runs on the CPU"):
        accelerate(lite, "onnx", device="cuda")
