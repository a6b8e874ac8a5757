"""Does fine-tuning the last blocks of the lite image tower help? A probe on AGIQA-3K's stored grouped splits.

    python benchmarks/finetune_probe.py [--splits 3] [--tails 0 1 2] [--epochs 12] [--threads 1]

EfficientNet-Lite0 at 384 px encodes every image once; what stays frozen is cached
(``<cache>/finetune_probe/``): the ``multilevel`` statistics of the frozen stages and the feature map that enters
the last ``tail`` MBConv blocks (12 x 12 x 192). Each arm then trains, per split, a linear quality head on the
``multilevel`` summary (as ``agiqa.encoders.lite`` builds it) and a linear alignment head on the summary and the
MiniLM prompt embedding, by mean squared error on the training side's standardised MOS:

* ``tail 0``: the tower frozen (the heads alone; a baseline for the same head and loss);
* ``tail N``: the last N blocks and the 1x1 head convolution trained too (learning rate ``--tower-lr``, batch
  norm statistics kept from ImageNet).

The epoch is chosen by SRCC on a grouped tenth of the training side (``carve_validation``), never on the test
side. Writes ``benchmarks/results/finetune_probe.{md,json}``; ``--load-note`` records what else ran.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "agiqa3k"
SIZE = 384
CACHED_TAILS = (1, 2)  # feature maps entering the last 1 and 2 blocks are cached


def _standardise(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.layer_norm(x, x.shape[-1:]) / math.sqrt(x.shape[-1])


def _stats(m: torch.Tensor) -> list[torch.Tensor]:
    return [_standardise(m.mean(dim=(2, 3))), _standardise(m.std(dim=(2, 3)))]


@torch.no_grad()
def frozen_part(net: nn.Module, ends: list[int], pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """``stats_<block>`` of the stage ends before the last block, ``enter_<t>`` (float16) the map entering the last
    ``t`` blocks, for ``t`` in ``CACHED_TAILS``."""
    last = len(net._blocks) - 1
    keep = {last - t: f"enter_{t}" for t in CACHED_TAILS}
    out = {}
    x = net._swish(net._bn0(net._conv_stem(pixels)))
    for index, block in enumerate(net._blocks[:-1]):
        x = block(x)
        if index in ends:
            out[f"stats_{index}"] = torch.cat(_stats(x), dim=-1)
        if index in keep:
            out[keep[index]] = x.to(torch.float16)
    return out


@torch.no_grad()
def encode(table, cache: Path) -> dict[str, np.ndarray]:
    """Frozen statistics per stage end, the maps entering the cached tails, and prompt embeddings."""
    from agiqa.data.images import load_image
    from agiqa.encoders import create_encoder

    path = cache / f"lite_{SIZE}.npz"
    if path.is_file():
        return dict(np.load(path))
    encoder = create_encoder("lite", image_size=SIZE, pooling="multilevel")
    net, ends = encoder.image_tower, encoder.stage_ends
    out: dict[str, list[np.ndarray]] = {f"stats_{i}": [] for i in ends[:-1]}
    out |= {f"enter_{t}": [] for t in CACHED_TAILS}
    start = time.perf_counter()
    for i in range(0, len(table.images), 4):
        x = torch.stack([encoder.preprocess(load_image(ref)) for ref in table.images[i : i + 4]])
        for key, value in frozen_part(net, ends, x).items():
            out[key].append(value.numpy())
        if i % 400 == 0:
            print(f"[encode] {i}/{len(table.images)} images, {time.perf_counter() - start:.0f} s", flush=True)
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    unique = sorted(set(table.prompts))
    text = encoder.encode_text(unique).summary.numpy()
    index = {p: k for k, p in enumerate(unique)}
    arrays["prompt"] = text[[index[p] for p in table.prompts]]
    arrays["encode_seconds"] = np.float64(time.perf_counter() - start)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


class Probe(nn.Module):
    """The last ``tail`` blocks + head convolution (trainable copies) and two linear heads."""

    def __init__(self, net: nn.Module, ends: list[int], tail: int, frozen_dim: int, prompt_dim: int) -> None:
        super().__init__()
        last = len(net._blocks) - 1
        self.first = last - max(tail, 1) + 1
        self.blocks = nn.ModuleList(copy.deepcopy(list(net._blocks[self.first :])))
        self.conv_head, self.bn1, self.swish = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1), net._swish
        self.ends = [i for i in ends if i >= self.first]
        widths = [net._blocks[i]._block_args.output_filters for i in self.ends] + [net._conv_head.out_channels]
        dim = frozen_dim + 2 * sum(widths)
        self.quality = nn.Linear(dim, 1)
        self.alignment = nn.Linear(dim + prompt_dim, 1)

    def summary(self, frozen: torch.Tensor, entering: torch.Tensor) -> torch.Tensor:
        """The ``multilevel`` summary (``agiqa.encoders.lite``): frozen statistics, then the trainable blocks'."""
        x, parts = entering, [frozen]
        for offset, block in enumerate(self.blocks):
            x = block(x)
            if self.first + offset in self.ends:
                parts += _stats(x)
        parts += _stats(self.swish(self.bn1(self.conv_head(x))))
        return torch.cat(parts, dim=-1)

    def forward(self, frozen: torch.Tensor, entering: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        summary = self.summary(frozen, entering)
        return torch.cat([self.quality(summary), self.alignment(torch.cat([summary, prompt], dim=-1))], dim=-1)


def run_split(
    feats, y: np.ndarray, fit: list[int], val: list[int], test: list[int], tail: int, args, net, ends
) -> dict[str, object]:
    """Train one arm on ``fit``; test SRCC of each dimension at the epoch best on ``val``."""
    from agiqa.eval import metrics as M

    torch.manual_seed(0)
    enter_key = f"enter_{max(tail, 1)}"
    first = len(net._blocks) - max(tail, 1)
    frozen = np.concatenate([feats[f"stats_{i}"] for i in ends if i < first], axis=1)
    frozen_t = torch.from_numpy(frozen).float()
    entering = torch.from_numpy(feats[enter_key])
    prompt = torch.from_numpy(feats["prompt"] / np.linalg.norm(feats["prompt"], axis=1, keepdims=True)).float()
    mu, sd = y[fit].mean(0), y[fit].std(0)
    target = torch.from_numpy((y - mu) / sd).float()
    model = Probe(net, ends, tail, frozen.shape[1], prompt.shape[1])
    model.eval()  # batch norm keeps ImageNet statistics; no drop-connect
    tower = [*model.blocks.parameters(), *model.conv_head.parameters(), *model.bn1.parameters()]
    heads = [*model.quality.parameters(), *model.alignment.parameters()]
    if tail == 0:
        for p in tower:
            p.requires_grad_(False)
        groups = [{"params": heads, "lr": args.head_lr}]
    else:
        groups = [{"params": heads, "lr": args.head_lr}, {"params": tower, "lr": args.tower_lr}]
    optim = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    rng = np.random.default_rng(0)

    def predict(rows: list[int]) -> np.ndarray:
        with torch.no_grad():
            out = [
                model(frozen_t[b], entering[b].float(), prompt[b])
                for b in np.array_split(np.asarray(rows), max(1, len(rows) // 64))
            ]
        return torch.cat(out).numpy()

    history, best, start = [], (-np.inf, None), time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(fit)
        for b in range(0, len(order), args.batch):
            rows = order[b : b + args.batch]
            pred = model(frozen_t[rows], entering[rows].float(), prompt[rows])
            loss = nn.functional.mse_loss(pred, target[rows])
            optim.zero_grad()
            loss.backward()
            optim.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            pv, pt = predict(val), predict(test)
            v = [float(M.srcc(pv[:, d], y[val, d])) for d in range(2)]
            t = [float(M.srcc(pt[:, d], y[test, d])) for d in range(2)]
        history.append({"epoch": epoch + 1, "val": v, "test": t, "seconds": time.perf_counter() - start})
        if sum(v) > best[0]:
            best = (sum(v), epoch)
        print(f"  tail {tail} epoch {epoch + 1}: val {v[0]:.3f}/{v[1]:.3f} ({time.perf_counter() - start:.0f} s)")
    chosen = history[best[1]]
    return {"epoch": chosen["epoch"], "quality": chosen["test"][0], "alignment": chosen["test"][1], "history": history}


def ridge_split(feats, y, train, test, validation, net, ends) -> dict[str, float]:
    """The frozen ``multilevel`` summary under the ridge of ``_ridge.py`` (alignment: + prompt), as a reference."""
    from _ridge import tuned_ridge

    from agiqa.eval import metrics as M

    model = Probe(net, ends, 1, sum(feats[f"stats_{i}"].shape[1] for i in ends[:-1]), feats["prompt"].shape[1])
    model.eval()
    frozen = torch.from_numpy(np.concatenate([feats[f"stats_{i}"] for i in ends[:-1]], axis=1)).float()
    entering = torch.from_numpy(feats["enter_1"])
    with torch.no_grad():
        parts = []
        for b in torch.arange(len(y)).split(64):
            parts.append(model.summary(frozen[b], entering[b].float()))
    summary = torch.cat(parts).numpy()
    prompt = feats["prompt"]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        for d, (name, blocks) in enumerate([("quality", [summary]), ("alignment", [summary, prompt])]):
            out[name] = float(M.srcc(tuned_ridge(blocks, y[:, d], train, test, validation), y[test, d]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--tails", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--tower-lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--load-note", default="", help="what else ran (written to the results)")
    args = parser.parse_args()
    if not (args.root / "data.csv").is_file():
        raise SystemExit(f"finetune_probe: no AGIQA-3K at {args.root} (data.csv missing); pass --root")
    torch.set_num_threads(args.threads)
    from agiqa.data import load_dataset
    from agiqa.data.splits import shipped_splits, stored_splits
    from agiqa.encoders import create_encoder
    from agiqa.train.cache import default_cache_dir
    from agiqa.train.selection import carve_validation
    from agiqa.train.table import image_table

    dataset = load_dataset("agiqa3k", args.root)
    table = image_table(dataset)
    feats = encode(table, default_cache_dir().parent / "finetune_probe")
    encoder = create_encoder("lite", image_size=SIZE, pooling="multilevel")
    net, ends = encoder.image_tower, encoder.stage_ends
    y = np.stack([table.labels["quality"], table.labels["alignment"]], axis=1)
    splits = stored_splits(dataset, shipped_splits("agiqa3k"), 10)[: args.splits]
    runs: dict[int, list[dict]] = {t: [] for t in args.tails}
    ridges: list[dict[str, float]] = []
    for i, split in enumerate(splits):
        train = [table.row[k] for k in split.train]
        test = [table.row[k] for k in split.test]
        fit, val = carve_validation(table, train, 0.1, i)
        ridges.append(ridge_split(feats, y, train, test, (fit, val), net, ends))
        print(f"[split {i}] ridge {ridges[-1]}", flush=True)
        for tail in args.tails:
            print(f"[split {i}] tail {tail}", flush=True)
            runs[tail].append(run_split(feats, y, fit, val, test, tail, args, net, ends))
    write(args, runs, ridges, float(feats["encode_seconds"]))


def write(args, runs: dict[int, list[dict]], ridges: list[dict[str, float]], encode_seconds: float) -> None:
    """Results table (mean ± std over splits, per-split rows) and the JSON with every epoch."""
    load = os.getloadavg()
    lines = [
        f"# Fine-tuning the last blocks of EfficientNet-Lite0 ({SIZE} px): AGIQA-3K, first {args.splits} stored splits",
        "",
        f"Generated by `python benchmarks/finetune_probe.py --splits {args.splits} --tails "
        f"{' '.join(map(str, args.tails))} --epochs {args.epochs}` ({time.strftime('%Y-%m-%dT%H:%M:%S%z')}, "
        f"{os.cpu_count()}-CPU machine, {args.threads} torch thread(s), load average at the end "
        f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}). Linear heads on the `multilevel` summary (alignment: "
        f"+ MiniLM prompt embedding), MSE on standardised MOS, AdamW (head lr {args.head_lr}, tower lr "
        f"{args.tower_lr}, weight decay {args.weight_decay}, batch {args.batch}); epoch chosen on a grouped "
        "tenth of the training side. Encoding what stays frozen took "
        f"{encode_seconds:.0f} s once.",
        "",
        "| arm | quality SRCC | alignment SRCC | epochs chosen | seconds per epoch |",
        "|---|---|---|---|---|",
        f"| ridge on the frozen summary (reference; `_ridge.py`) | {np.mean([r['quality'] for r in ridges]):.3f} ± "
        f"{np.std([r['quality'] for r in ridges]):.3f} | {np.mean([r['alignment'] for r in ridges]):.3f} ± "
        f"{np.std([r['alignment'] for r in ridges]):.3f} | – | – |",
    ]
    for tail, rows in runs.items():
        q = [r["quality"] for r in rows]
        a = [r["alignment"] for r in rows]
        per_epoch = np.mean([r["history"][-1]["seconds"] / len(r["history"]) for r in rows])
        arm = "tower frozen (heads only)" if tail == 0 else f"last {tail} block(s) + head conv trained"
        lines.append(
            f"| {arm} | {np.mean(q):.3f} ± {np.std(q):.3f} | {np.mean(a):.3f} ± {np.std(a):.3f} | "
            f"{', '.join(str(r['epoch']) for r in rows)} | {per_epoch:.1f} |"
        )
    header = "| split | ridge | " + " | ".join(f"tail {t}" for t in runs) + " |"
    lines += ["", "Per split (quality / alignment SRCC):", "", header]
    lines.append("|---" * (len(runs) + 2) + "|")
    for i in range(args.splits):
        cells = [f"{runs[t][i]['quality']:.3f} / {runs[t][i]['alignment']:.3f}" for t in runs]
        ridge = f"{ridges[i]['quality']:.3f} / {ridges[i]['alignment']:.3f}"
        lines.append(f"| {i} | {ridge} | " + " | ".join(cells) + " |")
    if args.load_note:
        lines += ["", f"What else ran: {args.load_note}"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "finetune_probe.md").write_text("\n".join(lines) + "\n")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "ridge": ridges}
    payload["runs"] = {str(t): r for t, r in runs.items()}
    (RESULTS / "finetune_probe.json").write_text(json.dumps(payload, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
