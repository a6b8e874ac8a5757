"""Where the default's alignment ignores the prompt: the protocol's prompt-swap check, broken down.

    python benchmarks/swap_breakdown.py                   # the default's recipe, splits 1-3
    python benchmarks/swap_breakdown.py --splits 1 --config lite/tsp-mgs-ens-swap

For each split, trains the config on the training side exactly as ``run_protocol.py`` does (same seed, same
validation part), then scores every test image under its own prompt and under every other prompt of the test
side. Two shares per image group:

* ``random other prompt``: the protocol's ``prompt_swap_share`` (the same donor per image, drawn with the
  protocol's seed), so the overall row reproduces ``protocol_<config>.json``'s value for that split;
* ``all other prompts``: the share of (image, other test prompt) pairs whose score is lower than the image's score
  under its own prompt: the same question without the noise of one draw.

Groups: AGIQA-3K's generator settings (the image name's prefix before ``_NNN``) and thirds of the image's own
alignment MOS. An image that shows nothing of its prompt (low alignment MOS) would get a low alignment score from
people under any prompt, so no share near 100% is owed there. Writes ``benchmarks/results/swap_breakdown.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agiqa.configs import find_config

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "agiqa3k"
DEFAULT_CONFIG = "lite/tsp-mgs-ens-cca"


def setting(image_id: str) -> str:
    """AGIQA-3K's generator setting of an image: ``sd1.5_lowstep_012.jpg`` -> ``sd1.5_lowstep``."""
    return re.sub(r"_\d+$", "", Path(image_id).stem)


