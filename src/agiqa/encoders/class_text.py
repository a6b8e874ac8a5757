"""Text-tower summaries of a fixed list of texts (the 1,000 ImageNet class prompts), computed once per weights.

Embedding the class prompts with MiniLM took 2.8 s of every model load. The summaries depend only on the texts
and the text tower's weights, so they are kept in a safetensors file whose metadata holds that key: agiqa ships
the file for the MiniLM weights of its dependency (``imagenet_class_text.safetensors``), and for other weights
they are computed on first use and cached under ``encoder_cache_dir("class_text")``. A file whose key does not
match is never used; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from agiqa.encoders.cache_dir import encoder_cache_dir
from agiqa.io import atomic_write_bytes

SHIPPED = Path(__file__).with_name("imagenet_class_text.safetensors")
FORMAT = 1  # bump when the way summaries are computed changes (it is part of the key)


def weights_digest(module: nn.Module, samples: int = 4096) -> str:
    """Hash of ``module``'s tensors: names, shapes and ``samples`` evenly spaced values of each.

    Cheap (hashing all of MiniLM's 90 MB took 0.6 s of a 1.5 s load) and still changed by any training, which moves
    every value of a tensor.
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // samples)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat[::step].to("cpu", torch.float64).numpy().tobytes())
    return digest.hexdigest()[:24]


def summaries_key(texts: Sequence[str], digest: str) -> str:
    """What identifies the summaries: the texts, the text tower's weights and ``FORMAT``."""
    doc = json.dumps({"format": FORMAT, "weights": digest, "texts": list(texts)}, ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:32]


def _read(path: Path, key: str) -> torch.Tensor | None:
    """The ``summaries`` tensor of ``path`` when the file exists and carries ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            if (fh.metadata() or {}).get("key") != key:
                return None
        return load_file(str(path))["summaries"]
    except (SafetensorError, OSError, KeyError):
        return None  # a truncated or foreign file is recomputed, not trusted


def file_bytes(summaries: torch.Tensor, key: str) -> bytes:
    """The safetensors file holding ``summaries`` under ``key`` (what ``text_summaries`` reads)."""
    return save({"summaries": summaries.detach().cpu().float().contiguous()}, metadata={"key": key})


def text_summaries(texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor], digest: str) -> torch.Tensor:
    """``encode(texts)``, read from the shipped file or the cache when one holds them for these weights.

    Args:
        texts: The texts, in order.
        encode: Computes ``(len(texts), D)`` summaries (called only on a miss).
        digest: Identifies the text tower's weights (``weights_digest(text_tower)``).
    """
    key = summaries_key(texts, digest)
    cached = encoder_cache_dir("class_text") / f"{key}.safetensors"
    for path in (SHIPPED, cached):
        found = _read(path, key)
        if found is not None and found.shape[0] == len(texts):
            return found
    summaries = encode(list(texts)).detach().cpu().float()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, file_bytes(summaries, key))
    except OSError:
        pass  # a read-only home only costs the next load the same computation
    return summaries
