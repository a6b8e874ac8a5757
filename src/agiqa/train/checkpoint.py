"""Model folders and resumable checkpoints, as safetensors + YAML/JSON (never pickle).

* ``save_model_folder``: ``config.yaml`` (the card, ``weights: model.safetensors``) + ``model.safetensors``,
  the folder ``agiqa.models.create_model`` reads. Only what was trained is saved: the heads and the encoder
  modules with trainable parameters (frozen pretrained towers come from their own packages).
* ``Checkpoint``: ``checkpoint/`` with the weights, the best weights so far, the optimiser tensors and the
  torch RNG state (safetensors) and the step, history, scheduler and optimiser scalars (JSON).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard


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
    """Write ``config.yaml`` (the card, ``weights: model.safetensors``) and ``model.safetensors`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(out / "model.safetensors"))
    data = {**card.to_dict(), **(extra or {}), "weights": "model.safetensors"}
    (out / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out


class Checkpoint:
    """Resumable state under ``<out>/checkpoint``: weights, best weights, optimiser tensors, JSON scalars."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = out_dir / "checkpoint"

    def exists(self) -> bool:
        return (self.folder / "state.json").is_file()

    def save(
        self,
        model: QualityModel,
        opt: torch.optim.Optimizer,
        sched: Any,
        scalars: dict[str, Any],
        best: dict[str, torch.Tensor] | None,
    ) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file(trainable_state(model), str(self.folder / "model.safetensors"))
        if best is not None:
            save_file(best, str(self.folder / "best.safetensors"))
        opt_state = opt.state_dict()
        tensors, plain = {}, {}
        for idx, st in opt_state["state"].items():
            for key, value in st.items():
                if torch.is_tensor(value):
                    tensors[f"{idx}.{key}"] = value.detach().clone().contiguous()
                else:
                    plain[f"{idx}.{key}"] = value
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(self.folder / "optimizer.safetensors"))
        doc = {
            **scalars,
            "param_groups": opt_state["param_groups"],
            "opt_plain": plain,
            "scheduler": sched.state_dict(),
        }
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, default=_json_default))
        tmp.replace(self.folder / "state.json")

    def load(self, model: QualityModel, opt: torch.optim.Optimizer, sched: Any) -> tuple[dict[str, Any], Any]:
        doc = json.loads((self.folder / "state.json").read_text())
        missing, unexpected = model.load_state_dict(load_file(str(self.folder / "model.safetensors")), strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise ValueError(f"{self.folder}: checkpoint does not fit this model (config changed since?)")
        tensors = load_file(str(self.folder / "optimizer.safetensors"))
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
        best_path = self.folder / "best.safetensors"
        best = load_file(str(best_path)) if best_path.is_file() else None
        return doc, best


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if torch.is_tensor(obj):
        return obj.tolist()
    return str(obj)
