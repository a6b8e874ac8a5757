"""Reading weights from files that may be damaged or hostile: safetensors only, shapes checked, errors that name
the file and the tensor.

A safetensors file is a JSON header and raw tensor bytes: reading one runs no code (unlike pickle, which is never
used). A truncated or corrupt file, a tensor of the wrong shape and a tensor the model does not have are all a
``ValueError`` that says which file, which tensor and what would fix it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file is not a complete safetensors file (truncated, corrupt, or another format: pickled
            ``.bin`` / ``.pth`` files are refused, never unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{path}: not a readable safetensors file (truncated, corrupt, or another format: agiqa loads "
            f"safetensors only and never unpickles .bin/.pth files): {err}"
        ) from None


def check_shapes(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Every tensor of ``state`` exists in ``model`` with the same shape.

    Args:
        model: The model the tensors are for.
        state: The tensors read from ``path``.
        path: Where they come from (for the message).
        what: What the model is (``model 'agiqa-lite'`` ...), for the message.

    Raises:
        ValueError: Naming the first tensor the model lacks or whose shape differs, with both shapes.
    """
    own = model.state_dict()
    for name, tensor in state.items():
        if name not in own:
            raise ValueError(f"{path}: tensor {name!r} is not a parameter of {what}; the file is for another model")
        if own[name].numel() == 0:  # a buffer sized by the data it was fitted on (layers.caption.RidgeCaption)
            continue
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)} in the file but {what} needs "
                f"{tuple(own[name].shape)}; the weights were saved for another configuration (check the card's "
                "method_args / encoder_args)"
            )


def load_weights(model: nn.Module, path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Load the safetensors file ``path`` into ``model``; every parameter outside ``encoder.`` must be in it.

    Frozen encoder weights come from the encoder's own files, so only they may be absent. Returns the tensors read.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is damaged, a tensor has the wrong shape, or the heads are not all in it.
    """
    state = read_safetensors(path)
    check_shapes(model, state, path, what)
    missing, _ = model.load_state_dict(state, strict=False)
    heads = sorted(k for k in missing if not k.startswith("encoder."))
    if heads:
        raise ValueError(
            f"{path}: weights do not fit {what}: missing {heads[:5]}{' ...' if len(heads) > 5 else ''}; the file "
            "is for another model or was cut short when it was written"
        )
    return state
