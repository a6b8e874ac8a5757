"""Training config parsing: defaults, overrides and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agiqa.configs import find_config, shipped_configs
from agiqa.train.config import ConfigError, TrainConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = TrainConfig.from_yaml(write(tmp_path, "name: x\nmodel: tsp-mgs-lite\ntrain: {lr: 3e-6, betas: [0.8, 0.9]}\n"))
    assert cfg.train.lr == pytest.approx(3e-6)  # YAML reads 3e-6 as a string
    assert cfg.train.betas == (0.8, 0.9)
    assert cfg.train.freeze.fraction == 1.0 and cfg.data.dataset == "agiqa3k"


def test_yaml_off_means_cache_off(tmp_path: Path) -> None:
    cfg = TrainConfig.from_yaml(write(tmp_path, "name: x\nmodel: m\ntrain: {cache: off}\n"))
    assert cfg.train.cache == "off"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nmodel: m\ntrain: {lrr: 0.1}\n", "train.lrr"),
        ("name: x\nmodel: m\ntrain: {epochs: many}\n", "train.epochs must be int"),
        ("name: x\nmodel: m\ntrain: {loss: hinge}\n", "train.loss='hinge'"),
        ("name: x\nmodel: m\ntrain: {stable_preference: {views: 0}}\n", "train.stable_preference.views"),
        ("name: x\nmodel: m\ntrain: {betas: [0.9]}\n", "train.betas must have exactly 2"),
        ("model: m\n", "required key 'name'"),
        ("name: x\nmodel: {method: tsp-mgs}\n", "model lacks"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_replace_overrides_nested_keys(tmp_path: Path) -> None:
    cfg = TrainConfig.from_yaml(write(tmp_path, "name: x\nmodel: m\ntrain: {freeze: {fraction: 0.5}}\n"))
    new = cfg.replace(train={"freeze": {"tower": "image"}}, data={"limit": 5})
    assert new.train.freeze.fraction == 0.5 and new.train.freeze.tower == "image" and new.data.limit == 5
    assert cfg.data.limit is None


@pytest.mark.parametrize("name", list(shipped_configs()))
def test_shipped_configs_parse_and_name_registered_cards(name: str) -> None:
    from agiqa.train.setup import model_card

    card = model_card(TrainConfig.from_yaml(find_config(name)))
    assert card.dimensions and card.method


def test_shipped_configs_are_found_by_name_and_a_wrong_name_lists_them() -> None:
    assert {"lite/default", "lite/tsp-mgs", "tsp-mgs-clip-b32"} <= set(shipped_configs())
    assert find_config("lite/tsp-mgs.yaml") == shipped_configs()["lite/tsp-mgs"]
    with pytest.raises(FileNotFoundError, match="Did you mean 'lite/tsp-mgs'"):
        find_config("lite/tsp-mgz")


def test_encoder_args_reach_the_encoder_and_bad_ones_name_the_card(tmp_path: Path) -> None:
    from agiqa.train.setup import build_model

    section = {"card": "tsp-mgs-lite", "encoder_args": {"image_size": 256}}
    model = build_model(TrainConfig.from_dict({"name": "x", "model": section}, source="cfg.yaml"))
    assert model.encoder.image_size == 256 and model.card.encoder_args == {"image_size": 256}
    bad = {"card": "tsp-mgs-lite", "encoder_args": {"pooling_mode": "max"}}
    with pytest.raises(ValueError, match="encoder_args .*pooling_mode"):
        build_model(TrainConfig.from_dict({"name": "x", "model": bad}, source="cfg.yaml"))
