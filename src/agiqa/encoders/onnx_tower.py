"""An encoder's image tower exported to ONNX and run by ONNX Runtime: the same outputs, faster on a CPU.

``OnnxTower.for_encoder(encoder)`` wraps ``encoder._image_tower`` (whatever it computes: the module below returns
its outputs, ``None`` ones left out and put back on the way out), exports it once with a dynamic batch axis and
caches the ``.onnx`` file under ``encoder_cache_dir("onnx")``, named by a key over everything the graph depends on:
the tower's weights and buffers, the encoder's plain settings (variant, image size, pooling ...), the source of
``_image_tower``, and the torch / exporter versions. A changed key exports again; the file is written atomically,
so concurrent first runs at worst export twice. Inference only: no autograd flows through it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agiqa.encoders.cache_dir import encoder_cache_dir
from agiqa.io import atomic_write_bytes

log = logging.getLogger(__name__)
OPSET = 18  # the exporter's own; asking for an older one fails to convert Pad
FORMAT = 1  # bump when the export itself changes


class _TowerOutputs(nn.Module):
    """``encoder._image_tower`` as a module returning its non-None outputs (what gets exported)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(o for o in self.encoder._image_tower(pixel_values) if o is not None)


def _plain_settings(encoder: nn.Module) -> dict[str, Any]:
    """The encoder's attributes that are plain values (image size, pooling, variant, stage ends ...)."""
    plain = (bool, int, float, str)
    out = {}
    for name, value in vars(encoder).items():
        if name.startswith("_") or name == "training":
            continue
        if isinstance(value, plain) or (isinstance(value, list | tuple) and all(isinstance(v, plain) for v in value)):
            out[name] = value
    return out


def tower_key(encoder: nn.Module) -> str:
    """What the exported graph depends on (module docstring), as a short hash."""
    digest = hashlib.sha256()
    meta = {
        "format": FORMAT,
        "opset": OPSET,
        "torch": torch.__version__,
        "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "source": inspect.getsource(type(encoder)._image_tower),
        "settings": _plain_settings(encoder),
    }
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    tensors = {f"image_tower.{k}": v for k, v in encoder.image_tower.state_dict().items()}
    tensors.update(dict(encoder.named_buffers()))
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().to("cpu", torch.float32).contiguous().numpy())
    return digest.hexdigest()[:24]


def export_tower(encoder: nn.Module, path: Path) -> None:
    """Export ``encoder._image_tower`` with a dynamic batch axis to ``path`` (written atomically)."""
    log.warning("exporting the image tower to ONNX once for these weights (30-60 s on 2 cores): %s", path)
    module, was_training = _TowerOutputs(encoder), encoder.training
    module.eval()
    example = torch.zeros(2, 3, int(encoder.image_size), int(encoder.image_size))
    chatter = logging.getLogger("torch.onnx")  # notes on skipped torchvision ops and the like
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecations and tracer notes are not the user's concern
            program = torch.onnx.export(
                module,
                (example,),
                input_names=["pixel_values"],
                dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch", min=1, max=4096)}},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
            present = [o is not None for o in encoder._image_tower(example[:1])]
    finally:
        chatter.setLevel(level)
        encoder.train(was_training)
    proto = program.model_proto
    proto.metadata_props.add(key="agiqa_present", value=json.dumps(present))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())


class OnnxTower:
    """Callable like ``encoder._image_tower``: ``(B, 3, S, S)`` CPU pixels -> its outputs, by ONNX Runtime.

    Args:
        path: The exported graph; its metadata ``agiqa_present`` says which outputs of ``_image_tower`` are tensors
            (the others are None).
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path, self.threads = Path(path), int(threads)
        self._session: Any = None
        self.present: tuple[bool, ...] = ()

    @classmethod
    def for_encoder(cls, encoder: nn.Module, threads: int = 1, cache_dir: Path | None = None) -> OnnxTower:
        """The tower of ``encoder``: its cached graph, exported first when there is none for the current key."""
        folder = cache_dir if cache_dir is not None else encoder_cache_dir("onnx")
        path = folder / f"{type(encoder).__name__.lower()}-{tower_key(encoder)}.onnx"
        for attempt in range(2):
            if attempt or not path.is_file():
                export_tower(encoder, path)
            tower = cls(path, threads)
            try:
                tower.session()  # a damaged file fails here, at load, not on the first batch
                return tower
            except Exception:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def session(self) -> Any:
        """The ONNX Runtime session (made on first use, also after unpickling in another process)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self.present = tuple(json.loads(session.get_modelmeta().custom_metadata_map["agiqa_present"]))
            self._session = session
        return self._session

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        array = np.ascontiguousarray(pixel_values.detach().to("cpu", torch.float32).numpy())
        session = self.session()  # also reads ``present``
        outputs = iter(session.run(None, {"pixel_values": array}))
        return tuple(torch.from_numpy(next(outputs)) if p else None for p in self.present)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session": None}  # sessions do not pickle; the file is reopened where needed
