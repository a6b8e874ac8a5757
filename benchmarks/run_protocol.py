"""Every method with the offline lite encoder on AGIQA-3K, 10 grouped 4:1 splits; writes benchmarks/results/.

    python benchmarks/run_protocol.py                       # every method + the ridge baseline
    python benchmarks/run_protocol.py --methods tsp-mgs ridge --splits 3
    python benchmarks/run_protocol.py --summary-only        # rebuild protocol_agiqa3k.md from the JSON files
    python benchmarks/run_protocol.py --methods prefiqa --resume   # run only the splits its JSON file lacks
    python benchmarks/run_protocol.py --methods prefiqa --robustness-only  # add split 0's robustness report

The files of a method are rewritten after every split, so a stopped run keeps the splits it finished; ``--resume``
goes on from them (refused when the config changed since: the JSON holds a digest of it).

Per method: ``protocol_<config name>.{csv,json,md}`` (mean ± std table, per-split values, training time per
split, robustness report on split 0's test images, shuffled-prompt check). ``protocol_agiqa3k.md`` /
``protocol_agiqa3k.json`` gather the headline figures of every method; ``robustness_agiqa3k.md`` the
robustness tables. The splits are ``src/agiqa/splits/agiqa3k.json`` (made once, shipped in the package).

Ridge baseline: ridge regression (``benchmarks/_ridge.py``) over the frozen lite encoder's un-projected features:
the mean EfficientNet-Lite0 feature map (1280-d) for quality, that plus the mean MiniLM token (384-d) for
alignment; the penalty is picked per split on a grouped validation part of the training side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _ridge import tuned_ridge

from agiqa.configs import find_config, shipped_configs
from agiqa.data.splits import shipped_splits

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SPLITS = shipped_splits("agiqa3k")
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "agiqa3k"
# every shipped CPU config but the default model's recipe (which is lite/tsp-mgs-ml trained on all the data)
LITE = [n for n in shipped_configs() if n.startswith("lite/") and n != "lite/default"]
METHOD_CONFIGS = {n.removeprefix("lite/"): n for n in LITE}
HEADLINE = [
    ("quality", "srcc"),
    ("quality", "plcc"),
    ("quality", "krcc"),
    ("alignment", "srcc"),
    ("alignment", "plcc"),
    ("alignment", "krcc"),
    ("quality", "pairwise_acc"),
    ("alignment", "pairwise_acc"),
]


# Config keys added after results were first digested, with their defaults: left out at the default, so that results
# written before the key existed still resume (a key at another value changes the digest as any other does).
LATER_KEYS = {("train", "mismatch", "part_margins"): None, ("train", "keep_best_by"): "srcc"}


def config_digest(cfg) -> str:
    """Hash of what a config trains (its data root and the run's device, cache and progress settings left out)."""
    doc = cfg.to_dict()
    doc["data"].pop("root", None)
    for key in ("device", "cache_dir", "progress"):
        doc["train"].pop(key, None)
    for (*parents, key), default in LATER_KEYS.items():
        node = doc
        for parent in parents:
            node = node.get(parent, {})
        if key in node and node[key] == default:
            del node[key]
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def earlier_run(path: Path, config_path: str, digest: str, flag: str = "--resume") -> dict | None:
    """The JSON document an earlier run of this config saved in ``path`` (None when there is no such file); ``flag``
    is the option that asked for it, for the messages."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("config") != config_path or doc.get("config_digest", digest) != digest:
        raise SystemExit(
            f"{flag}: {path} was written by config {doc.get('config')!r} (digest {doc.get('config_digest')}), "
            f"not by the current {config_path!r} (digest {digest}); run the method in full without {flag}"
        )
    if "config_digest" not in doc:
        print(f"{flag}: {path} predates config digests; resuming on its config path alone", flush=True)
    return doc


def run_method(
    name: str,
    config_path: str,
    dataset,
    splits,
    ratios,
    train_overrides: dict,
    resume: bool = False,
    robustness_only: bool = False,
) -> Path:
    from agiqa.train import TrainConfig
    from agiqa.train.protocol import ProtocolResult, add_robustness, run_protocol, write_protocol

    cfg = TrainConfig.from_yaml(find_config(config_path)).replace(
        data={"root": str(dataset.root)}, train={"progress": False, **train_overrides}
    )
    stem, digest = f"protocol_{cfg.name}", config_digest(cfg)
    path = RESULTS / f"{stem}.json"
    flag = "--robustness-only" if robustness_only else "--resume"
    doc = earlier_run(path, config_path, digest, flag) if resume or robustness_only else None
    earlier = ProtocolResult.from_json(doc) if doc is not None else None
    extra = {"method": name, "config": config_path, "config_digest": digest, "machine": machine()}

    def save(result) -> Path:
        return write_protocol(result, RESULTS, stem, {**extra, "n_splits": len(result.per_split)})[0]

    if robustness_only:
        if doc is None or "config_digest" not in doc:
            raise SystemExit(f"--robustness-only: {path} holds no run of {config_path} with a config digest")
        extra |= {k: doc[k] for k in ("machine", "resumed_after_splits") if k in doc}  # the saved run's, unchanged
        extra["robustness_added_by"] = {**machine(), "date": time.strftime("%Y-%m-%d")}
        return save(add_robustness(cfg, dataset, splits, earlier, ratios))
    if earlier is not None:
        if len(earlier.per_split) >= len(splits):
            print(f"--resume: {path} already holds {len(earlier.per_split)} splits; nothing to run", flush=True)
            return path
        extra["resumed_after_splits"] = resume_points(doc) + [len(earlier.per_split)]
    return save(run_protocol(cfg, dataset, splits, ratios, resume=earlier, on_split=save))


def resume_points(doc: dict) -> list[int]:
    """The split counts a saved run was resumed after, oldest first (files written before this was a list hold the
    latest count alone)."""
    points = doc.get("resumed_after_splits", [])
    return [points] if isinstance(points, int) else list(points)


def run_ridge(dataset, splits) -> Path:
    """The ridge baseline over cached lite features (image tokens mean, text tokens masked mean)."""
    from agiqa.encoders import create_encoder
    from agiqa.eval import metrics as M
    from agiqa.eval.evaluate import evaluate_predictions, metric_table
    from agiqa.eval.report import aggregate
    from agiqa.models.base import QualityModel
    from agiqa.train.features import FeatureBank
    from agiqa.train.protocol import ProtocolResult, write_protocol
    from agiqa.train.selection import carve_validation
    from agiqa.train.table import image_table

    model = QualityModel(create_encoder("lite"), [])
    table = image_table(dataset)
    t0 = time.perf_counter()
    bank = FeatureBank(model, table, cached=True)
    img = bank.image[0]["image_tokens"].mean(1).numpy()
    tok, mask = bank.text["text_tokens"], bank.text["text_mask"].unsqueeze(-1).float()
    txt = ((tok * mask).sum(1) / mask.sum(1)).numpy()[bank.prompt_row.numpy()]
    feats = {"quality": [img], "alignment": [img, txt]}
    result = ProtocolResult("ridge-lite-agiqa3k", feature_seconds=time.perf_counter() - t0)
    row = table.row
    for i, split in enumerate(splits):
        start = time.perf_counter()
        rows = [row[x] for x in split.train]
        validation = carve_validation(table, rows, 0.1, i)
        test_rows = [row[t] for t in split.test]
        preds = {dim: tuned_ridge(x, table.labels[dim], rows, test_rows, validation) for dim, x in feats.items()}
        result.train_seconds.append(time.perf_counter() - start)
        frame = pd.DataFrame({"image": list(split.test), **preds})
        _, test = split.apply(dataset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            result.per_split.append(metric_table(evaluate_predictions(frame, test)))
        print(f"[ridge] split {i + 1}: quality SRCC {result.per_split[-1]['quality']['srcc']:.4f}", flush=True)
    result.table = aggregate(result.per_split)
    extra = {
        "method": "ridge",
        "config": "benchmarks/run_protocol.py (ridge over frozen lite features)",
        "machine": machine(),
        "n_splits": len(splits),
    }
    json_path, _ = write_protocol(result, RESULTS, "protocol_ridge-lite-agiqa3k", extra)
    return json_path


def machine() -> dict[str, object]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "gpu": gpu,
        "device": gpu or f"CPU, {torch.get_num_threads()} thread(s), shared",
    }


def away_from_text_tower(namespaces: Path) -> None:
    """Run where the MiniLM weights are absent: the text features must all come from the carried cache.

    The lite text tower is replaced by a stand-in that refuses to run, and the cache namespaces (whose probe
    would need the text tower) are read from ``namespaces`` (written by ``--write-namespaces`` beside the
    real weights), so a text-cache miss is an error, never a silently wrong feature.
    """
    from torch import nn
    from transformers import BertConfig

    from agiqa.encoders import lite
    from agiqa.train import cache

    class Refuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = BertConfig(hidden_size=384)
            self.encoder = nn.Module()
            self.encoder.layer = nn.ModuleList([nn.Linear(1, 1)])
            self.embeddings = nn.Linear(1, 1)

        def forward(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("text tower called: a text feature is missing from the carried cache")

    lite._load_minilm = lambda: (Refuse(), None)
    table = json.loads(namespaces.read_text())
    cache.image_namespace = lambda model: table[type(model).__name__]["image"]
    cache.text_namespace = lambda model: table[type(model).__name__]["text"]


def write_namespaces(path: Path, methods: list[str]) -> None:
    """Namespaces of each method's features, and fill their text caches (beside the real weights)."""
    from agiqa.data import load_dataset
    from agiqa.train import TrainConfig
    from agiqa.train.cache import cached_text_features, image_namespace, text_namespace
    from agiqa.train.setup import build_model

    prompts = load_dataset("agiqa3k", DEFAULT_ROOT).prompts
    table = {}
    for name in methods:
        model = build_model(TrainConfig.from_yaml(find_config(METHOD_CONFIGS[name])))
        cached_text_features(model, prompts)
        table[type(model).__name__] = {"image": image_namespace(model), "text": text_namespace(model)}
    path.write_text(json.dumps(table, indent=1))
    print(table)


def _device(machine: dict) -> str:
    return machine.get("device") or f"CPU, {machine.get('threads', '?')} thread(s), shared"


def summary() -> None:
    """``protocol_agiqa3k.{md,json}`` and ``robustness_agiqa3k.md`` from every ``protocol_*-agiqa3k.json``."""
    from agiqa.train.protocol import robustness_markdown

    rows, docs = [], {}
    for path in sorted(RESULTS.glob("protocol_*-agiqa3k.json")):
        doc = json.loads(path.read_text())
        docs[doc["name"]] = doc
        cells = {(r["dimension"], r["metric"]): (r["mean"], r["std"]) for r in doc["table"]}
        secs = doc.get("train_seconds") or [math.nan]
        row = {
            "model": doc["name"],
            "splits": doc.get("n_splits", len(secs)),
            "trained on": _device(doc.get("machine") or {}),
        }
        for dim, metric in HEADLINE:
            mean, std = cells.get((dim, metric), (None, None))
            row[f"{dim} {metric}"] = "n/a" if mean is None else f"{mean:.4f} ± {std or 0:.4f}"
        row["train s/split"] = f"{np.mean(secs):.1f} ± {np.std(secs, ddof=1) if len(secs) > 1 else 0:.1f}"
        share = cells.get(("alignment", "prompt_swap_share"))
        shuffled = doc.get("shuffled_prompts") or {}
        if share is not None:
            row["alignment lower under another prompt"] = f"{100 * share[0]:.1f}% ± {100 * (share[1] or 0):.1f}"
        elif "alignment_share_lower" in shuffled:  # results written before the probe ran on every split
            row["alignment lower under another prompt"] = f"{100 * shuffled['alignment_share_lower']:.0f}% (split 0)"
        else:
            row["alignment lower under another prompt"] = "n/a"
        seen = cells.get(("alignment", "prompt_swap_share_seen"))
        row["same, training prompts"] = "–" if seen is None else f"{100 * seen[0]:.1f}%"
        rows.append(row)
    if not rows:
        print("no protocol_*-agiqa3k.json results yet", file=sys.stderr)
        return
    frame = pd.DataFrame(rows)
    lines = [
        "# AGIQA-3K, lite encoder, grouped 4:1 splits (mean ± std over the `splits` column's count)",
        "",
        "Generated by `python benchmarks/run_protocol.py`; per-method details in `protocol_<model>.md`.",
        "Test sides never share a prompt with the training side (splits: `src/agiqa/splits/agiqa3k.json`).",
        "`pairwise_acc`: same-prompt pairs ordered as the MOS order them. `train s/split`: training time",
        "of one split (features cached, computed once per method) on the device named in `trained on`.",
        "`alignment lower under another prompt`: share of test images whose alignment score falls when the image",
        "is paired with another test prompt (50% = the score ignores the prompt); mean ± std over the splits.",
        "`same, training prompts`: the same share on the images trained on, their prompts swapped among themselves",
        "(high there and low on the test side: the model memorised its training pairs; – : run before this probe).",
        "PrefIQA trains on same-prompt pairs only, so its scores carry a per-prompt offset that cross-prompt SRCC",
        "punishes: read its `pairwise_acc` (same-prompt order) beside its SRCC.",
        "",
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
    ]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    (RESULTS / "protocol_agiqa3k.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "protocol_agiqa3k.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    robust = [
        "# Robustness on AGIQA-3K (split 0's test images): horizontal flip + centre crop",
        "",
        "Stable Preference, Table 1 protocol: metrics on the original test images (ORG) and on flipped +",
        "centre-cropped copies at side ratios 0.97-0.90; change against ORG in brackets;",
        "`mean_abs_change`: mean absolute change of the scores; `abs_change_per_std`: the same in units of the",
        "standard deviation of the original scores (comparable across models whose scores differ in scale).",
        "",
    ]
    for name, doc in docs.items():
        if doc.get("robustness"):
            robust += [f"## {name}", "", robustness_markdown(pd.DataFrame(doc["robustness"])), ""]
    (RESULTS / "robustness_agiqa3k.md").write_text("\n".join(robust))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--methods", nargs="*", default=[*METHOD_CONFIGS, "ridge"])
    parser.add_argument("--config", action="append", default=[], help="extra NAME=CONFIG.yaml to run")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-robustness", action="store_true")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--resume", action="store_true", help="keep the splits a method's JSON file holds")
    parser.add_argument(
        "--robustness-only",
        action="store_true",
        help="add the robustness report to a saved run: split 0 trained again, kept if its figures reproduce",
    )
    parser.add_argument("--device", default="cpu", help="where heads train (cuda on a GPU machine)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache root")
    parser.add_argument("--write-namespaces", type=Path, help="write the methods' cache namespaces, then exit")
    parser.add_argument("--namespaces", type=Path, help="run without the text tower (see away_from_text_tower)")
    args = parser.parse_args()
    if args.summary_only:
        summary()
        return
    if args.write_namespaces:
        write_namespaces(args.write_namespaces, [m for m in args.methods if m in METHOD_CONFIGS])
        return
    if args.namespaces:
        away_from_text_tower(args.namespaces)
    overrides = {"device": args.device, **({"cache_dir": str(args.cache_dir)} if args.cache_dir else {})}
    from agiqa.data import load_dataset
    from agiqa.data.splits import stored_splits
    from agiqa.train.probes import ROBUSTNESS_RATIOS

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset("agiqa3k", args.root)
    splits = stored_splits(dataset, SPLITS, 10)[: args.splits]
    configs = {**METHOD_CONFIGS, **dict(c.split("=", 1) for c in args.config)}
    for name in [*args.methods, *(c.split("=", 1)[0] for c in args.config)]:
        start = time.perf_counter()
        if name == "ridge":
            path = run_ridge(dataset, splits)
        else:
            ratios = () if args.no_robustness else ROBUSTNESS_RATIOS
            path = run_method(
                name, configs[name], dataset, splits, ratios, overrides, args.resume, args.robustness_only
            )
        print(f"{name}: wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    summary()


if __name__ == "__main__":
    main()
