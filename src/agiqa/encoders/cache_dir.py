"""Where encoders keep what they derive once from their weights (class-name embeddings, exported graphs)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "AGIQA_CACHE_DIR"


def encoder_cache_dir(kind: str) -> Path:
    """``$AGIQA_CACHE_DIR/encoders/<kind>`` when the variable is set, else ``~/.cache/agiqa/encoders/<kind>``.

    Args:
        kind: Sub-folder of one kind of derived file (``class_text``, ``onnx`` ...).
    """
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "agiqa"
    return root / "encoders" / kind
