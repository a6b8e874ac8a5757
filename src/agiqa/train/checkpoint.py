"""Model folders and resumable checkpoints, as safetensors + YAML/JSON (never pickle).

* ``save_model_folder``: ``config.yaml`` (the card, ``weights: model.safetensors``) + ``model.safetensors``,
  the folder ``agiqa.models.create_model`` reads. Only what was trained is saved: the heads and the encoder
  modules with trainable parameters (frozen pretrained towers come from their own packages).
* ``Checkpoint``: ``checkpoint/`` with the weights, the best weights so far, the optimiser tensors and the
  torch RNG state (safetensors) and the step, history, scheduler and optimiser scalars (JSON), replaced as a whole
  (a new folder, then a ``latest.json`` with the files' hashes, written last).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save, save_file

from agiqa.io import atomic_write_bytes
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.weights import load_weights, read_safetensors


def trainable_state(model: QualityModel) -> dict[str, torch.Tensor]:
    """Head state + encoder modules with trainable parameters (or listed in ``model.saved_encoder_keys``)."""
    state = model.state_dict()
    keep = set(model.saved_encoder_keys)
    for name, module in model.encoder.named_modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            prefix = f"encoder.{name}." if name else "encoder."
            keep |= {k for k in state if k.startswith(prefix) and "." not in k[len(prefix) :]}
    return {k: v.detach().clone().contiguous() for k, v in state.items() if not k.startswith("encoder.") or k in keep}


def snapshot(model: QualityModel) -> dict[str, torch.Tensor]:
    """A copy of the trainable state (to restore a model between protocol splits)."""
    return copy.deepcopy(trainable_state(model))


def save_model_folder(
    model: QualityModel, out_dir: str | Path, card: ModelCard, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` then ``config.yaml`` (the card, ``weights: model.safetensors`` as its last line)
    into ``out_dir``, each atomically: a reader never finds half a file, and a card always states its weights."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model.safetensors", save(trainable_state(model)))
    data = {**card.to_dict(), **(extra or {}), "weights": "model.safetensors"}
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(data, sort_keys=False).encode("utf-8"))
    return out


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or from another run; the message names the file and what to do."""


class Checkpoint:
    """Resumable state under ``<out>/checkpoint``, replaced atomically as a whole.

    Each save writes a fresh ``step-NNNNNNNN-XXXX/`` folder (weights, best weights, optimiser tensors and RNG
    state as safetensors; step, history, scheduler and optimiser scalars as ``state.json``), then ``latest.json``
    (atomically, last) naming that folder with the SHA-256 of each of its files, then removes older folders. A run
    killed at any moment leaves ``latest.json`` pointing at a complete checkpoint; a damaged file is found by its
    hash and named.
    """

    MANIFEST = "latest.json"

    def __init__(self, out_dir: Path) -> None:
        self.folder = out_dir / "checkpoint"

    def exists(self) -> bool:
        """Whether there is a checkpoint (possibly damaged or of an older format: ``load`` says which)."""
        return (self.folder / self.MANIFEST).is_file() or (self.folder / "state.json").is_file()

    def save(
        self,
        model: QualityModel,
        opt: torch.optim.Optimizer,
        sched: Any,
        scalars: dict[str, Any],
        best: dict[str, torch.Tensor] | None,
    ) -> None:
        """Write a checkpoint of the run as it stands (see the class docstring for how it stays atomic)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"step-{int(scalars['step']):08d}-{uuid.uuid4().hex[:8]}"
        tmp = self.folder / f".{name}.tmp"
        tmp.mkdir()
        opt_state = opt.state_dict()
        tensors, plain = {"rng.torch": torch.get_rng_state()}, {}
        for idx, st in opt_state["state"].items():
            for key, value in st.items():
                if torch.is_tensor(value):
                    tensors[f"{idx}.{key}"] = value.detach().clone().contiguous()
                else:
                    plain[f"{idx}.{key}"] = value
        files = {"model.safetensors": trainable_state(model), "optimizer.safetensors": tensors}
        if best is not None:
            files["best.safetensors"] = best
        for filename, content in files.items():
            save_file(content, str(tmp / filename))
        doc = {**scalars, "param_groups": opt_state["param_groups"], "opt_plain": plain}
        doc["scheduler"] = sched.state_dict()
        (tmp / "state.json").write_text(json.dumps(doc, indent=1, default=_json_default))
        hashes = {}
        for path in sorted(tmp.iterdir()):
            with open(path, "rb") as fh:
                hashes[path.name] = hashlib.sha256(fh.read()).hexdigest()
                os.fsync(fh.fileno())
        tmp.rename(self.folder / name)
        manifest = {"format": 2, "step": int(scalars["step"]), "folder": name, "sha256": hashes}
        atomic_write_bytes(self.folder / self.MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        for old in self.folder.iterdir():
            if old.is_dir() and old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def load(self, model: QualityModel, opt: torch.optim.Optimizer, sched: Any) -> tuple[dict[str, Any], Any]:
        """Restore the model, optimiser, scheduler and torch RNG; returns the JSON scalars and the best weights.

        Raises:
            CheckpointError: The checkpoint is damaged, of an older format, or does not fit this model.
        """
        where = self._verified()
        try:
            doc = json.loads((where / "state.json").read_text())
            load_weights(model, where / "model.safetensors", "this run's model")
            tensors = read_safetensors(where / "optimizer.safetensors")
            state: dict[int, dict[str, Any]] = {}
            for name, value in [*tensors.items(), *doc["opt_plain"].items()]:
                if name == "rng.torch":
                    continue
                idx, _, key = name.partition(".")
                state.setdefault(int(idx), {})[key] = value
            groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in doc["param_groups"]]
            opt.load_state_dict({"state": state, "param_groups": groups})
            sched.load_state_dict(doc["scheduler"])
            torch.set_rng_state(tensors["rng.torch"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise CheckpointError(
                f"{where}: the checkpoint does not fit this run (config changed since?): {err}; delete "
                f"{self.folder} and train without --resume to start over"
            ) from None
        best_path = where / "best.safetensors"
        best = read_safetensors(best_path) if best_path.is_file() else None
        return doc, best

    def _verified(self) -> Path:
        """The folder ``latest.json`` names, after checking every file against its hash."""
        manifest_path = self.folder / self.MANIFEST
        if not manifest_path.is_file():
            raise CheckpointError(
                f"{self.folder} was written by an older agiqa (no {self.MANIFEST}); delete it and train without "
                "--resume"
            )
        try:
            manifest = json.loads(manifest_path.read_text())
            where, hashes = self.folder / manifest["folder"], dict(manifest["sha256"])
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{manifest_path}: damaged ({err}); delete {self.folder} to start over") from None
        for filename, digest in hashes.items():
            path = where / filename
            if not path.is_file():
                raise CheckpointError(f"{path}: missing from the checkpoint; delete {self.folder} to start over")
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                raise CheckpointError(
                    f"{path}: damaged (its SHA-256 differs from {manifest_path}); delete {self.folder} to start over"
                )
        return where


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if torch.is_tensor(obj):
        return obj.tolist()
    return str(obj)
