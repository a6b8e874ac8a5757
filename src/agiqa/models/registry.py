"""One registry of models: cards (configs as data) and the method builders that turn a card into a model.

* ``register_method(name)`` registers ``builder(encoder, card) -> QualityModel`` for a method.
* Every ``*.yaml`` in ``agiqa/model_configs`` is a ``ModelCard``; users add their own with ``register_card``.
* ``create_model(name_or_path)`` accepts a registered name, ``local-dir:/path`` or a plain path to a folder
  holding ``config.yaml`` (a card) and ``model.safetensors`` (weights), which is the format ``agiqa train`` writes.

Discovery (``discover``, run on the first lookup): every module of the ``agiqa.models`` package is imported (a
method registers itself with ``@register_method`` when its module is imported) and every card of
``agiqa/model_configs`` is registered. Installed plugins are found the same way: a package named by an entry
point of the ``agiqa.methods`` group has each of its modules imported and the cards of its ``model_configs/``
folder registered. Adding a method is one file (``models/<name>.py``) and one card
(``model_configs/<name>.yaml``), in agiqa or in a plugin package.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import warnings
from collections.abc import Callable
from importlib import resources
from importlib.metadata import entry_points
from importlib.resources.abc import Traversable
from pathlib import Path

import torch

from agiqa._registry import Registry
from agiqa.encoders.factory import create_encoder
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.weights import load_weights as load_checked

PLUGIN_GROUP = "agiqa.methods"
"""Entry-point group of plugin packages that add methods (modules) and cards (``model_configs/*.yaml``)."""

MethodBuilder = Callable[..., QualityModel]
_discovered = False


def discover() -> None:
    """Register the methods and cards of agiqa and of every installed plugin, once (see module docstring)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    register_package("agiqa.models", resources.files("agiqa.model_configs"))
    for plugin in entry_points(group=PLUGIN_GROUP):
        try:
            register_package(plugin.module, resources.files(plugin.module) / "model_configs")
        except Exception as err:  # a broken plugin must not take the built-in models down with it
            warnings.warn(
                f"agiqa plugin {plugin.name!r} ({plugin.value}) failed to load, its models are unavailable: {err}",
                stacklevel=2,
            )


METHODS: Registry[MethodBuilder] = Registry("method", discover=discover)
CARDS: Registry[ModelCard] = Registry("model", discover=discover)
register_method = METHODS.register


def register_card(card: ModelCard) -> ModelCard:
    """Add a model card to the registry (``agiqa.load(card.name)`` then finds it)."""
    CARDS.add(card.name, card)
    return card


def register_package(package: str, cards: Traversable) -> None:
    """Import every module of ``package`` (methods register on import) and register the cards in ``cards``.

    Args:
        package: Dotted name of a package whose modules hold methods (``agiqa.models`` or a plugin's).
        cards: Folder of card YAML files (may be absent).
    """
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(root.__path__, prefix=f"{package}."):
        importlib.import_module(module.name)
    if cards.is_dir():
        for entry in sorted(cards.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".yaml"):
                register_card(ModelCard.from_yaml(Path(str(entry))))


def list_models(pattern: str = "*") -> list[ModelCard]:
    """Cards of the registered models whose name matches the glob ``pattern``."""
    return [CARDS.get(n) for n in CARDS.names() if fnmatch.fnmatch(n, pattern)]


def weights_path(card: ModelCard) -> Path | None:
    """Where the card's weights file is (package ``weights/`` for bare names), or None if it has none."""
    if card.weights is None:
        return None
    path = Path(card.weights)
    if not path.is_absolute():
        if card.source and Path(card.source).parent.joinpath(card.weights).exists():
            path = Path(card.source).parent / card.weights
        else:
            path = Path(str(resources.files("agiqa.weights").joinpath(card.weights)))
    return path


def resolve_card(name_or_path: str) -> ModelCard:
    """The card for a registered name, ``local-dir:/path``, or a folder with ``config.yaml``."""
    target = name_or_path.removeprefix("local-dir:")
    folder = Path(target).expanduser()
    if name_or_path.startswith("local-dir:") or folder.is_dir():
        config = folder / "config.yaml"
        if not config.is_file():
            raise FileNotFoundError(
                f"{folder}: not an agiqa model folder (no config.yaml); `agiqa train` writes config.yaml and "
                "model.safetensors into its output folder"
            )
        card = ModelCard.from_yaml(config)
        if card.weights is None and (folder / "model.safetensors").is_file():
            raise ValueError(
                f"{config} names no `weights:` but {folder / 'model.safetensors'} is beside it: the card was "
                "probably cut short (agiqa train writes `weights: model.safetensors` as its last line); restore "
                "that line or retrain, rather than score with untrained heads"
            )
        return card
    if name_or_path not in CARDS and _looks_like_a_path(name_or_path):
        raise FileNotFoundError(
            f"{name_or_path}: no such model folder ({folder.absolute()} does not exist); `agiqa train CONFIG --out "
            f"{name_or_path}` writes one, or name a registered model (`agiqa models` lists them)"
        )
    return CARDS.get(name_or_path)


def model_reference(name_or_path: str) -> str:
    """How a score table names the model: the registered name, or the model folder's absolute path."""
    target = name_or_path.removeprefix("local-dir:")
    folder = Path(target).expanduser()
    if name_or_path.startswith("local-dir:") or folder.is_dir():
        return str(folder.resolve())
    return name_or_path


def _looks_like_a_path(name: str) -> bool:
    return any(sep in name for sep in ("/", "\\")) or name.startswith((".", "~"))


def build_model_from_card(card: ModelCard) -> QualityModel:
    """The card's encoder (``encoder`` + ``encoder_args``) and method, heads as initialised (no weights loaded)."""
    try:
        encoder = create_encoder(card.encoder, **card.encoder_args)
    except TypeError as err:
        raise ValueError(
            f"{card.source or card.name}: encoder_args {card.encoder_args} do not fit {card.encoder!r}: {err}"
        ) from None
    model = METHODS.get(card.method)(encoder, card)
    model.card = card
    return model


def create_model(name_or_path: str, device: str | torch.device = "cpu", load_weights: bool = True) -> QualityModel:
    """Build a model from its card and load its trained weights (strictly, from safetensors; shapes checked).

    Args:
        name_or_path: Registered name, ``local-dir:/path`` or a model folder.
        device: Where to put the model.
        load_weights: False to keep the heads as initialised (for training from scratch).
    """
    card = resolve_card(name_or_path)
    model = build_model_from_card(card)
    path = weights_path(card) if load_weights else None
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(
                f"model {card.name!r}: weights file {path} is missing; train it with `agiqa train` or reinstall agiqa"
            )
        load_checked(model, path, f"model {card.name!r}")
    return model.to(device).eval()