def all_prompt_scores(bank, rows: list[int], dim: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(own (n,), others (n, p))`` of ``rows``: each image under its own prompt and under every prompt of
    the other test groups (``nan`` where the prompt is the image's own group's)."""
    groups = [bank.table.groups[r] for r in rows]
    by_group = dict(zip(groups, rows, strict=False))
    prompt_of = {g: int(bank.prompt_row[r]) for g, r in by_group.items()}
    names = list(prompt_of)
    flat_rows = [r for r in rows for _ in names]
    flat_prompts = [prompt_of[g] for _ in rows for g in names]
    scores = bank.predict(flat_rows, prompt_rows=flat_prompts)[dim].reshape(len(rows), len(names))
    own = np.array([scores[i, names.index(g)] for i, g in enumerate(groups)])
    same = np.array([[g == h for h in names] for g in groups])
    return own, np.where(same, np.nan, scores)


def split_records(config, dataset, stored: list, splits: list[int]) -> pd.DataFrame:
    """One row per (split, test image) of the ``splits`` indices into ``stored`` (the protocol's splits): own-prompt
    score, random-donor score, share of the other test prompts scoring lower, mean drop to them."""
    from agiqa.train.checkpoint import snapshot
    from agiqa.train.probes import donor_predictions
    from agiqa.train.protocol import train_on_split
    from agiqa.train.setup import prepare

    setup = prepare(config, dataset)
    initial = snapshot(setup.model)
    bank, frames = setup.bank, []
    for i in splits:
        start = time.perf_counter()
        _, _, test_rows, _ = train_on_split(config, setup, dataset, stored[i], i, initial)
        wrong = donor_predictions(bank, test_rows, seed=config.train.seed + i)["alignment"]
        own, others = all_prompt_scores(bank, test_rows, "alignment")
        frames.append(
            pd.DataFrame(
                {
                    "split": i,
                    "image": [bank.table.ids[r] for r in test_rows],
                    "mos": bank.table.labels["alignment"][test_rows],
                    "own": own,
                    "donor": wrong,
                    "lower_all": np.nanmean(others < own[:, None], axis=1),
                    "drop_all": own - np.nanmean(others, axis=1),
                }
            )
        )
        print(f"split {i}: {time.perf_counter() - start:.0f} s, share {np.mean(wrong < own):.4f}", flush=True)
    return pd.concat(frames, ignore_index=True)


def breakdown(records: pd.DataFrame, by: pd.Series) -> pd.DataFrame:
    """Images, both shares and the mean drop per group of ``by``."""
    frame = records.assign(lower_donor=records["donor"] < records["own"])
    columns = {
        "images": ("image", "size"),
        "mos": ("mos", "mean"),
        "random_other": ("lower_donor", "mean"),
        "all_others": ("lower_all", "mean"),
        "drop": ("drop_all", "mean"),
    }
    table = frame.assign(group=by).groupby("group", observed=True).agg(**columns)
    return pd.concat([table, frame.assign(group="all").groupby("group").agg(**columns)])


def markdown(records: pd.DataFrame, config_path: str, protocol: dict[int, float], meta: dict) -> str:
    """The report: overall check against the protocol, then the two breakdowns."""
    lines = [
        f"# Prompt swap of `{config_path}`, broken down (AGIQA-3K test sides, splits {sorted(set(records.split))})",
        "",
        f"Generated by `{meta['command']}` ({meta['when']}, {meta['machine']}; {meta['note']}).",
        "`random other`: share of test images scored lower under the protocol's random other test prompt than "
        "under their own (`prompt_swap_share`); `all others`: the same over every other prompt of the test side; "
        "`drop`: own-prompt score minus the mean over the other prompts (MOS scale 0-5); `mos`: mean alignment MOS.",
        "",
        "| split | random other (here) | protocol's `prompt_swap_share` |",
        "|---|---|---|",
    ]
    for i, part in records.groupby("split"):
        here = float(np.mean(part["donor"] < part["own"]))
        there = f"{protocol[i]:.4f}" if i in protocol else "–"
        lines.append(f"| {i} | {here:.4f} | {there} |")
    thirds = pd.qcut(records["mos"], 3, labels=["low third", "middle third", "high third"])
    edges = np.quantile(records["mos"], [1 / 3, 2 / 3])
    for title, by in [
        ("By generator setting", records["image"].map(setting)),
        (f"By the image's own alignment MOS (thirds cut at {edges[0]:.2f} and {edges[1]:.2f})", thirds),
    ]:
        table = breakdown(records, by)
        lines += ["", f"## {title}", "", "| group | images | mos | random other | all others | drop |"]
        lines.append("|---|---|---|---|---|---|")
        for name, row in table.iterrows():
            lines.append(
                f"| {name} | {int(row.images)} | {row.mos:.2f} | {row.random_other:.1%} | {row.all_others:.1%} "
                f"| {row['drop']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def protocol_shares(config_name: str) -> dict[int, float]:
    """The committed protocol run's ``prompt_swap_share`` per split, when there is one."""
    path = RESULTS / f"protocol_{config_name}.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {
        i: s["alignment"]["prompt_swap_share"]
        for i, s in enumerate(doc.get("per_split", []))
        if "prompt_swap_share" in s.get("alignment", {})
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--splits", type=int, default=3, help="splits 0 .. N-1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="nothing else running", help="what else ran, for the report")
    parser.add_argument("--stem", default="swap_breakdown")
    args = parser.parse_args()
    from agiqa.data import load_dataset
    from agiqa.data.splits import shipped_splits, stored_splits
    from agiqa.train import TrainConfig

    torch.set_num_threads(args.threads)
    dataset = load_dataset("agiqa3k", args.root)
    config = TrainConfig.from_yaml(find_config(args.config)).replace(
        data={"root": str(dataset.root)}, train={"progress": False}
    )
    stored = stored_splits(dataset, shipped_splits("agiqa3k"), 10)
    records = split_records(config, dataset, stored, list(range(args.splits)))
    meta = {
        "command": f"python benchmarks/swap_breakdown.py --config {args.config} --splits {args.splits}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "note": args.note,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.stem}.json").write_text(
        json.dumps({**meta, "config": args.config, "records": records.to_dict(orient="records")}, indent=1)
    )
    (RESULTS / f"{args.stem}.md").write_text(markdown(records, args.config, protocol_shares(config.name), meta))
    print(f"wrote {RESULTS / args.stem}.md")


if __name__ == "__main__":
    main()
