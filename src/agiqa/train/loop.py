"""The training loop: ``train(config) -> TrainResult``.

A run is ``prepare`` (``agiqa.train.setup``: model, frozen encoder, data, features), the rows to train and
validate on (``agiqa.train.selection``), its ``Objective`` (``agiqa.train.objectives``), then this loop:

* **Optimiser.** AdamW, ``transformers.get_scheduler`` (warm-up, linear / cosine decay), gradient clipping;
  shuffling seeded per epoch, so a resumed run takes the same batches as an uninterrupted one.
* **Validation.** At the end of every ``eval_every`` epochs: SRCC per MOS dimension, or pair accuracy; the best
  weights are kept (``keep_best``).
* **Checkpoints.** A model folder (``config.yaml`` card + ``model.safetensors``, what ``create_model`` reads,
  what it was trained on: ``agiqa.train.run_folder``, and the quantiles of the model's predictions on its
  training rows: ``agiqa.train.reference``) and, for ``--resume``, ``checkpoint/`` with the optimiser and RNG
  state as safetensors + JSON scalars, saved every ``checkpoint_every`` steps (0: at the end of every epoch) and
  replaced atomically.
* **Faults.** A non-finite loss stops the run with ``TrainingDiverged`` naming the step (no model is written);
  ``resume`` without a checkpoint to resume from is refused rather than silently starting again.
* **Several processes.** Under ``torchrun`` / ``accelerate launch``, ``agiqa.train.distributed`` shards each
  global batch over the ranks (DDP) and rank 0 writes.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import get_scheduler

from agiqa.data.sample import Dataset
from agiqa.eval import metrics as M
from agiqa.models.base import QualityModel
from agiqa.models.prompts import ALIGNMENT_DIMENSIONS
from agiqa.train.checkpoint import Checkpoint, trainable_state
from agiqa.train.config import TrainConfig
from agiqa.train.distributed import Distributed
from agiqa.train.features import FeatureBank
from agiqa.train.mismatch import prompt_swap_share
from agiqa.train.objectives import Objective, make_objective
from agiqa.train.probes import donor_predictions
from agiqa.train.reference import training_reference
from agiqa.train.run_folder import write_run_folder
from agiqa.train.selection import Pairs, split_rows
from agiqa.train.setup import TrainSetup, prepare


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the message names the step."""


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        model: The trained model (best validation weights when ``keep_best``), in eval mode.
        out_dir: Model folder written (None when training in memory only).
        history: One entry per validation: ``epoch``, ``step``, ``loss``, ``val_srcc`` ...
        best_val: Best validation score (mean SRCC over dimensions, or pair accuracy).
        steps: Optimiser steps taken.
        seconds: Wall time of the run (feature caching included).
        cached: Whether the head was trained over cached features.
        cache_misses: Images + prompts that had to be encoded (0 when everything came from the cache).
    """

    model: QualityModel
    out_dir: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float | None = None
    steps: int = 0
    seconds: float = 0.0
    cached: bool = False
    cache_misses: int = 0


@dataclass
class _RunState:
    """Where a run stands: what a checkpoint saves and ``--resume`` restores."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    best_val: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    part_best: list[float] = field(default_factory=list)  # per part of a model of several (loss_parts)

    @classmethod
    def resumed(cls, doc: dict[str, Any], best_state: dict[str, torch.Tensor] | None) -> _RunState:
        """The state a checkpoint saved (its JSON scalars and best weights)."""
        best_val = doc["best_val"] if doc["best_val"] is not None else -math.inf
        part_best = [v if v is not None else -math.inf for v in doc.get("part_best", [])]
        return cls(doc["step"], doc["history"], doc.get("running", []), best_val, best_state, part_best)

    def scalars(self, running: int | None = None) -> dict[str, Any]:
        """The JSON part of a checkpoint (the last ``running`` losses, when given)."""
        doc: dict[str, Any] = {"step": self.step, "history": self.history}
        if running is not None:
            doc["running"] = self.running[-running:]
        doc["best_val"] = self.best_val if math.isfinite(self.best_val) else None
        if self.part_best:
            doc["part_best"] = [v if math.isfinite(v) else None for v in self.part_best]
        return doc


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    *,
    dataset: Dataset | None = None,
    setup: TrainSetup | None = None,
    rows: tuple[list[int], list[int]] | None = None,
) -> TrainResult:
    """Train the model a config describes.

    Args:
        config: The run (see ``agiqa.train.config``).
        out_dir: Model folder to write (``config.yaml`` + ``model.safetensors`` + ``checkpoint/``); None keeps
            the model in memory only.
        resume: Continue from ``out_dir/checkpoint`` (a ``ValueError`` when there is none).
        dataset: The dataset already read (else read from ``config.data``); not used with ``setup``.
        setup: Model, data and features already prepared (the protocol shares one across splits; its model is
            trained in place).
        rows: ``(train_rows, val_rows)`` of the setup's image table (else from ``config.data``).

    Returns:
        The trained model and what happened.
    """
    start_time = time.perf_counter()
    ranks = Distributed.from_env(config.train.device)
    with ranks.writer_first():  # one process fills the feature cache, the others read it
        setup = setup if setup is not None else prepare(config, dataset)
    model, bank, t = setup.model, setup.bank, config.train
    model.to(t.device)
    if setup.cached:
        bank.to(t.device)
    train_rows, val_rows = rows if rows is not None else split_rows(config, setup.dataset, setup.table)
    if not train_rows:
        raise ValueError(f"{config.source}: no training images left after the split; check data.splits / limit")
    objective = make_objective(config, model, setup.dataset, setup.table, train_rows, val_rows, bank)
    per_epoch = math.ceil(len(objective) / t.batch_size)
    total = t.steps or t.epochs * per_epoch
    opt = _optimizer(model, config)
    sched = _scheduler(opt, config, total)
    ckpt = Checkpoint(Path(out_dir)) if out_dir is not None else None
    if resume and (ckpt is None or not ckpt.exists()):
        where = "no out_dir was given" if ckpt is None else f"{ckpt.folder} holds no checkpoint"
        raise ValueError(f"resume: {where} to resume from; run without --resume to start from step 0")
    state = _RunState.resumed(*ckpt.load(model, opt, sched)) if resume and ckpt else _RunState()
    ranks.wrap(model)
    writer = ckpt if ranks.is_writer else None
    with bank.prefitted(train_rows):
        _fit(config, setup, objective, val_rows, opt, sched, state, writer, per_epoch, total, ranks)
    kept = None
    if t.keep_best and state.best_state is not None:
        model.load_state_dict(state.best_state, strict=False)
        if state.part_best and val_rows:  # the parts' best epochs put together: validate what is kept
            kept = validate(bank, val_rows, objective.dims, objective.val_pairs, by=t.keep_best_by)
            state.best_val = kept.get("val", math.nan)
    model.eval()
    bad = sorted(k for k, v in trainable_state(model).items() if v.is_floating_point() and not v.isfinite().all())
    if bad:
        raise TrainingDiverged(f"{config.source}: the trained weights hold NaN or inf ({bad[:3]}); nothing was written")
    best = state.best_val if math.isfinite(state.best_val) else None
    result = TrainResult(
        model, None, state.history, best, state.step, time.perf_counter() - start_time, setup.cached, bank.misses
    )
    if out_dir is not None and ranks.is_writer:
        reference = training_reference(setup.bank, train_rows, config.data.dataset, seed=t.seed)
        result.out_dir = write_run_folder(
            config, model, out_dir, setup.table, train_rows, val_rows, state.history, reference, kept
        )
        if ckpt is not None:
            ckpt.save(model, opt, sched, state.scalars(), state.best_state)
    ranks.close()
    return result


