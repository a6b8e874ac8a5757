"""The training loop: ``train(config) -> TrainResult``.

* **Objectives.** ``l1``/``mae``/``mse`` regress the MOS of every trained dimension (missing labels masked);
  ``kl`` (PrefIQA eq. 11) and ``pairwise_ce`` (MINT-IQA eq. 4-5) train on same-prompt pairs: the dataset's own
  pairs (rankings come expanded by the readers) and, for MOS data, every same-prompt pair per dimension.
* **Stable Preference** (paper 004) wraps any pair objective: the anti-interference loss over ``k`` weak views,
  step 1 (gated by ``1 / (1 + exp((dS - b) / tau))``) until ``switch_step``, then step 2 (softmax of ``dS``).
* **Features.** With the encoder frozen the loop trains ``forward_head`` over cached ``image_features`` /
  ``text_features`` (``agiqa.train.cache``); otherwise it decodes and encodes every batch.
* **Optimiser.** AdamW, ``transformers.get_scheduler`` (warm-up, linear / cosine decay), gradient clipping.
* **Checkpoints.** A model folder (``config.yaml`` card + ``model.safetensors``, what ``create_model`` reads)
  and, for ``--resume``, ``checkpoint/`` with the optimiser and RNG state as safetensors + JSON scalars.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from transformers import get_scheduler

from agiqa.data.images import load_image
from agiqa.data.sample import Dataset
from agiqa.data.splits import load_splits
from agiqa.eval import metrics as M
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.registry import build_model_from_card, resolve_card
from agiqa.train import objectives as L
from agiqa.train.cache import cached_image_features, cached_text_features, content_hash
from agiqa.train.checkpoint import Checkpoint, save_model_folder, trainable_state
from agiqa.train.config import TrainConfig
from agiqa.train.data import ImageTable, Pairs, dataset_pairs, image_table, mos_pairs, weak_view

REGRESSION = ("l1", "mae", "mse")


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


def model_card(config: TrainConfig) -> ModelCard:
    """The card of the model a config trains, named ``config.name``.

    ``model`` is a registered card name, or a mapping: a whole card, or ``card: NAME`` plus the keys to change
    (``method_args`` and ``encoder_args`` are merged key by key).
    """
    spec: dict[str, Any] = {"card": config.model} if isinstance(config.model, str) else dict(config.model)
    if "card" in spec:
        base = resolve_card(spec.pop("card")).to_dict()
        merged = {key: {**base.get(key, {}), **spec.get(key, {})} for key in ("method_args", "encoder_args")}
        spec = {**base, **spec, **merged}
        spec["weights"] = None
    spec.pop("name", None)
    try:
        return ModelCard.from_dict({"name": config.name, **spec}, source=f"{config.source} (model)")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config.source}: bad `model` section: {err}") from None


def build_model(config: TrainConfig) -> QualityModel:
    """The untrained model of a config (heads initialised from ``train.seed``)."""
    card = model_card(config)
    torch.manual_seed(config.train.seed)
    return build_model_from_card(card)


def apply_freeze(model: QualityModel, config: TrainConfig) -> bool:
    """Freeze encoder layers as configured; returns True when the encoder is entirely fixed (cacheable)."""
    fz, mode = config.train.freeze, config.train.cache
    image = fz.image_fraction if fz.image_fraction is not None else fz.fraction
    text = fz.text_fraction if fz.text_fraction is not None else fz.fraction
    if fz.tower in ("image", "both"):
        model.encoder.freeze(image, "image")
    if fz.tower in ("text", "both"):
        model.encoder.freeze(text, "text")
    frozen = image >= 1.0 and text >= 1.0 and fz.tower == "both"
    cached = mode == "on" or (mode == "auto" and frozen)
    # saved with the heads even when caching fixes them (the lite projections), so a checkpoint never
    # depends on how an encoder initialises its trainable parts
    model.saved_encoder_keys = {f"encoder.{n}" for n, p in model.encoder.named_parameters() if p.requires_grad}
    if cached:
        model.encoder.requires_grad_(False)
        model.encoder.eval()
        if model.projects_in_head:
            for module in model.encoder.projection_modules():
                module.requires_grad_(True)
    return cached


class FeatureBank:
    """Encoder features of every row of an ``ImageTable``: cached tensors, or encoded live per batch.

    Args:
        model: The model being trained.
        table: The images.
        cached: Precompute everything through the feature cache (encoder frozen).
        cache_dir: Cache root.
        views: Extra views per image ``[(name, transform)]`` (Stable Preference weak views).
        progress: Show a progress bar while encoding.
    """

    def __init__(
        self,
        model: QualityModel,
        table: ImageTable,
        cached: bool,
        cache_dir: str | None = None,
        views: Sequence[tuple[str, Any]] = (),
        progress: bool = False,
    ) -> None:
        self.model, self.table, self.cached, self.views = model, table, cached, list(views)
        self.cache_dir = cache_dir
        self.prompts = list(dict.fromkeys(table.prompts))
        index = {p: i for i, p in enumerate(self.prompts)}
        self.prompt_row = torch.tensor([index[p] for p in table.prompts], dtype=torch.long)
        self.misses = 0
        self.image: list[dict[str, torch.Tensor]] = []
        self.text: dict[str, torch.Tensor] = {}
        if cached:
            hashes = [content_hash(ref) for ref in table.images]
            for name, transform in [("orig", None), *self.views]:
                feats, store = _with_progress(
                    lambda tick, n=name, t=transform: cached_image_features(
                        model, table.images, cache_dir, view=n, transform=t, hashes=hashes, progress=tick
                    ),
                    len(table),
                    f"encoding images ({name})",
                    progress,
                )
                self.image.append(feats)
                self.misses += store.misses
            self.text, store = cached_text_features(model, self.prompts, cache_dir)
            self.misses += store.misses

    def to(self, device: str | torch.device) -> FeatureBank:
        """Move the cached features (e.g. to the GPU the head trains on)."""
        self.image = [{k: v.to(device) for k, v in feats.items()} for feats in self.image]
        self.text = {k: v.to(device) for k, v in self.text.items()}
        self.prompt_row = self.prompt_row.to(device)
        return self

    def batch(self, rows: torch.Tensor, view: int = 0) -> dict[str, torch.Tensor]:
        """Features of the given rows (view 0 = original, ``v`` = extra view ``v - 1``)."""
        if self.cached:
            rows = rows.to(self.prompt_row.device)
            prompt_rows = self.prompt_row[rows]
            return {
                **{k: v[rows] for k, v in self.image[view].items()},
                **{k: v[prompt_rows] for k, v in self.text.items()},
            }
        transform = self.views[view - 1][1] if view else None
        pixels = []
        device = next(self.model.parameters()).device
        for r in rows.tolist():
            image = load_image(self.table.images[r])
            if transform is not None:
                image = transform(image, content_hash(self.table.images[r]))
            pixels.append(self.model.preprocess(image))
        prompts = [self.table.prompts[r] for r in rows.tolist()]
        return self.model.forward_features(torch.stack(pixels).to(device), prompts)

    @torch.no_grad()
    def predict(self, rows: Sequence[int], batch_size: int = 256, view: int = 0) -> dict[str, np.ndarray]:
        """Scores ``{dimension: (len(rows),)}`` of the given rows, model in eval mode."""
        was = self.model.training
        self.model.eval()
        out: dict[str, list[np.ndarray]] = {}
        rows_t = torch.as_tensor(list(rows), dtype=torch.long)
        for start in range(0, len(rows_t), batch_size):
            scores = self.model.forward_head(self.batch(rows_t[start : start + batch_size], view))
            for dim, s in scores.items():
                out.setdefault(dim, []).append(s.detach().float().cpu().numpy())
        self.model.train(was)
        return {d: np.concatenate(v) for d, v in out.items()}


def _with_progress(fn: Any, total: int, label: str, show: bool) -> Any:
    if not show:
        return fn(None)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        return fn(lambda n: bar.advance(task, n))


def load_training_data(config: TrainConfig) -> Dataset:
    """Read the dataset named by ``config.data`` (first ``limit`` samples when set)."""
    from agiqa.data import load_dataset

    d = config.data
    if not d.root:
        raise ValueError(f"{config.source}: data.root is empty; set it to the folder the dataset was unpacked to")
    dataset = load_dataset(d.dataset, d.root)
    if d.limit is not None:
        dataset.samples = dataset.samples[: d.limit]
        keep = {s.image_id for s in dataset.samples}
        dataset.pairs = (
            [p for p in dataset.pairs if p.id_a in keep and p.id_b in keep] if keep else dataset.pairs[: d.limit]
        )
    return dataset


def split_rows(config: TrainConfig, dataset: Dataset, table: ImageTable) -> tuple[list[int], list[int]]:
    """Training and validation rows: the configured split's training side, minus a grouped validation part."""
    d = config.data
    row = table.row
    if d.splits:
        splits = load_splits(d.splits, dataset)
        if not 0 <= d.split_index < len(splits):
            raise ValueError(
                f"{config.source}: data.split_index={d.split_index} but {d.splits} has {len(splits)} splits"
            )
        train_ids = set(splits[d.split_index].train)
        rows = [row[i] for i in table.ids if i in train_ids]
    else:
        rows = list(range(len(table)))
    return carve_validation(table, rows, d.val_fraction, config.train.seed)


