"""Averages of TSP-MGS recipes on the grouped AGIQA-3K splits: does stacking their scores beat the best one?

    python benchmarks/ensemble_probe.py [--splits 3] [--threads 1] [--load-note "what else ran"]
    python benchmarks/ensemble_probe.py --members lite/tsp-mgs-ml-cmq-h0 lite/tsp-mgs-cap-mix --splits 10 \
        --stem ensemble_probe_default      # the two recipes of agiqa-lite on all 10 splits

Each member config trains per split exactly as ``run_protocol.py`` trains it (same initial head, seed, validation
part and training side); its test-side scores are kept, with the alignment scores under the donor prompts of the
protocol's shuffled-prompt check. Every subset of two or more members is then scored by the plain mean of the
members' scores (all are on the MOS scale). Reported per member and per mean: quality and alignment SRCC and the
prompt-swap share. Writes ``benchmarks/results/<stem>.{md,json}`` (``--stem``, default ``ensemble_probe``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agiqa.configs import find_config
from agiqa.data.splits import load_splits, shipped_splits
from agiqa.eval import metrics as M
from agiqa.train import TrainConfig
from agiqa.train.checkpoint import snapshot
from agiqa.train.mismatch import prompt_swap_share
from agiqa.train.probes import swap_donors
from agiqa.train.protocol import train_on_split
from agiqa.train.setup import load_training_data, prepare

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MEMBERS = ("lite/tsp-mgs-ml-cmq-h0", "lite/tsp-mgs-cap", "lite/tsp-mgs-cap-own", "lite/tsp-mgs-cap-generic")


def member_scores(config: str, root: Path, n_splits: int) -> list[dict[str, np.ndarray]]:
    """Per split: test-side ``quality``, ``alignment`` and ``alignment_other`` (under the donors' prompts)."""
    cfg = TrainConfig.from_yaml(find_config(config)).replace(data={"root": str(root)}, train={"progress": False})
    dataset = load_training_data(cfg)
    setup = prepare(cfg, dataset)
    table, bank = setup.table, setup.bank
    initial = snapshot(setup.model)
    out = []
    for i, split in enumerate(load_splits(shipped_splits("agiqa3k"), dataset)[:n_splits]):
        _, _, test_rows, _ = train_on_split(cfg, setup, dataset, split, i, initial)
        donors = swap_donors(table.groups, test_rows, cfg.train.seed + i)  # the protocol's shuffled-prompt check
        own = bank.predict(test_rows)
        other = bank.predict(test_rows, prompt_rows=bank.prompt_row[torch.as_tensor(donors)].tolist())
        labels = {d: table.labels[d][test_rows] for d in ("quality", "alignment")}
        out.append({**own, "alignment_other": other["alignment"], "labels": labels})
        print(f"{config} split {i + 1}: quality {M.srcc(own['quality'], table.labels['quality'][test_rows]):.4f}")
    return out


def measure(scores: list[dict], members: tuple[str, ...]) -> dict[str, list[float]]:
    """Per split, the mean of ``members``' scores: quality / alignment SRCC and the prompt-swap share."""
    per: dict[str, list[float]] = {"quality_srcc": [], "alignment_srcc": [], "prompt_swap_share": []}
    for i in range(len(scores[members[0]])):
        mean = {k: np.mean([scores[m][i][k] for m in members], axis=0) for k in ("quality", "alignment")}
        other = np.mean([scores[m][i]["alignment_other"] for m in members], axis=0)
        labels = scores[members[0]][i]["labels"]
        per["quality_srcc"].append(float(M.srcc(mean["quality"], labels["quality"])))
        per["alignment_srcc"].append(float(M.srcc(mean["alignment"], labels["alignment"])))
        per["prompt_swap_share"].append(prompt_swap_share(mean["alignment"], other))
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--members", nargs="+", default=list(MEMBERS))
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stem", default="ensemble_probe", help="name of the result files")
    parser.add_argument("--load-note", default="", help="what else ran on the machine (written into the result)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    scores = {m: member_scores(m, args.root, args.splits) for m in args.members}
    seconds = time.perf_counter() - start
    rows = {}
    for size in range(1, len(args.members) + 1):
        for members in itertools.combinations(args.members, size):
            rows[" + ".join(m.removeprefix("lite/") for m in members)] = measure(scores, members)
    machine = f"CPU, {args.threads} thread(s), {os.cpu_count()} cores; {args.load_note or 'no note'}"
    doc = {"n_splits": args.splits, "members": args.members, "rows": rows, "seconds": seconds, "machine": machine}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        f"# Means of TSP-MGS recipes (AGIQA-3K, first {args.splits} grouped splits)",
        "",
        f"`python benchmarks/ensemble_probe.py {' '.join(sys.argv[1:])}` — {seconds:.0f} s, {machine}.",
        "Each row: the plain mean of its members' scores; mean ± std over the splits.",
        "",
        "| members | quality SRCC | alignment SRCC | prompt swap |",
        "|---|---|---|---|",
    ]
    for name, per in rows.items():
        cells = [f"{np.mean(per[k]):.3f} ± {np.std(per[k]):.3f}" for k in ("quality_srcc", "alignment_srcc")]
        share = per["prompt_swap_share"]
        lines.append(f"| {name} | {' | '.join(cells)} | {100 * np.mean(share):.1f}% ± {100 * np.std(share):.1f} |")
    (RESULTS / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
