"""What models are registered here and whether each can run on this machine: ``model_info()``.

One record per card, as ``agiqa models --json`` prints it and ``GET /models`` serves it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from agiqa.encoders.factory import parse_encoder_spec
from agiqa.models.reference import card_reference
from agiqa.models.registry import list_models, weights_path


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


def model_info(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered model whose name matches the glob ``pattern``.

    Returns:
        Records with ``name, method, dimensions`` (range, direction, whether the prompt is needed), ``encoder``,
        ``encoder_weights`` and ``encoder_weights_present``, ``head_weights`` (a path, None when the model has
        none) and ``head_weights_present``, ``trained_on``, ``metrics``, ``description`` and ``ready`` (every
        weight it needs is here).
    """
    rows = []
    for card in list_models(pattern):
        enc_need, enc_ok = encoder_weights(card.encoder)
        head = weights_path(card)
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
                "trained_on": card.trained_on,
                "metrics": card.metrics,
                "description": card.description,
                "ready": enc_ok and (head is None or head.is_file()),
                "reference": None
                if reference is None
                else {"source": reference.source, "n": reference.n, "quantiles": reference.summary()},
            }
        )
    return rows