def carve_validation(table: ImageTable, rows: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out ``fraction`` of the groups among ``rows`` for validation (none when 0 or one group)."""
    groups = sorted({table.groups[r] for r in rows})
    if fraction <= 0 or len(groups) < 2:
        return rows, []
    rng = np.random.default_rng(seed)
    n_val = min(max(1, round(fraction * len(groups))), len(groups) - 1)
    val_groups = {groups[i] for i in rng.permutation(len(groups))[:n_val]}
    return [r for r in rows if table.groups[r] not in val_groups], [r for r in rows if table.groups[r] in val_groups]


def trained_dimensions(config: TrainConfig, model: QualityModel, table: ImageTable, has_pairs: bool) -> list[str]:
    """Dimensions to train: configured, else those the model outputs and the data labels."""
    model_dims = [d.name for d in model.dimensions]
    if config.data.dimensions:
        unknown = [d for d in config.data.dimensions if d not in model_dims]
        if unknown:
            raise ValueError(f"{config.source}: data.dimensions {unknown} are not outputs of the model {model_dims}")
        return list(config.data.dimensions)
    dims = [d for d in model_dims if d in table.labels]
    if not dims and has_pairs:
        dims = model_dims[:1]
    if not dims:
        raise ValueError(
            f"{config.source}: the model outputs {model_dims} but the data labels {sorted(table.labels)}; "
            "set data.dimensions or give the model matching dimensions"
        )
    return dims


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


def validate(bank: FeatureBank, rows: Sequence[int], dims: Sequence[str], pairs: Pairs | None) -> dict[str, float]:
    """Validation figures: SRCC per MOS dimension (``val_srcc`` = their mean) or pair accuracy."""
    if not rows:
        return {}
    preds = bank.predict(rows)
    out: dict[str, float] = {}
    table = bank.table
    with np.errstate(all="ignore"):
        import warnings

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
    return out


def _subset_pairs(pairs: Pairs, rows: set[int]) -> Pairs:
    keep = np.array([a in rows and b in rows for a, b in zip(pairs.a, pairs.b, strict=True)], dtype=bool)
    return Pairs(
        pairs.a[keep], pairs.b[keep], pairs.label[keep], [d for d, k in zip(pairs.dim, keep, strict=True) if k]
    )


def _concat(*parts: Pairs) -> Pairs:
    return Pairs(
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.b for p in parts]),
        np.concatenate([p.label for p in parts]),
        [d for p in parts for d in p.dim],
    )


def training_pairs(
    config: TrainConfig, dataset: Dataset, table: ImageTable, rows: Sequence[int], dims: Sequence[str]
) -> Pairs:
    """Pairs among ``rows``: the dataset's own pairs (first trained dimension) + same-prompt MOS pairs."""
    row_set = set(rows)
    parts = []
    if dataset.pairs:
        parts.append(_subset_pairs(dataset_pairs(dataset, table, dims[0]), row_set))
    mos_dims = [d for d in dims if d in table.labels]
    if mos_dims:
        parts.append(mos_pairs(table, rows, mos_dims, config.train.tie_margin, config.train.seed))
    return _concat(*parts) if parts else Pairs(np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32), [])


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    *,
    dataset: Dataset | None = None,
    rows: tuple[list[int], list[int]] | None = None,
    bank: FeatureBank | None = None,
) -> TrainResult:
    """Train the model a config describes.

    Args:
        config: The run (see ``agiqa.train.config``).
        out_dir: Model folder to write (``config.yaml`` + ``model.safetensors`` + ``checkpoint/``); None keeps
            the model in memory only.
        resume: Continue from ``out_dir/checkpoint`` when it exists.
        dataset: The dataset already read (else read from ``config.data``).
        rows: ``(train_rows, val_rows)`` of the dataset's image table (else from ``config.data``).
        bank: Features already computed for this model and dataset (the protocol shares one across splits;
            its model is trained in place).

    Returns:
        The trained model and what happened.
    """
    start_time = time.perf_counter()
    t = config.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    if bank is None:
        model = build_model(config)
        cached = apply_freeze(model, config)
        dataset = dataset if dataset is not None else load_training_data(config)
        table = image_table(dataset)
        sp = t.stable_preference
        views = (
            [
                (
                    f"weak{i}-s{sp.view_seed}-a{sp.crop_area[0]}-{sp.crop_area[1]}",
                    weak_view(i, sp.crop_area, sp.view_seed),
                )
                for i in range(sp.views)
            ]
            if sp.enabled
            else []
        )
        bank = FeatureBank(model, table, cached, t.cache_dir, views, progress=t.progress)
    else:
        model, table, cached = bank.model, bank.table, bank.cached
        if dataset is None:
            raise ValueError("train(bank=...) needs the dataset too")
    model.to(t.device)
    if cached:
        bank.to(t.device)
    train_rows, val_rows = rows if rows is not None else split_rows(config, dataset, table)
    if not train_rows:
        raise ValueError(f"{config.source}: no training images left after the split; check data.splits / limit")
    dims = trained_dimensions(config, model, table, bool(dataset.pairs))
    loss_name = t.loss or getattr(model, "default_loss", None) or ("l1" if table.labels else "pairwise_ce")
    pairwise = loss_name not in REGRESSION or t.stable_preference.enabled
    if pairwise:
        items = training_pairs(config, dataset, table, train_rows, dims)
        val_pairs = training_pairs(config, dataset, table, val_rows, dims) if val_rows else None
        n_items = len(items)
        if loss_name in REGRESSION:
            raise ValueError(
                f"{config.source}: stable_preference needs a pair loss (kl or pairwise_ce), not {loss_name}"
            )
    else:
        labelled = np.stack([table.labels[d] for d in dims], axis=1) if all(d in table.labels for d in dims) else None
        if labelled is None:
            raise ValueError(f"{config.source}: loss {loss_name!r} needs MOS labels for {dims}; use kl/pairwise_ce")
        items = [r for r in train_rows if np.isfinite(labelled[r]).any()]
        targets = torch.tensor(labelled, dtype=torch.float32)
        val_pairs = None
        n_items = len(items)
    if n_items == 0:
        raise ValueError(f"{config.source}: no training {'pairs' if pairwise else 'samples'} in the training data")
    per_epoch = math.ceil(n_items / t.batch_size)
    total = t.steps or t.epochs * per_epoch
    opt = _optimizer(model, config)
    sched = _scheduler(opt, config, total)
    history: list[dict[str, float]] = []
    running: list[float] = []
    best_val, best_state, step = -math.inf, None, 0
    ckpt = Checkpoint(Path(out_dir)) if out_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        doc, best_state = ckpt.load(model, opt, sched)
        step, history, running = doc["step"], doc["history"], doc.get("running", [])
        best_val = doc["best_val"] if doc["best_val"] is not None else -math.inf
    model.train()
    if cached:
        model.encoder.eval()
    dim_index = {d: i for i, d in enumerate(dims)}
    bar = _bar(t.progress, total, config.name)
    with bar:
        task = bar.add_task("train", total=total, completed=step, loss=float("nan"), val=float("nan"))
        while step < total:
            epoch, pos = divmod(step, per_epoch)
            order = torch.randperm(n_items, generator=torch.Generator().manual_seed(t.seed * 100_003 + epoch))
            idx = order[pos * t.batch_size : (pos + 1) * t.batch_size]
            if pairwise:
                loss = _pair_step(model, bank, items, idx, dims, dim_index, loss_name, t, step)
            else:
                rows_b = torch.as_tensor([items[i] for i in idx.tolist()], dtype=torch.long)
                out = model.forward_head(bank.batch(rows_b))
                loss = L.regression_loss(out, targets[rows_b].to(t.device), dims, loss_name)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], t.grad_clip)
            opt.step()
            sched.step()
            step += 1
            running.append(float(loss.detach()))
            bar.update(task, advance=1, loss=float(np.mean(running[-50:])))
            end_of_epoch = step % per_epoch == 0 or step == total
            if end_of_epoch and ((step // per_epoch) % t.eval_every == 0 or step == total):
                entry = {
                    "epoch": math.ceil(step / per_epoch),
                    "step": step,
                    "loss": float(np.mean(running[-per_epoch:])),
                }
                entry.update(validate(bank, val_rows, dims, val_pairs))
                history.append(entry)
                val = entry.get("val", math.nan)
                bar.update(task, val=val)
                if t.keep_best and math.isfinite(val) and val > best_val:
                    best_val, best_state = val, trainable_state(model)
            if ckpt is not None and t.checkpoint_every and step % t.checkpoint_every == 0 and step < total:
                ckpt.save(
                    model,
                    opt,
                    sched,
                    {
                        "step": step,
                        "history": history,
                        "running": running[-per_epoch:],
                        "best_val": best_val if math.isfinite(best_val) else None,
                    },
                    best_state,
                )
    if t.keep_best and best_state is not None:
        model.load_state_dict(best_state, strict=False)
    model.eval()
    result = TrainResult(
        model,
        None,
        history,
        best_val if math.isfinite(best_val) else None,
        step,
        time.perf_counter() - start_time,
        cached,
        bank.misses,
    )
    if out_dir is not None:
        card = getattr(model, "card", None) or model_card(config)
        extra = {"trained_on": f"{config.data.dataset} ({len(train_rows)} images)"}
        result.out_dir = save_model_folder(
            model, out_dir, ModelCard.from_dict({**card.to_dict(), "name": config.name}), extra
        )
        (Path(out_dir) / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        (Path(out_dir) / "history.json").write_text(json.dumps(history, indent=1))
        if ckpt is not None:
            ckpt.save(
                model,
                opt,
                sched,
                {"step": step, "history": history, "best_val": best_val if math.isfinite(best_val) else None},
                best_state,
            )
    return result


def _pair_step(
    model: QualityModel,
    bank: FeatureBank,
    pairs: Pairs,
    idx: torch.Tensor,
    dims: Sequence[str],
    dim_index: dict[str, int],
    loss_name: str,
    t: Any,
    step: int,
) -> torch.Tensor:
    a = torch.as_tensor(pairs.a[idx.numpy()], dtype=torch.long)
    b = torch.as_tensor(pairs.b[idx.numpy()], dtype=torch.long)
    label = torch.as_tensor(pairs.label[idx.numpy()], dtype=torch.float32, device=t.device)
    which = torch.as_tensor([dim_index[pairs.dim[i]] for i in idx.tolist()], dtype=torch.long)

    scale = model.logit_scale if isinstance(getattr(model, "logit_scale", None), int | float) else 1.0

    def scores(view: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = model.forward_head(bank.batch(torch.cat([a, b]), view))
        s = scale * torch.stack([out[d] for d in dims])  # (D, 2B)
        picked = s.gather(0, torch.cat([which, which]).to(s.device).unsqueeze(0)).squeeze(0)
        return picked[: len(a)], picked[len(a) :]

    s_a, s_b = scores(0)
    per_pair = L.pair_loss(s_a, s_b, label, loss_name)
    sp = t.stable_preference
    if not sp.enabled:
        return per_pair.mean()
    views = [scores(v) for v in range(1, sp.views + 1)]
    return L.stable_preference_loss(per_pair, s_a, s_b, label, views, step, sp)


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


def snapshot(model: QualityModel) -> dict[str, torch.Tensor]:
    """Copy of the trainable state (to restore a model between protocol splits)."""
    return copy.deepcopy(trainable_state(model))


__all__ = ["FeatureBank", "TrainResult", "build_model", "save_model_folder", "train", "validate"]
