"""How an encoder's image tower runs for inference: ``accelerate(encoder, runtime, threads)``.

Runtimes:

* ``eager``: PyTorch, as written.
* ``onnx``: ONNX Runtime over the exported tower (``agiqa.encoders.onnx_tower``); CPU only, inference only (with
  autograd on, e.g. ``Scorer.score_tensor``, the encoder runs eagerly).
* ``auto`` (the default): ``onnx`` on a CPU for an encoder that offers the seam (a ``fast_tower`` attribute, the
  lite encoder) when ONNX Runtime is installed; ``eager`` otherwise.

Measured on the 2-core CPU (``benchmarks/bench_score.py``): see ``docs/scoring.md`` ("Speed").
"""

from __future__ import annotations

import importlib.util
import warnings

from torch import nn

RUNTIMES = ("auto", "eager", "onnx")


def _has_onnx() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript"))


def accelerate(encoder: nn.Module, runtime: str = "auto", threads: int = 1, device: str = "cpu") -> str:
    """Make ``encoder`` run its image tower with ``runtime`` for inference; returns the runtime in use.

    Args:
        encoder: The model's encoder.
        runtime: ``auto``, ``eager`` or ``onnx`` (module docstring).
        threads: Intra-op threads of the ONNX Runtime session.
        device: Where the model runs (``onnx`` needs ``cpu``).

    Raises:
        ValueError: Unknown ``runtime``, or ``onnx`` asked for where it cannot run (the message says why).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}; use one of {list(RUNTIMES)}")
    if runtime == "eager":
        _set(encoder, None)
        return "eager"
    reason = None
    if not hasattr(encoder, "fast_tower"):
        reason = f"encoder {getattr(encoder, 'name', type(encoder).__name__)!r} has no exportable image tower"
    elif str(device).split(":")[0] != "cpu":
        reason = f"device {device!r}: the ONNX runtime runs on the CPU (GPUs run eagerly)"
    elif not _has_onnx():
        reason = "onnxruntime / onnx / onnxscript are not installed: pip install onnxruntime onnx onnxscript"
    if reason is not None:
        if runtime == "onnx":
            raise ValueError(f"runtime='onnx': {reason}; use runtime='eager' or 'auto'")
        return "eager"
    from agiqa.encoders.onnx_tower import OnnxTower

    try:
        _set(encoder, OnnxTower.for_encoder(encoder, threads=threads))
    except Exception as err:  # an exporter or runtime failure must not stop scoring: eager gives the same scores
        if runtime == "onnx":
            raise
        warnings.warn(f"ONNX runtime unavailable ({type(err).__name__}: {err}); running eagerly", stacklevel=2)
        _set(encoder, None)
        return "eager"
    return "onnx"


def _set(encoder: nn.Module, tower: object) -> None:
    if hasattr(encoder, "fast_tower"):
        encoder.fast_tower = tower
