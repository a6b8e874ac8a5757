"""The packaged default model: loads offline from its card, and its alignment uses the prompt."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from agiqa.models.registry import create_model, resolve_card

REPO = Path(__file__).resolve().parents[1]


def test_card_has_provenance_and_measured_metrics() -> None:
    card = resolve_card("agiqa-lite")
    assert card.dimension_names == ("quality", "alignment")
    assert card.trained_on and "AGIQA-3K" in card.trained_on
    assert card.weights == "agiqa-lite.safetensors"
    assert {"quality_srcc", "alignment_srcc"} <= set(card.metrics)
    weights = REPO / "src" / "agiqa" / "weights" / card.weights
    assert weights.stat().st_size <= 25 * 2**20


def test_card_metrics_are_the_protocol_figures_of_the_shipped_recipe() -> None:
    """What ``benchmarks/train_default.py`` copies into the card arrives there: the mean figures of the protocol
    result of the config it names, which must train as ``lite/default`` does (it exits when they differ)."""
    spec = importlib.util.spec_from_file_location("train_default", REPO / "benchmarks" / "train_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected, source = module.protocol_metrics(module.PROTOCOL_CONFIG, module.CONFIG)
    card = resolve_card("agiqa-lite")
    assert {k: card.metrics[k] for k in expected} == expected
    assert source in card.description


def test_card_speed_is_the_benchmarks_end_to_end_figure() -> None:
    """The speed ``agiqa models`` shows is what ``benchmarks/bench_score.py`` measured end to end on the default
    runtime (copied by ``train_default.py``), not the forward-only figure or another runtime's."""
    spec = importlib.util.spec_from_file_location("train_default", REPO / "benchmarks" / "train_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bench = json.loads(module.SPEED.read_text())
    card = resolve_card("agiqa-lite")
    assert card.speed == module.measured_speed()
    assert card.speed["images_per_s"] == bench["end_to_end_images_per_s"][bench["default_runtime"]]
    assert bench["default_runtime"] in card.speed["how"] and "score_throughput.json" in card.speed["source"]


@pytest.mark.slow
def test_alignment_falls_with_another_images_prompt(agiqa3k_root: Path) -> None:
    """Scores of real images with their own prompt vs the prompt of an unrelated image."""
    table = pd.read_csv(agiqa3k_root / "data.csv")
    rows = table[table["name"].str.startswith(("midjourney", "sd1.5", "sdxl", "DALLE"))]
    rows = rows.groupby("prompt").head(1).sample(n=12, random_state=0)
    model = create_model("agiqa-lite")
    with torch.no_grad():
        pixels = torch.stack(
            [model.preprocess(Image.open(agiqa3k_root / "images" / n).convert("RGB")) for n in rows["name"]]
        )
        own = model(pixels, list(rows["prompt"]))["alignment"]
        shuffled = model(pixels, list(rows["prompt"].iloc[list(range(6, 12)) + list(range(6))]))["alignment"]
    assert float((own - shuffled).mean()) > 0.05, (own, shuffled)
    assert float((own > shuffled).float().mean()) >= 0.6