def _fit(
    config: TrainConfig,
    setup: TrainSetup,
    objective: Objective,
    val_rows: Sequence[int],
    opt: torch.optim.Optimizer,
    sched: Any,
    state: _RunState,
    ckpt: Checkpoint | None,
    per_epoch: int,
    total: int,
    ranks: Distributed | None = None,
) -> None:
    """Optimiser steps from ``state.step`` to ``total``, validating at epoch ends and checkpointing."""
    ranks = ranks or Distributed()
    model, bank, t = setup.model, setup.bank, config.train
    model.train()
    if setup.cached:
        model.encoder.eval()
    with _bar(t.progress and ranks.is_writer, total, config.name) as bar:
        task = bar.add_task("train", total=total, completed=state.step, loss=float("nan"), val=float("nan"))
        while state.step < total:
            epoch, pos = divmod(state.step, per_epoch)
            order = torch.randperm(len(objective), generator=torch.Generator().manual_seed(t.seed * 100_003 + epoch))
            idx = order[pos * t.batch_size : (pos + 1) * t.batch_size]
            loss, logged = ranks.batch_loss(lambda i: objective.batch_loss(model, bank, i, state.step, t.device), idx)
            if not (torch.isfinite(loss) and math.isfinite(logged)):
                raise TrainingDiverged(
                    f"{config.source}: step {state.step + 1} (epoch {epoch + 1}): the loss is {logged}; "
                    "stopped before writing a model. Look for NaN / inf labels or features, or lower train.lr"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], t.grad_clip)
            opt.step()
            sched.step()
            state.step += 1
            step = state.step
            state.running.append(logged)
            bar.update(task, advance=1, loss=float(np.mean(state.running[-50:])))
            end_of_epoch = step % per_epoch == 0 or step == total
            if end_of_epoch and ((step // per_epoch) % t.eval_every == 0 or step == total):
                entry = {"epoch": math.ceil(step / per_epoch), "step": step}
                entry["loss"] = float(np.mean(state.running[-per_epoch:]))
                entry.update(validate(bank, val_rows, objective.dims, objective.val_pairs, by=t.keep_best_by))
                state.history.append(entry)
                val = entry.get("val", math.nan)
                bar.update(task, val=val)
                if len(model.loss_parts()) > 1:
                    _keep_best_parts(model, bank, val_rows, objective, state, entry, t.keep_best, t.keep_best_by)
                elif t.keep_best and math.isfinite(val) and val > state.best_val:
                    state.best_val, state.best_state = val, trainable_state(model)
            if ckpt is not None and step % (t.checkpoint_every or per_epoch) == 0 and step < total:
                ckpt.save(model, opt, sched, state.scalars(running=per_epoch), state.best_state)


def _keep_best_parts(
    model: QualityModel,
    bank: FeatureBank,
    val_rows: Sequence[int],
    objective: Objective,
    state: _RunState,
    entry: dict[str, float],
    keep_best: bool,
    by: str,
) -> None:
    """A model of several parts (an ensemble's members) keeps each part's best epoch by that part's own validation,
    as the part would alone; ``entry`` gets ``val_part<i>``, ``state.best_state`` the improved parts' weights."""
    parts = model.loss_parts()
    state.part_best = state.part_best or [-math.inf] * len(parts)
    state.best_state = {} if state.best_state is None else state.best_state
    state.best_val = max(state.best_val, entry.get("val", -math.inf))
    whole = model.state_dict(keep_vars=True)
    kept = trainable_state(model)
    for i, part in enumerate(parts):
        val = validate(bank, val_rows, objective.dims, objective.val_pairs, model=part, by=by).get("val", math.nan)
        entry[f"val_part{i}"] = val
        if keep_best and math.isfinite(val) and val > state.part_best[i]:
            state.part_best[i] = val
            own = {id(v) for v in part.state_dict(keep_vars=True).values()}
            state.best_state.update({k: kept[k] for k, v in whole.items() if id(v) in own and k in kept})


def _optimizer(model: QualityModel, config: TrainConfig) -> torch.optim.Optimizer:
    t = config.train
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    enc = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    groups = [{"params": head, "lr": t.lr}]
    if enc:
        groups.append({"params": enc, "lr": t.encoder_lr if t.encoder_lr is not None else t.lr})
    if not head and not enc:
        raise ValueError(f"{config.source}: nothing to train: the model has no trainable parameter")
    return torch.optim.AdamW([g for g in groups if g["params"]], betas=t.betas, weight_decay=t.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig, total: int) -> Any:
    t = config.train
    warmup = t.warmup_steps or int(round(t.warmup_ratio * total))
    name = "constant_with_warmup" if t.scheduler == "constant" else t.scheduler
    kwargs = {"num_cycles": t.cycles} if t.scheduler == "cosine_with_restarts" else None
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total, scheduler_specific_kwargs=kwargs)


def validate(
    bank: FeatureBank,
    rows: Sequence[int],
    dims: Sequence[str],
    pairs: Pairs | None,
    model: QualityModel | None = None,
    by: str = "srcc",
) -> dict[str, float]:
    """Validation figures of the bank's model or of ``model`` (one of its parts): SRCC per MOS dimension or pair
    accuracy, and ``val_swap_<dim>`` per alignment-kind dimension (the share of validation images scored lower
    under the prompt of another validation group, fixed donors). ``val``, which picks the kept epoch, is the mean
    SRCC (else the pair accuracy), plus the mean swap share when ``by`` is ``srcc+swap``."""
    if not rows:
        return {}
    preds = bank.predict(rows, model=model)
    swapped = [d for d in dims if d in ALIGNMENT_DIMENSIONS and d in preds]
    if swapped and len({bank.table.groups[r] for r in rows}) > 1:
        other = donor_predictions(bank, rows, seed=0, model=model)
        swaps = {f"val_swap_{d}": prompt_swap_share(preds[d], other[d]) for d in swapped}
    else:
        swaps = {}
    out: dict[str, float] = {}
    table = bank.table
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            for dim in dims:
                if dim in table.labels and dim in preds:
                    out[f"val_srcc_{dim}"] = float(M.srcc(preds[dim], table.labels[dim][list(rows)]))
            if pairs is not None and len(pairs):
                pos = {r: i for i, r in enumerate(rows)}
                accs = [
                    float(
                        M.preference_accuracy(
                            [preds[d][pos[a]] for a, d in zip(pairs.a, pairs.dim, strict=True) if d == dim],
                            [preds[d][pos[b]] for b, d in zip(pairs.b, pairs.dim, strict=True) if d == dim],
                            [lab for lab, d in zip(pairs.label, pairs.dim, strict=True) if d == dim],
                        )
                    )
                    for dim in dict.fromkeys(pairs.dim)
                ]
                out["val_pair_acc"] = float(np.nanmean(accs))
    srccs = [v for k, v in out.items() if k.startswith("val_srcc_") and math.isfinite(v)]
    out["val"] = float(np.mean(srccs)) if srccs else out.get("val_pair_acc", math.nan)
    if by == "srcc+swap" and swaps:
        out["val"] += float(np.mean(list(swaps.values())))
    return out | swaps


def _bar(show: bool, total: int, name: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("val {task.fields[val]:.4f}"),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )
