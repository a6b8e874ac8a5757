"""What models are registered here and whether each can run on this machine: ``model_info()``, and the check every
command runs on the model it is given before loading it: ``model_card()``.

One record per card, as ``agiqa models --json`` prints it and ``GET /models`` serves it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from agiqa.configs import shipped_configs
from agiqa.encoders.factory import parse_encoder_spec
from agiqa.models.card import ModelCard
from agiqa.models.reference import card_reference
from agiqa.models.registry import list_models, resolve_card, weights_path
from agiqa.models.state import UNTRAINED, USABLE, WEIGHTS_MISSING, UntrainedModelError, model_state, untrained_message


def encoder_weights(spec: str) -> tuple[str, bool]:
    """What encoder weights a spec needs and whether they are on this machine (hub ids: the local HF cache)."""
    backend, source = parse_encoder_spec(spec)
    if source is None:
        return f"{backend}: shipped with its pip packages", True
    folder = Path(source).expanduser()
    if folder.exists() or folder.is_absolute() or source.startswith("."):
        return f"{backend}: folder {source}", folder.is_dir()
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    except Exception:  # a malformed hub id is simply not present
        cached = False
    return f"{backend}: hub {source} (local cache)", cached


def model_card(name_or_path: str, allow_untrained: bool = False) -> ModelCard:
    """The card of a model that may score, read without building the model (commands check it before loading).

    Args:
        name_or_path: A registered name, ``local-dir:/path`` or a model folder.
        allow_untrained: Accept a model whose state is ``untrained`` (see ``agiqa.models.state``).

    Raises:
        KeyError: Unknown name (the message lists close matches).
        FileNotFoundError: A model folder that does not exist, or weights that the card names but are not here.
        UntrainedModelError: The model is untrained and ``allow_untrained`` is False.
    """
    card = resolve_card(name_or_path)
    state = model_state(card)
    if state == WEIGHTS_MISSING:
        raise FileNotFoundError(
            f"model {name_or_path!r}: weights file {weights_path(card)} is missing; train it with `agiqa train` or "
            "reinstall agiqa"
        )
    if state == UNTRAINED and not allow_untrained:
        configs = training_configs(card)
        raise UntrainedModelError(untrained_message(card, name_or_path, configs[0] if configs else "CONFIG"))
    return card


def training_configs(card: ModelCard) -> list[str]:
    """Shipped training configs whose model is the registered ``card``: the method's CPU config
    (``lite/<method>``) first, then the other ``lite/`` ones, then the papers'."""
    found = []
    for name, path in shipped_configs().items():
        model = (yaml.safe_load(path.read_text()) or {}).get("model")
        if model == card.name or (isinstance(model, dict) and model.get("card") == card.name):
            found.append(name)
    return sorted(found, key=lambda n: (n != f"lite/{card.method}", not n.startswith("lite/"), n))


def model_info(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered model whose name matches the glob ``pattern``.

    Returns:
        Records with ``name, method, dimensions`` (range, direction, whether the prompt is needed), ``encoder``,
        ``encoder_weights`` and ``encoder_weights_present``, ``head_weights`` (a path, None when the model has
        none) and ``head_weights_present``, ``state`` (``trained``, ``zero-shot``, ``untrained`` or
        ``weights missing``: ``agiqa.models.state``), ``trained_on``, ``metrics``, ``description`` and ``ready``
        (every weight it needs is here and its state is trained or zero-shot: its scores mean something),
        ``speed`` (measured images per second, how and where; None when not measured) and ``reference``.
    """
    rows = []
    for card in list_models(pattern):
        enc_need, enc_ok = encoder_weights(card.encoder)
        head = weights_path(card)
        state = model_state(card)
        reference = card_reference(card)
        rows.append(
            {
                "name": card.name,
                "method": card.method,
                "dimensions": [asdict(d) for d in card.dimensions],
                "encoder": card.encoder,
                "encoder_weights": enc_need,
                "encoder_weights_present": enc_ok,
                "head_weights": str(head) if head else None,
                "head_weights_present": head.is_file() if head else None,
                "state": state,
                "trained_on": card.trained_on,
                "metrics": card.metrics,
                "speed": card.speed,
                "description": card.description,
                "ready": enc_ok and state in USABLE,
                "reference": None
                if reference is None
                else {"source": reference.source, "n": reference.n, "quantiles": reference.summary()},
            }
        )
    return rows
