"""Backends over pretrained transformers checkpoints: loading from a local folder or the hub cache (offline unless
``AGIQA_ALLOW_DOWNLOAD=1``), with errors that say how to fetch what is missing, and their common base class.

Model weights load from safetensors only (``use_safetensors=True``): a folder's pickled ``pytorch_model.bin`` is
never unpickled, and ``trust_remote_code`` is never set, so loading a folder runs no code from it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import nn

from agiqa.encoders._freeze import LayerGroupEncoder
from agiqa.encoders.preprocess import ImageTransform
from agiqa.encoders.tokenize import token_counts

ALLOW_DOWNLOAD_ENV = "AGIQA_ALLOW_DOWNLOAD"
T = TypeVar("T")


def download_allowed(allow_download: bool | None) -> bool:
    """Whether loaders may fetch from the Hugging Face hub: the kwarg, else ``AGIQA_ALLOW_DOWNLOAD=1``."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


def is_local_path(source: str) -> bool:
    """Whether ``source`` names a folder (exists, or looks like a path) rather than a hub id."""
    return Path(source).expanduser().exists() or source.startswith(("/", "~", ".")) or source.count("/") > 1


def missing_weights_error(backend: str, source: str, cause: Exception) -> FileNotFoundError:
    """The error a loader raises when ``source`` is neither a local folder nor in the local hub cache."""
    if is_local_path(source):
        return FileNotFoundError(
            f"encoder '{backend}:{source}': the folder {source} does not hold a loadable {backend} checkpoint "
            f"(config.json, model.safetensors, tokenizer and preprocessor_config.json, as `save_pretrained` or "
            f"`hf download` writes them; pickled pytorch_model.bin weights are never loaded, convert them with "
            f"`save_pretrained(..., safe_serialization=True)`). Cause: {cause}"
        )
    folder = f"~/models/{source.replace('/', '--')}"
    return FileNotFoundError(
        f"{backend} weights {source!r} are not on this machine and agiqa does not download at run time. "
        f"Download them once into the Hugging Face cache, where agiqa finds them offline:\n"
        f"    hf download {source}\n"
        f"or into a folder of your choice and name it in the spec:\n"
        f"    hf download {source} --local-dir {folder}   ->   '{backend}:{folder}'\n"
        f"(or set {ALLOW_DOWNLOAD_ENV}=1 to let agiqa download on first use). Cause: {cause}"
    )


def load_pretrained(
    backend: str, source: str, loader: Callable[..., T], allow_download: bool | None = None, **kwargs: Any
) -> T:
    """``loader(source, local_files_only=..., **kwargs)``, turning "not found" into ``missing_weights_error``.

    Args:
        backend: Encoder backend, for the message.
        source: Local folder or hub id.
        loader: A ``from_pretrained``-style callable.
        allow_download: Let transformers fetch missing files (default: ``AGIQA_ALLOW_DOWNLOAD``).
        **kwargs: Passed to ``loader``.
    """
    path = str(Path(source).expanduser()) if is_local_path(source) else source
    try:
        return loader(path, local_files_only=not download_allowed(allow_download), **kwargs)
    except OSError as err:
        raise missing_weights_error(backend, source, err) from err


def read_preprocessor_config(backend: str, source: str, allow_download: bool | None = None) -> dict[str, Any]:
    """The checkpoint's ``preprocessor_config.json`` (image size, mean, std, resampling)."""
    from transformers.utils import cached_file

    path = load_pretrained(backend, source, partial(cached_file, filename="preprocessor_config.json"), allow_download)
    if path is None:
        raise missing_weights_error(backend, source, FileNotFoundError("preprocessor_config.json"))
    return json.loads(Path(path).read_text())


class PretrainedEncoder(LayerGroupEncoder):
    """Base of the backends wrapping a pretrained model: holds it with its tokenizer and preprocessing.

    Args:
        model: The loaded model.
        tokenizer: Its tokenizer.
        transform: Its image preprocessing.
        name: The spec it was built from.
        image_size: Input side the vision tower takes (must equal the preprocessing's).
    """

    def __init__(self, model: nn.Module, tokenizer, transform: ImageTransform, name: str, image_size: int) -> None:
        super().__init__()
        if transform.size != image_size:
            raise ValueError(
                f"{name}: preprocessor_config.json gives {transform.size} px but the vision tower takes "
                f"{image_size} px; fix the checkpoint's preprocessor_config.json"
            )
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.transform = transform
        self.image_size = image_size

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The checkpoint's resize (+ centre crop) and normalisation."""
        return self.transform(image)

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text before truncation (special tokens included)."""
        return token_counts(self.tokenizer, texts)
