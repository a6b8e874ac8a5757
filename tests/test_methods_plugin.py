"""Adding a method is one file and one card: a toy plugin package, installed the way pip installs one (a package
and a ``.dist-info`` with an ``agiqa.methods`` entry point on ``sys.path``), found by the registry's discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

import _train_tiny as tiny
import agiqa
from _conformance import check_contract, check_gradients
from agiqa.models import registry

METHOD_FILE = '''"""Toy method: a learned multiple of the cosine of the pooled image and prompt embeddings."""

from collections.abc import Sequence

import torch

from agiqa.encoders.base import DualEncoder
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.heads import cosine
from agiqa.models.registry import register_method


class ToyCosine(QualityModel):
    default_loss = "mse"

    def __init__(self, encoder: DualEncoder, dimensions: Sequence[ScoreSpec], scale: float = 1.0) -> None:
        super().__init__(encoder, dimensions)
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_pooled": self.encoder.encode_image(pixel_values).pooled}

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"text_pooled": self.encoder.encode_text(list(prompts)).pooled}

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        score = self.scale * cosine(features["image_pooled"], features["text_pooled"])
        return {d.name: score for d in self.dimensions}


@register_method("toy-cosine")
def build_toy_cosine(encoder: DualEncoder, card: ModelCard) -> ToyCosine:
    return build_from_card(ToyCosine, encoder, card)
'''
CARD_FILE = """name: toy-cosine-tiny
method: toy-cosine
encoder: tiny
dimensions:
  - {name: alignment, low: -2.0, high: 2.0, needs_prompt: true}
method_args: {scale: 2.0}
"""


def install_plugin(site: Path, package: str, entry_point: str) -> None:
    """What ``pip install`` leaves behind: the package and its metadata with the entry point."""
    dist = site / f"{package}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.PLUGIN_GROUP}]\ntoy = {entry_point}\n")


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery as in a new process, into copies of the registries (restored afterwards)."""
    tiny.register()
    registry.discover()  # the built-ins, into the real registries, before they are copied
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry.METHODS, "_items", dict(registry.METHODS._items))
    monkeypatch.setattr(registry.CARDS, "_items", dict(registry.CARDS._items))


def test_a_plugin_adds_a_method_with_one_file_and_one_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    package = tmp_path / "toy_agiqa_plugin"
    (package / "model_configs").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A third-party agiqa method."""\n')
    (package / "cosine.py").write_text(METHOD_FILE)
    (package / "model_configs" / "toy-cosine-tiny.yaml").write_text(CARD_FILE)
    install_plugin(tmp_path, "toy_agiqa_plugin", "toy_agiqa_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert "toy-cosine-tiny" in [card.name for card in agiqa.list_models()]
    model = agiqa.create_model("toy-cosine-tiny")
    assert type(model).__name__ == "ToyCosine" and model.card.name == "toy-cosine-tiny"
    assert float(model.scale.detach()) == 2.0 and model.default_loss == "mse"
    check_contract(model.eval())
    check_gradients(model.train())
    assert "tsp-mgs" in registry.METHODS and "agiqa-lite" in registry.CARDS  # the built-ins are still there


def test_a_broken_plugin_warns_and_the_rest_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    install_plugin(tmp_path, "missing_agiqa_plugin", "missing_agiqa_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="plugin 'toy' .*failed to load"):
        names = registry.METHODS.names()
    assert "prefiqa" in names
